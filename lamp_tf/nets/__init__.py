"""Keras 3 models and layers: classifiers, GAN generators and critics, encoders/decoders."""
