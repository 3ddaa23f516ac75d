"""The AlexNet optimiser and learning-rate schedule (Krizhevsky et al. 2012, §5).

Update rule of §5, with ε the learning rate:
    v <- 0.9 v - 0.0005 ε w - ε <dL/dw>,    w <- w + v
i.e. weight decay and the learning rate act *inside* the momentum accumulator (optax.sgd scales
after it; the two differ only when ε changes). Weight decay applies to the weights (kernels), not
the biases, as in cuda-convnet's layer files (`wc` on weights only) and Caffe's bvlc_alexnet
(`decay_mult: 0` on biases).

Learning rate = base_lr x schedule(step) x plateau scale:
- schedule: an optional linear warm-up, then `constant` (the paper), `cosine`, `linear` (to 0) or
  `step` (x0.1 at given fractions of training); built from optax schedules.
- plateau scale: "divided by 10 when the validation error stopped improving", three times in
  total (§5). optax.contrib.reduce_on_plateau holds that state machine (best value, patience,
  cooldown, scale); we feed it the validation error once per evaluation (not the training loss
  every step, which its chained use would imply), keep its state in the TrainState, and multiply
  the scheduled lr by its `scale` inside the train step, so the lr is a traced value and changing
  it never recompiles.
"""
import jax
import jax.numpy as jnp
import optax

from cnn_vis.errors import choose

DECAYS = ("constant", "cosine", "linear", "step")


def paper_sgd(learning_rate, momentum: float = 0.9, weight_decay: float = 5e-4,
              decay_mask=None) -> optax.GradientTransformation:
  """§5's SGD: v <- momentum v - lr (weight_decay w + g); the update is v."""
  return optax.chain(optax.add_decayed_weights(weight_decay, mask=decay_mask),
                     optax.scale_by_learning_rate(learning_rate),
                     optax.trace(decay=momentum))


def kernels_only(params):
  """Weight-decay mask: True for conv/dense kernels, False for biases (and norm scales)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


def optimizer(momentum: float, weight_decay: float) -> optax.GradientTransformation:
  """paper_sgd with its learning rate an injected hyperparameter, set every step by set_lr."""
  return optax.inject_hyperparams(paper_sgd, static_args="decay_mask")(
      learning_rate=0.0, momentum=momentum, weight_decay=weight_decay, decay_mask=kernels_only)


def set_lr(opt_state, lr):
  """opt_state of `optimizer` with its learning rate replaced by the (traced) value lr."""
  return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})


def schedule(decay: str, total_steps: int, warmup_steps: int = 0,
             step_fractions=(0.5, 0.75), step_factor: float = 0.1):
  """step -> multiplier of the base lr (1 at the peak): linear warm-up from 0, then `decay`."""
  choose("lr decay", decay, DECAYS)
  rest = max(total_steps - warmup_steps, 1)
  if decay == "constant":
    main = optax.constant_schedule(1.0)
  elif decay == "cosine":
    main = optax.cosine_decay_schedule(1.0, rest)
  elif decay == "linear":
    main = optax.linear_schedule(1.0, 0.0, rest)
  else:
    main = optax.piecewise_constant_schedule(
        1.0, {int(f * total_steps) - warmup_steps: step_factor for f in step_fractions})
  if not warmup_steps:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, 1.0, warmup_steps), main],
                              [warmup_steps])


def plateau(factor: float = 0.1, patience: int = 1, max_reductions: int = 3, cooldown: int = 0,
            rtol: float = 1e-4):
  """optax's reduce-on-plateau, counting patience and cooldown in evaluations; at most
  max_reductions reductions (the paper: three)."""
  return optax.contrib.reduce_on_plateau(factor=factor, patience=patience, rtol=rtol,
                                         cooldown=cooldown, accumulation_size=1,
                                         min_scale=factor ** max_reductions * (1 - 1e-6))


def plateau_update(tx, plateau_state, error):
  """The plateau state after one evaluation with validation error `error` (lower is better)."""
  _, new_state = tx.update({}, plateau_state, value=jnp.asarray(error, jnp.float32))
  return new_state
