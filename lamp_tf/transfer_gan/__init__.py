"""Transferring GANs (Wang et al., ECCV 2018): the experiment of lamp-tf-transfer-gan."""
