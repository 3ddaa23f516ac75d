"""Pure train and eval steps (Krizhevsky et al. 2012, §4.1 and §5).

`train_step(state, batch) -> (state, metrics)`: augments the batch on device (random crops,
flips, PCA lighting; keys folded from the state's key and step), takes one SGD step of the
cross-entropy, and reports loss, accuracy, lr and gradient/parameter norms. A step whose loss or
gradient is not finite leaves the state unchanged and reports finite=0, so a diverging run never
overwrites its last good parameters (the loop stops on it).

`predict(variables, images)` averages softmax outputs over the evaluation crops: the centre
crop, or the paper's ten crops (corners, centre and their mirror images). `eval_metrics` turns
probabilities into masked sums (the eval pipeline pads its last batch) so that metrics over a
whole split are sums over batches divided by the count.

The static parts (module.apply, the optimiser, the lr schedule, augmentation settings) are bound
with functools.partial by the caller; the functions are pure and jit once.
"""
import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnn_vis.data import augment as aug
from cnn_vis.train import optim
from cnn_vis.train.state import TrainState


@dataclasses.dataclass(frozen=True, eq=False)
class Augment:
  """Training augmentation of §4.1: crop x crop windows of the images zero-padded by `pad`,
  random flips, and PCA lighting with std `lighting_std` along (eigval, eigvec) if given."""
  crop: int
  pad: int = 0
  eigval: np.ndarray | None = None
  eigvec: np.ndarray | None = None  # rows R, G, B; columns the eigenvectors
  lighting_std: float = aug.LIGHTING_STD

  def __call__(self, key, images):
    crop_key, light_key = jax.random.split(key)
    images = aug.random_crop_flip(crop_key, images, self.crop, self.pad)
    if self.eigval is not None and self.lighting_std > 0:
      images = aug.pca_lighting(light_key, images, self.eigval, self.eigvec,
                                self.lighting_std)
    return images


def cross_entropy(logits, labels, label_smoothing: float = 0.0):
  """Per-example softmax cross-entropy, optionally with smoothed targets."""
  targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def _apply_train(apply_fn, state: TrainState, params, images, dropout_key):
  """(logits, new batch_stats) of a training forward pass."""
  variables = {**state.variables(), "params": params}
  if state.batch_stats:
    (logits, _), updates = apply_fn(variables, images, train=True, rngs={"dropout": dropout_key},
                                    mutable=["batch_stats"])
    return logits, updates["batch_stats"]
  logits, _ = apply_fn(variables, images, train=True, rngs={"dropout": dropout_key})
  return logits, state.batch_stats


def train_step(state: TrainState, batch: dict, *, apply_fn: Callable,
               tx: optax.GradientTransformation, lr_schedule: Callable, augment: Augment,
               label_smoothing: float = 0.0):
  """One SGD step on batch {"image", "label"}; returns (new state, scalar metrics)."""
  aug_key, dropout_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
  images = augment(aug_key, batch["image"])
  labels = batch["label"]

  def loss_fn(params):
    logits, batch_stats = _apply_train(apply_fn, state, params, images, dropout_key)
    return cross_entropy(logits, labels, label_smoothing).mean(), (logits, batch_stats)

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  lr = lr_schedule(state.step) * state.plateau.scale
  updates, opt_state = tx.update(grads, optim.set_lr(state.opt_state, lr), state.params)
  params = optax.apply_updates(state.params, updates)
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state)
  # Keep the last good state on a non-finite step: nothing NaN is ever saved.
  new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
  metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
             "lr": lr, "grad_norm": grad_norm, "param_norm": optax.tree.norm(params),
             "finite": finite.astype(jnp.float32)}
  return new_state, metrics


def eval_views(images, crop: int, crops: str):
  """The evaluation views of a batch, (V, N, crop, crop, 3): the centre crop, or the ten crops.

  On images no bigger than the crop (CIFAR) the ten crops reduce to the image and its mirror.
  """
  if crops == "center":
    return aug.center_crop(images, crop)[None]
  if images.shape[1] == crop and images.shape[2] == crop:
    return jnp.stack([images, images[:, :, ::-1]])
  return aug.ten_crops(images, crop)


def predict(variables, images, *, apply_fn: Callable, crop: int, crops: str = "center"):
  """Softmax probabilities (N, classes) averaged over the evaluation views."""
  views = eval_views(images, crop, crops)
  probs = jax.lax.map(lambda v: jax.nn.softmax(apply_fn(variables, v, train=False)[0]), views)
  return probs.mean(axis=0)


def eval_metrics(probs, labels, mask) -> dict:
  """Masked sums over a batch: count, loss (NLL of probs), top-1 and top-5 correct."""
  mask = mask.astype(jnp.float32)
  nll = -jnp.log(jnp.take_along_axis(probs, labels[:, None], axis=-1)[:, 0] + 1e-12)
  k = min(5, probs.shape[-1])
  top5 = jnp.any(jax.lax.top_k(probs, k)[1] == labels[:, None], axis=-1)
  return {"count": mask.sum(), "loss": (nll * mask).sum(),
          "correct": ((jnp.argmax(probs, -1) == labels) * mask).sum(),
          "correct5": (top5 * mask).sum()}


def eval_step(state: TrainState, batch: dict, *, apply_fn: Callable, crop: int,
              crops: str = "center") -> dict:
  """eval_metrics of one model on a padded eval batch {"image", "label", "mask"}."""
  probs = predict(state.variables(), batch["image"], apply_fn=apply_fn, crop=crop, crops=crops)
  return eval_metrics(probs, batch["label"], batch["mask"])


def summarize(sums: dict) -> dict:
  """Accuracy, top-5 accuracy and mean loss from summed eval_metrics (numpy or jax)."""
  count = max(float(sums["count"]), 1.0)
  return {"accuracy": float(sums["correct"]) / count, "top5": float(sums["correct5"]) / count,
          "loss": float(sums["loss"]) / count, "count": int(sums["count"])}
