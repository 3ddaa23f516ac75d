"""The training state: one explicit pytree saved and restored whole by orbax."""
from typing import Any

import flax
import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue exactly where it stopped.

  plateau: optax reduce_on_plateau state; its `scale` multiplies the scheduled learning rate.
  rng: a raw uint32 PRNG key; each step folds in `step`, so no key is ever consumed twice.
  batch_stats: {} for AlexNet (no batch norm); kept so models with it train unchanged.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  plateau: Any
  rng: jax.Array

  def variables(self) -> dict:
    """The model variables, as module.apply takes them."""
    return {"params": self.params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}


def create(variables, tx: optax.GradientTransformation, plateau_tx: optax.GradientTransformation,
           rng: jax.Array) -> TrainState:
  """A fresh state at step 0 from initialised model variables."""
  params = variables["params"]
  batch_stats = flax.core.unfreeze(variables.get("batch_stats", {}))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params), plateau=plateau_tx.init(params), rng=rng)
