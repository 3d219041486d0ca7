"""GAN losses, gradient penalty, train steps and transfer of pretrained networks."""
