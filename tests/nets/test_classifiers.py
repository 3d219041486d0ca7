"""The continual-learning classifiers: shapes, the paper's LeNet-5 size, clear errors."""

import numpy as np
import pytest

from lamp_tf.nets import classifiers


@pytest.mark.parametrize("name,shape", [("lenet", (32, 32, 1)), ("mlp", (28, 28, 1)),
                                        ("vgg", (32, 32, 3))])
def test_single_head_logits_over_all_classes(name, shape):
  model = classifiers.classifier(name, shape, 10)
  out = model(np.zeros((3, *shape), np.float32))
  assert out.shape == (3, 10)


def test_lenet_has_the_paper_layer_sizes():
  # conv 6@5x5 (156) + conv 16@5x5 (2,416) + fc 400->120 (48,120) + 120->84 (10,164) + 84->10 (850)
  model = classifiers.classifier("lenet", (32, 32, 1), 10)
  assert model.count_params() == 156 + 2416 + 48120 + 10164 + 850


def test_unknown_model_is_a_clear_error():
  with pytest.raises(ValueError, match="--model='resnet'.*lenet, mlp, vgg"):
    classifiers.classifier("resnet", (32, 32, 1), 10)
