"""Metrics: FID/KID, IW, accuracies, segmentation scores, continual-learning metrics."""
