"""Ensembles: N members trained in one compiled step, evaluated by averaged softmax.

Krizhevsky et al. 2012, §6 / Table 2: averaging the predictions of 5 (7) CNNs brings top-5 error
on ILSVRC-2012 val from 18.2% to 16.4% (15.4% with pre-training). Members differ by seed: initial
weights, dropout masks and augmentation (each member's key drives its own crops, flips and
lighting); they see the same batches.

Every member-level function maps a single-model function over a leading member axis of the
state, inside one compiled step, in one of three ways (MODES):
- "vmap": one batched program. On accelerators the natural choice while memory allows; on XLA
  CPU batched convolution kernels become grouped convolutions, which run several times slower.
- "unroll": the members' computations side by side in one program (compile time grows with N,
  run time is N single steps at full speed); the fast choice on CPU.
- "map": jax.lax.map, members one after another in a loop (memory of one member; XLA CPU runs
  convolutions inside loops slowly).
A single model is an ensemble of one, so the training loop has one code path.
"""
from typing import Callable

import jax
import jax.numpy as jnp

from cnn_vis.train import steps


def stack(trees):
  """Stacks same-structured pytrees along a new leading member axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def member(tree, index: int):
  """Member `index` of a stacked pytree."""
  return jax.tree.map(lambda x: x[index], tree)


def num_members(tree) -> int:
  return jax.tree.leaves(tree)[0].shape[0]


MODES = ("vmap", "unroll", "map")


def over_members(fn: Callable, mode: str = "vmap") -> Callable:
  """fn(member_state, *shared) -> fn over the leading axis of member_state, shared args shared."""
  if mode == "vmap":
    return lambda states, *shared: jax.vmap(lambda s: fn(s, *shared))(states)
  if mode == "unroll":
    return lambda states, *shared: stack([fn(member(states, i), *shared)
                                          for i in range(num_members(states))])
  return lambda states, *shared: jax.lax.map(lambda s: fn(s, *shared), states)


def train_step(states, batch, *, step_fn: Callable, mode: str = "vmap"):
  """step_fn(state, batch) -> (state, metrics) applied to every member on the same batch."""
  return over_members(step_fn, mode)(states, batch)


def eval_step(states, batch, *, predict_fn: Callable, mode: str = "vmap") -> dict:
  """Masked eval sums of every member ("members", each value shaped (N,)) and of the ensemble's
  averaged softmax ("ensemble"). predict_fn(variables, images) -> probabilities."""
  probs = over_members(lambda s, images: predict_fn(s.variables(), images), mode)(
      states, batch["image"])
  members = jax.vmap(steps.eval_metrics, in_axes=(0, None, None))(probs, batch["label"],
                                                                   batch["mask"])
  return {"members": members,
          "ensemble": steps.eval_metrics(probs.mean(axis=0), batch["label"], batch["mask"])}
