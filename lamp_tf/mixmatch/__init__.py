"""Mix-and-match networks: assembly, losses, training, zero-pair and cascade inference."""
