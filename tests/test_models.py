"""Model shapes, parameter counts and building blocks against independent computations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis import models
from cnn_vis.errors import UserError
from cnn_vis.models import layers

# Krizhevsky et al. 2012 §3.5 / Fig. 2 with 227x227 input (the sizes that work out).
PAPER_SHAPES = {"conv1": (55, 55, 96), "pool1": (27, 27, 96), "conv2": (27, 27, 256),
                "pool2": (13, 13, 256), "conv3": (13, 13, 384), "conv4": (13, 13, 384),
                "conv5": (13, 13, 256), "pool5": (6, 6, 256), "fc6": (4096,), "fc7": (4096,),
                "fc8": (1000,)}


def _expected_paper_params(groups: int) -> int:
  """Weights + biases layer by layer, written out from the paper's filter sizes."""
  conv = [(96, 11 * 11 * 3), (256, 5 * 5 * 96 // groups), (384, 3 * 3 * 256),
          (384, 3 * 3 * 384 // groups), (256, 3 * 3 * 384 // groups)]
  fc = [(4096, 6 * 6 * 256), (4096, 4096), (1000, 4096)]
  return sum(out * fan_in + out for out, fan_in in conv + fc)


@pytest.mark.parametrize("groups", [1, 2])
def test_paper_alexnet_shapes_and_parameter_count(groups):
  module = models.build("alexnet", groups=groups)
  variables = jax.eval_shape(lambda: models.init_variables("alexnet", module))
  shapes = models.output_shapes(models.ModelFn(module), variables, (1, 227, 227, 3))
  for name, shape in PAPER_SHAPES.items():
    assert shapes[name][1:] == shape, name
  n_params = layers.count_params(variables["params"])
  assert n_params == _expected_paper_params(groups)
  assert 58e6 < n_params < 63e6  # "60 million parameters" (paper §4)
  # conv2 sees only 48 of conv1's 96 maps per group in the two-GPU net.
  assert variables["params"]["conv2"]["kernel"].shape == (5, 5, 96 // groups, 256)


def test_torchvision_alexnet_parameter_count():
  module = models.build("alexnet_torchvision")
  variables = jax.eval_shape(lambda: models.init_variables("alexnet_torchvision", module))
  assert layers.count_params(variables) == 61_100_840  # torchvision docs, AlexNet_Weights


def test_local_response_norm_matches_the_paper_formula():
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 3, 3, 7)) * 10
  got = layers.local_response_norm(x, size=5, k=2.0, alpha=1e-4, beta=0.75)
  a = np.asarray(x, np.float64)
  want = np.empty_like(a)
  n_maps = a.shape[-1]
  for i in range(n_maps):  # b_i = a_i / (k + alpha * sum_{j=max(0,i-2)}^{min(N-1,i+2)} a_j^2)^beta
    lo, hi = max(0, i - 2), min(n_maps - 1, i + 2)
    want[..., i] = a[..., i] / (2.0 + 1e-4 * (a[..., lo:hi + 1] ** 2).sum(-1)) ** 0.75
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_grouped_conv_sees_only_its_half():
  module = models.build("alexnet", groups=2)
  variables = models.init_variables("alexnet", module)
  x = jax.random.uniform(jax.random.PRNGKey(1), (1, 227, 227, 3))
  _, acts = module.apply(variables, x)
  norm1 = acts["norm1"]
  # Perturbing conv1's second half of maps must leave conv2's first 128 maps unchanged.
  def conv2_from(norm):
    pooled = layers.max_pool(norm, 3, 2)
    p = variables["params"]["conv2"]
    out = jax.lax.conv_general_dilated(pooled, p["kernel"], (1, 1), [(2, 2), (2, 2)],
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       feature_group_count=2)
    return out + p["bias"]
  base = conv2_from(norm1)
  bumped = conv2_from(norm1.at[..., 48:].add(1.0))
  np.testing.assert_allclose(base[..., :128], bumped[..., :128], atol=1e-5)
  assert not np.allclose(base[..., 128:], bumped[..., 128:])
  pre_relu = acts["conv2"]
  np.testing.assert_allclose(pre_relu, jax.nn.relu(base), rtol=1e-4, atol=1e-4)


def test_adaptive_pool_matches_torch_bins():
  x = np.arange(2 * 13 * 10 * 3, dtype=np.float32).reshape(2, 13, 10, 3)
  got = np.asarray(layers.adaptive_avg_pool(jnp.asarray(x), 6))
  for i, (r0, r1) in enumerate([(i * 13 // 6, -(-(i + 1) * 13 // 6)) for i in range(6)]):
    for j, (c0, c1) in enumerate([(j * 10 // 6, -(-(j + 1) * 10 // 6)) for j in range(6)]):
      np.testing.assert_allclose(got[:, i, j], x[:, r0:r1, c0:c1].mean(axis=(1, 2)), rtol=1e-6)


def test_flatten_follows_torch_channel_major_order():
  x = np.arange(2 * 2 * 3 * 4).reshape(2, 2, 3, 4)  # N H W C
  np.testing.assert_array_equal(layers.flatten_chw(x), x.transpose(0, 3, 1, 2).reshape(2, -1))


@pytest.mark.parametrize("name", ["alexnet_cifar", "alexnet_fashion_mnist"])
def test_small_models_forward_and_train_mode(name):
  spec = models.get_spec(name)
  module = models.build(name, width=0.25, fc_width=64)
  variables = models.init_variables(name, module)
  x = jnp.full((2, spec.input_size, spec.input_size, 3), 0.5)
  logits, acts = module.apply(variables, x)
  assert logits.shape == (2, len(spec.class_names))
  assert np.array_equal(acts["fc8"], logits)
  train_logits, _ = module.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(0)})
  assert not np.allclose(train_logits, logits)  # dropout is active in training


def test_paper_init_option():
  module = models.build("alexnet", paper_init=True)
  params = models.init_variables("alexnet", module)["params"]
  assert np.all(params["conv2"]["bias"] == 1) and np.all(params["fc7"]["bias"] == 1)
  assert np.all(params["conv1"]["bias"] == 0) and np.all(params["conv3"]["bias"] == 0)
  assert abs(float(np.std(params["fc6"]["kernel"])) - 0.01) < 1e-3


def test_init_compiles_once_per_model_and_matches_a_fresh_jit():
  cache_size = models._init._cache_size  # pylint: disable=protected-access
  first = models.build("alexnet_cifar", width=0.125, fc_width=23)  # a size no other test uses
  again = models.build("alexnet_cifar", width=0.125, fc_width=23)  # equal, not the same object
  compiled = cache_size()
  variables = models.init_variables("alexnet_cifar", first, seed=3)
  assert cache_size() == compiled + 1
  assert jax.tree.all(jax.tree.map(np.array_equal, models.init_variables("alexnet_cifar", again, 3),
                                   variables))
  assert cache_size() == compiled + 1  # the second load reused the first one's compiled init
  fresh = jax.jit(lambda key, x: first.init(key, x, train=False))(
      jax.random.PRNGKey(3), jnp.zeros((1, 32, 32, 3), jnp.float32))
  assert jax.tree.all(jax.tree.map(np.array_equal, fresh, variables))
  # A list option (as JSON gives) is built as a tuple: the module stays hashable for the cache.
  listed = models.build("alexnet_cifar", width=0.125, fc_width=16, mean=[0.5, 0.5, 0.5])
  assert listed.mean == (0.5, 0.5, 0.5)
  assert models.init_variables("alexnet_cifar", listed)["params"]["fc8"]["kernel"].shape == (16, 10)


def test_unknown_names_are_one_line_errors():
  with pytest.raises(UserError, match=r"unknown model 'resnet'; allowed: .*alexnet"):
    models.get_spec("resnet")
  with pytest.raises(UserError, match="relu_mode"):
    models.build("alexnet", relu_mode="leaky")
  with pytest.raises(UserError, match="bad model option"):
    models.build("alexnet_cifar", depth=3)
  with pytest.raises(UserError, match="has no default for style"):
    models.get_spec("alexnet").default("style")


def test_receptive_fields_of_the_papers_alexnet():
  # R-CNN §3.1: pool5 units see 195x195 of the 227x227 input; conv5 163 (Girshick et al. 2014).
  fields = models.ModelFn(models.build("alexnet", groups=1)).receptive_fields(227)
  assert [fields[n].size for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5",
                                   "pool5")] == [11, 19, 51, 67, 99, 131, 163, 195]
  assert (fields["pool5"].stride, fields["pool5"].offset) == (32, -64)
  assert (fields["pool5"].height, fields["pool5"].width) == (6, 6)
  assert fields["pool5"].box(0, 5, 227, 227) == (0, 96, 131, 227)   # clipped at the borders
  assert fields["fc6"].size == 227


def test_window_output_sizes_equal_torch_and_tensorflow():
  torch = pytest.importorskip("torch")
  for kernel, stride, padding in ((3, 2, 0), (3, 2, 1), (2, 2, 1), (1, 2, 0), (5, 3, 2)):
    for ceil in (False, True):
      pool = torch.nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil)
      window = models.Window(kernel, stride, padding, ceil=ceil)
      for n in range(max(kernel - 2 * padding, 1), 40):
        assert window.output_size(n) == pool(torch.zeros(1, 1, n, n)).shape[-1], (kernel, stride,
                                                                                   padding, ceil, n)
  for n in range(3, 30):   # TensorFlow 'SAME': ceil(n / s) outputs, the smaller half first
    pads = jax.lax.padtype_to_pads((n,), (3,), (2,), "SAME")[0]
    assert models.Window(3, 2, "same").output_size(n) == -(-n // 2)
    assert models.Window(3, 2, "same").pad_before(n) == pads[0]


@pytest.mark.parametrize("window,stride,padding,size", [(3, 2, "VALID", 13), (3, 2, "SAME", 8),
                                                        (2, 2, "VALID", 8), (3, 2, "SAME", 7)])
def test_max_pool_matches_reduce_window_values_and_gradients(window, stride, padding, size):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 3))  # no ties
  reference = lambda x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, window, 1),
                                              (1, stride, stride, 1), padding)
  np.testing.assert_array_equal(layers.max_pool(x, window, stride, padding), reference(x))
  g = jax.random.normal(jax.random.PRNGKey(1), reference(x).shape)
  grad = lambda pool: jax.grad(lambda x: jnp.sum(pool(x) * g))(x)
  np.testing.assert_allclose(grad(lambda x: layers.max_pool(x, window, stride, padding)),
                             grad(reference), atol=1e-6)


def test_max_pool_gradient_goes_to_the_first_maximum_like_torch():
  torch = pytest.importorskip("torch")
  x = np.round(np.random.RandomState(0).rand(2, 9, 9, 4) * 3).astype(np.float32)  # many ties
  g = np.random.RandomState(1).randn(2, 4, 4, 4).astype(np.float32)
  ours = jax.grad(lambda x: jnp.sum(layers.max_pool(x, 3, 2) * g))(jnp.asarray(x))
  xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
  out = torch.nn.functional.max_pool2d(xt, 3, 2)
  (out * torch.tensor(g.transpose(0, 3, 1, 2).copy())).sum().backward()
  np.testing.assert_array_equal(layers.max_pool(jnp.asarray(x), 3, 2),
                                out.detach().numpy().transpose(0, 2, 3, 1))
  np.testing.assert_allclose(ours, xt.grad.numpy().transpose(0, 2, 3, 1), atol=1e-6)


@pytest.mark.parametrize("size,kernel,stride,pads", [(224, 11, 4, ((2, 2), (2, 2))),
                                                      (227, 11, 4, ((0, 0), (0, 0))),
                                                      (17, 3, 2, ((1, 0), (0, 1))),
                                                      (15, 4, 3, ((0, 0), (2, 2)))])
def test_strided_conv_values_and_gradients_equal_lax(size, kernel, stride, pads):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 3))
  k = jax.random.normal(jax.random.PRNGKey(1), (kernel, kernel, 3, 5))
  numbers = jax.lax.conv_dimension_numbers(x.shape, k.shape, layers.NHWC)
  reference = lambda x, k: jax.lax.conv_general_dilated(x, k, (stride, stride), pads,
                                                        dimension_numbers=numbers)
  ours = lambda x, k: layers.strided_conv(x, k, (stride, stride), pads, (1, 1), (1, 1), numbers)
  np.testing.assert_allclose(ours(x, k), reference(x, k), rtol=1e-5, atol=1e-4)
  g = jax.random.normal(jax.random.PRNGKey(2), reference(x, k).shape)
  grads = lambda conv: jax.grad(lambda x, k: jnp.sum(conv(x, k) * g), argnums=(0, 1))(x, k)
  for got, want in zip(grads(ours), grads(reference)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_max_pool_of_a_map_smaller_than_the_window_is_empty_like_reduce_window():
  x = jnp.ones((2, 2, 5, 3))
  want = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
  assert layers.max_pool(x, 3, 2).shape == want.shape == (2, 0, 2, 3)
