"""Data parallelism over every device of every host with jax.sharding.

A 1-D mesh with axis `data` spans jax.devices() (all hosts). Batches are sharded along their
first axis, the train state is replicated; jit inserts the gradient all-reduce. Each host feeds
only its own slice of the global batch (cnn_vis.data.load shards the input per host) and
jax.make_array_from_process_local_data assembles the global array. On CPU the same code runs
on N virtual devices with XLA_FLAGS=--xla_force_host_platform_device_count=N.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnn_vis.errors import check

AXIS = "data"


def data_mesh(devices=None) -> Mesh:
  """A 1-D `data` mesh over the given devices (default: every device of every host)."""
  return Mesh(np.asarray(devices if devices is not None else jax.devices()), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "batch_size") -> None:
  n = mesh.devices.size
  check(batch_size > 0 and batch_size % n == 0,
        f"{what} {batch_size} is not a positive multiple of the {n} devices; use a multiple of {n}")


def replicate(tree, mesh: Mesh):
  """The tree (identical on every host) placed on every device of the mesh."""
  sharding = replicated(mesh)

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(put, tree)


def shard_batch(local_batch: dict, mesh: Mesh) -> dict:
  """The global batch from this host's numpy slice of it (leading axis sharded over `data`)."""
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}


def to_host(tree):
  """Numpy copies of replicated arrays (works when other hosts hold other devices)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)
