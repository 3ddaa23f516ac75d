"""ReLU (and ReLU6) with a selectable backward rule, via jax.custom_vjp.

Modes, with f the forward input and R the gradient arriving from above:
- `standard`: R * 1[f > 0] (ordinary backprop).
- `deconvnet` (Zeiler & Fergus 2014, §2.1 "rectification"): max(R, 0), ignoring the forward sign.
- `guided` (Springenberg et al. 2015, §3.4): R * 1[f > 0] * 1[R > 0].
For ReLU6 the forward mask is 1[0 < f < 6] in every mode that uses it.
"""
import functools

import jax
import jax.numpy as jnp

RELU_MODES = ("standard", "deconvnet", "guided")


def _backward(mode: str, forward_mask, upstream):
  if mode == "standard":
    return upstream * forward_mask
  if mode == "deconvnet":
    return jnp.maximum(upstream, 0)
  return upstream * forward_mask * (upstream > 0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _clipped_relu(x, mode: str, cap):
  return jnp.clip(x, 0, cap)


def _clipped_relu_fwd(x, mode, cap):
  mask = (x > 0) if cap is None else ((x > 0) & (x < cap))
  return jnp.clip(x, 0, cap), mask.astype(x.dtype)


def _clipped_relu_bwd(mode, cap, mask, upstream):
  return (_backward(mode, mask, upstream),)


_clipped_relu.defvjp(_clipped_relu_fwd, _clipped_relu_bwd)


def relu(x, mode: str = "standard"):
  """max(x, 0) whose gradient follows `mode` (one of RELU_MODES)."""
  return _clipped_relu(x, mode, None)


def relu6(x, mode: str = "standard"):
  """min(max(x, 0), 6) whose gradient follows `mode` (one of RELU_MODES)."""
  return _clipped_relu(x, mode, 6.0)
