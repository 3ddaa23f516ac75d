"""ReLU backward rules against their definitions (Zeiler & Fergus 2014; Springenberg et al. 2015)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis.models.relu import relu, relu6

X = jnp.array([-2.0, -0.5, 0.5, 3.0, 7.0])
UP = jnp.array([1.0, -1.0, -2.0, 4.0, 5.0])


def _vjp(fn, mode):
  _, pullback = jax.vjp(lambda x: fn(x, mode), X)
  return np.asarray(pullback(UP)[0])


def test_forward_is_the_same_in_every_mode():
  for mode in ("standard", "deconvnet", "guided"):
    np.testing.assert_array_equal(relu(X, mode), [0, 0, 0.5, 3, 7])
    np.testing.assert_array_equal(relu6(X, mode), [0, 0, 0.5, 3, 6])


def test_backward_rules_by_hand():
  # standard: R * 1[x > 0]; deconvnet: max(R, 0); guided: R * 1[x > 0] * 1[R > 0].
  np.testing.assert_array_equal(_vjp(relu, "standard"), [0, 0, -2, 4, 5])
  np.testing.assert_array_equal(_vjp(relu, "deconvnet"), [1, 0, 0, 4, 5])
  np.testing.assert_array_equal(_vjp(relu, "guided"), [0, 0, 0, 4, 5])
  np.testing.assert_array_equal(_vjp(relu6, "standard"), [0, 0, -2, 4, 0])
  np.testing.assert_array_equal(_vjp(relu6, "guided"), [0, 0, 0, 4, 0])


def test_standard_mode_equals_jax_grad_of_plain_relu():
  x = jax.random.normal(jax.random.PRNGKey(0), (64,))
  w = jax.random.normal(jax.random.PRNGKey(1), (64,))
  ours = jax.grad(lambda v: jnp.sum(w * relu(v, "standard") ** 2))(x)
  plain = jax.grad(lambda v: jnp.sum(w * jnp.maximum(v, 0) ** 2))(x)
  np.testing.assert_allclose(ours, plain, rtol=1e-6)


def test_guided_two_layer_net_by_hand():
  """y = w2 . relu(W1 x): guided gradient masks both forward negatives and negative signals."""
  w1 = jnp.array([[1.0, -1.0], [2.0, 1.0], [-1.0, 0.5]])
  w2 = jnp.array([1.0, -3.0, 2.0])
  x = jnp.array([1.0, 0.5])  # W1 x = [0.5, 2.5, -0.75]
  grad = {m: jax.grad(lambda v: w2 @ relu(w1 @ v, m))(x) for m in ("standard", "guided", "deconvnet")}
  # upstream at the ReLU = w2 = [1, -3, 2]; forward mask = [1, 1, 0].
  np.testing.assert_allclose(grad["standard"], w1.T @ jnp.array([1.0, -3.0, 0.0]))
  np.testing.assert_allclose(grad["guided"], w1.T @ jnp.array([1.0, 0.0, 0.0]))
  np.testing.assert_allclose(grad["deconvnet"], w1.T @ jnp.array([1.0, 0.0, 2.0]))


@pytest.mark.parametrize("mode", ["guided", "deconvnet"])
def test_modes_work_under_jit_and_vmap(mode):
  fn = jax.jit(jax.vmap(jax.grad(lambda v: jnp.sum(relu(v, mode) * UP))))
  out = fn(jnp.stack([X, -X]))
  assert out.shape == (2, 5)
