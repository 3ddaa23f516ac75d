"""One streaming pass of a trained network over a dataset: what top-k patches, codes for t-SNE
and nearest-neighbour retrieval all start from (docs/papers.md §10, §11).

    forward = features(apply_fn, ("conv5", "pool5"))     # only these layers are computed
    result = stream_pass(stream.batches(128), step, state, variables, total=stream.num_examples)

`step(state, variables, batch) -> (state, outputs)` is a pure function: `state` is whatever the
technique accumulates (a running top-k; its size fixed up front), `batch` the global batch
{"image", "mask", "id", "label"} and `outputs` optional per-example arrays (e.g. codes) handed to
`collect` on the host. The pass compiles `step` once with the batch sharded over the 1-D `data`
mesh of every device of every host (cnn_vis.train.parallel; each host feeds its own part of the
batch) and the state and the variables replicated, and donates the state, so a step's memory is
one batch's activations plus the state, whatever the size of the dataset. Outputs reach the host
one step late, so reading them never stalls the device. Progress (images/s, ETA) goes to a tqdm
bar on a terminal (cnn_vis.runs.progress).
"""
import dataclasses
import functools
import time
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from cnn_vis import runs
from cnn_vis.train import parallel

BATCH_KEYS = ("image", "mask", "id", "label")


@dataclasses.dataclass(frozen=True)
class Features:
  """apply_fn restricted to the named layers: variables, images -> {layer: activations}; under
  jit the layers not asked for are never computed. Hashable (a jit-static argument)."""
  apply_fn: Any
  layers: tuple[str, ...]

  def __call__(self, variables, images) -> dict:
    logits, acts = self.apply_fn(variables, images)
    acts = dict(acts)
    acts.setdefault(getattr(self.apply_fn, "logits_name", "logits"), logits)
    return {name: acts[name] for name in self.layers}


def features(apply_fn, layers: Sequence[str]) -> Features:
  return Features(apply_fn, tuple(layers))


@dataclasses.dataclass(frozen=True)
class PassResult:
  state: Any              # the final state, on the host (numpy leaves)
  images: int             # real (unmasked) examples seen, over all hosts
  seconds: float          # wall time of the pass, compilation included
  compile_seconds: float  # of which the first step (compilation and its batch)

  @property
  def images_per_second(self) -> float:
    """Over the whole pass, compilation included."""
    return self.images / max(self.seconds, 1e-9)


def _to_host(tree):
  """Numpy copies of per-example outputs (batch-sharded): the whole global batch on every host."""
  if jax.process_count() > 1:
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.tree.map(np.asarray, tree)


@functools.lru_cache(maxsize=16)
def _compiled(step: Callable, mesh):
  """The jitted step (state donated; state replicated, outputs batch-sharded): a hashable step
  (a frozen dataclass) compiles once per process and input shapes, whatever the pass."""
  return jax.jit(step, donate_argnums=0,
                 out_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)))


def stream_pass(batches: Iterable[dict], step: Callable, state, variables, *, total: int | None
                = None, mesh=None, desc: str = "pass",
                collect: Callable[[dict, np.ndarray], None] | None = None) -> PassResult:
  """Runs `step` over every batch (see the module docstring); `collect(outputs, mask)` receives
  each global batch's outputs and mask as numpy arrays, in order. Returns the final state."""
  mesh = mesh if mesh is not None else parallel.data_mesh()
  variables = parallel.replicate(variables, mesh)
  state = parallel.replicate(jax.tree.map(np.asarray, state), mesh)
  compiled = _compiled(step, mesh)
  start = time.perf_counter()
  compile_seconds, seen, pending = 0.0, 0, None
  with runs.progress(total=total, desc=desc, unit="img") as bar:
    for host_batch in batches:
      parallel.check_batch_size(len(host_batch["mask"]) * jax.process_count(), mesh)
      batch = parallel.shard_batch({k: host_batch[k] for k in BATCH_KEYS}, mesh)
      state, outputs = compiled(state, variables, batch)
      if not compile_seconds:
        jax.block_until_ready(state)
        compile_seconds = time.perf_counter() - start
      if pending is not None and collect is not None:
        collect(*_to_host(pending))
      pending = (outputs, batch["mask"]) if outputs else None
      real = int(np.sum(host_batch["mask"]))
      seen += real
      bar.update(real)
    if pending is not None and collect is not None:
      collect(*_to_host(pending))
  state = jax.tree.map(np.asarray, parallel.to_host(state))
  seconds = time.perf_counter() - start
  if jax.process_count() > 1:
    seen = int(np.sum(multihost_utils.process_allgather(np.asarray(seen))))
  return PassResult(state, seen, seconds, compile_seconds)


def no_outputs() -> dict:
  """The `outputs` of a step that only accumulates state."""
  return {}


def merge_top_k(kept: tuple, candidates: tuple) -> tuple:
  """The k best of kept (values (R, k), *fields (R, k)) and candidates (values (R, M), *fields
  (R, M)) per row: one lax.top_k over the k + M columns, values first, fields carried along.
  Kept entries come first and lax.top_k prefers the lower index among equal values, so ties
  keep what was seen earlier: streaming merges equal a stable sort of everything in stream
  order."""
  joined = [jnp.concatenate([a, b.astype(a.dtype)], axis=1) for a, b in zip(kept, candidates)]
  best, index = jax.lax.top_k(joined[0], kept[0].shape[1])
  return (best, *(jnp.take_along_axis(a, index, axis=1) for a in joined[1:]))


def masked(values, mask, fill=-jnp.inf):
  """values (B, ...) with the rows of padding examples (mask False) set to `fill`."""
  return jnp.where(mask.reshape((-1,) + (1,) * (values.ndim - 1)), values, fill)
