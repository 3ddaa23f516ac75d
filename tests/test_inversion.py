"""Feature inversion (Mahendran & Vedaldi 2015): the loss and constants against their definitions,
exact recovery through an invertible representation, input checks, and on pretrained
SqueezeNet 1.1 the last conv layer of skimage's coffee inverted to normalised error <= 0.1 with
the original's top-1 class."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis import loader, models
from cnn_vis.data import images as image_io
from cnn_vis.errors import UserError
from cnn_vis.techniques import classify, inversion
from cnn_vis.techniques.objectives import Context, FeatureDistance, total_variation


@dataclasses.dataclass(frozen=True)
class ScaledPixels:
  """Phi(x) = 3 x: an invertible representation, so the optimum of the loss is the image itself."""

  def __call__(self, variables, images):
    del variables
    return jnp.zeros((images.shape[0], 2)), {"pixels": 3.0 * images}


def test_feature_distance_is_normalised_squared_error():
  target = jnp.array([[1.0, 2.0], [0.0, 2.0]])           # ||Phi0||^2 = 9
  acts = {"f": (target + jnp.array([[1.0, 0.0], [0.0, -2.0]]))[None]}
  setting = {"target": target, "target_sq": 9.0, "alpha_norm": 0.0, "alpha": 6.0, "tv": 0.0,
             "tv_beta": 2.0}
  loss = FeatureDistance("f")(Context(jnp.zeros((1, 2, 2, 3)), None, acts, setting))
  assert float(loss) == pytest.approx(5.0 / 9.0)
  assert float(inversion.objective("f")(Context(jnp.zeros((1, 2, 2, 3)), None, acts, setting))) \
      == pytest.approx(-5.0 / 9.0)


def test_reference_constants_and_conversions():
  assert inversion.x0_sigma(10, 20) == pytest.approx(0.26 * np.sqrt(600))
  alpha_weight, tv_weight = inversion.paper_weights(100.0)
  assert float(alpha_weight) == pytest.approx(8e-10 * 255 ** 4 / 2)     # = 1.69
  assert float(tv_weight) == pytest.approx(50.0)
  names = [f"l{i}" for i in range(1, 21)]                 # caffe-ref's 20 layers
  assert [inversion.lambda_tv(n, names) for n in ("l1", "l6", "l7", "l12", "l14", "l20")] == \
      [1.0, 1.0, 10.0, 10.0, 100.0, 100.0]
  with pytest.raises(UserError, match="unknown layer 'l21'"):
    inversion.lambda_tv("l21", names)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "alexnet", "vgg19"])
def test_lambda_tv_grows_with_depth_in_forward_order(name):
  # The reference code's lambda_TV is 1 / 10 / 100 for shallow / middle / deep layers. The layer
  # list must be in forward order: sorted names put EfficientNet's `stem` after `block9` (so it
  # got 100, and block15 got 10) - the bug this test guards against.
  names = models.layer_names(name)
  weights = [inversion.lambda_tv(layer, names) for layer in names]
  assert weights[0] == 1.0 and weights[-1] == 100.0 and weights == sorted(weights), weights
  if name == "efficientnet_lite0":
    assert inversion.lambda_tv("stem", names) == 1.0
    assert inversion.lambda_tv("block15", names) == 100.0
    assert inversion.lambda_tv("stem", sorted(names)) == 100.0   # the old, alphabetical list


def test_inversion_of_an_invertible_representation_recovers_the_image():
  images = 0.2 + 0.6 * np.random.RandomState(0).rand(2, 8, 8, 3).astype(np.float32)
  result, targets = inversion.invert(
      ScaledPixels(), {}, images, "pixels", center=jnp.full((3,), 0.5), key=jax.random.PRNGKey(0),
      tv=0.0, alpha_norm=0.0, lr=0.05, phases=((150, 1.0), (50, 0.1)), optimizer="adam",
      optimizer_kwargs=())
  np.testing.assert_allclose(np.asarray(result.images[:, 0]), images, atol=2e-3)
  errors = inversion.normalized_error(ScaledPixels(), {}, result.images[:, 0], targets, "pixels")
  assert np.all(np.asarray(errors) < 1e-4)
  # the reference optimiser (SGD with momentum, rate phases) converges here too
  result, _ = inversion.invert(ScaledPixels(), {}, images, "pixels", center=jnp.full((3,), 0.5),
                               key=jax.random.PRNGKey(0), tv=0.0, alpha_norm=0.0, lr=0.2,
                               phases=((100, 1.0), (50, 0.1)))
  np.testing.assert_allclose(np.asarray(result.images[:, 0]), images, atol=2e-3)


def test_tv_regulariser_smooths_the_reconstruction():
  images = np.random.RandomState(1).rand(1, 8, 8, 3).astype(np.float32)
  kwargs = dict(center=jnp.full((3,), 0.5), key=jax.random.PRNGKey(0), alpha_norm=0.0, lr=0.05,
                phases=((100, 1.0),), optimizer="adam", optimizer_kwargs=())
  stacked = np.concatenate([images, images])
  result, _ = inversion.invert(ScaledPixels(), {}, stacked, "pixels", tv=np.array([0.0, 1e4]),
                               **kwargs)
  tv = [float(total_variation(im, 2.0)) for im in result.images[:, 0]]
  assert tv[1] < 0.5 * tv[0]


def test_bad_inputs_are_one_line_errors():
  good = np.full((1, 8, 8, 3), 0.5, np.float32)
  kwargs = dict(center=jnp.zeros(3), key=jax.random.PRNGKey(0), tv=1.0)
  with pytest.raises(UserError, match="non-finite"):
    inversion.invert(ScaledPixels(), {}, np.full((1, 8, 8, 3), np.inf, np.float32), "pixels",
                     **kwargs)
  with pytest.raises(UserError, match="unknown layer 'conv9'"):
    inversion.invert(ScaledPixels(), {}, good, "conv9", **kwargs)
  with pytest.raises(UserError, match="all zero"):
    inversion.invert(ScaledPixels(), {}, np.zeros((1, 8, 8, 3), np.float32), "pixels", **kwargs)


@pytest.mark.slow
def test_pretrained_last_conv_layer_inversion():
  fn, variables, spec = loader.load("squeezenet1_1", pretrained=True)
  _, coffee = image_io.model_input("skimage:coffee", spec.input_size, spec.resize)
  images = coffee[None]
  # 227 px, the model's size; `fire9` (14x14x512) is its last conv layer (the config's default
  # net). Adam (the reference momentum SGD diverges on this net), lambda_TV 1 (the reference
  # value for shallow layers).
  result, targets = inversion.invert(
      fn, variables, images, "fire9", center=fn.mean_pixel,
      key=jax.random.PRNGKey(0), tv=1.0, lr=0.02, phases=((150, 1.0), (75, 0.1)),
      optimizer="adam", optimizer_kwargs=())
  reconstruction = result.images[:, 0]
  error = float(inversion.normalized_error(fn, variables, reconstruction, targets, "fire9")[0])
  assert error <= 0.1, error
  original = int(np.asarray(classify.probabilities(fn, variables, images)).argmax())
  inverted = classify.probabilities(fn, variables, jnp.clip(reconstruction, 0, 1))
  inverted = int(np.asarray(inverted).argmax())
  assert inverted == original == 967, (inverted, original)     # espresso
