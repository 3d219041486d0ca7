"""Continual learning: Fisher information, EWC, R-EWC rotations, MeRGAN."""
