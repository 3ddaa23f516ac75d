"""The training loop (Krizhevsky et al. 2012, §4-§6): data, steps, evaluation, checkpoints, logs.

    results = cnn_vis.train.loop.train_and_evaluate(config, workdir)

Trains (or resumes from the newest checkpoint in workdir) an AlexNet-family network or an
ensemble of them on every device of every host, evaluates it as configured and returns the
results dict (also written as workdir/results.json). Writes config.json, checkpoints/ (orbax,
every config.checkpoint_every steps and at the end), metrics.jsonl and tensorboard/ (train
loss/accuracy, lr, gradient and parameter norms, images/s, ETA; validation accuracy).

Input order is deterministic: epoch e reads the training split shuffled with a seed derived from
(config.seed, e), and a resumed run skips the batches of the current epoch already trained on,
so an interrupted run ends with exactly the parameters of an uninterrupted one.
"""
import dataclasses
import functools
import sys
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from cnn_vis import data, models, runs
from cnn_vis.data import augment as aug
from cnn_vis.errors import UserError, check, choose
from cnn_vis.train import checkpoint, ensemble, optim, parallel, state as state_lib, steps

LIGHTING = ("train", "imagenet", "none")
CROPS = ("center", "ten")


def validate(config) -> None:
  """One-line UserErrors for invalid values, before anything is read or written."""
  check(config.lr > 0, f"lr must be > 0, got {config.lr}")
  check(0 <= config.momentum < 1, f"momentum must be in [0, 1), got {config.momentum}")
  check(config.weight_decay >= 0, f"weight_decay must be >= 0, got {config.weight_decay}")
  check(config.batch_size > 0, f"batch_size must be > 0, got {config.batch_size}")
  check(config.eval_batch_size >= 0,
        f"eval_batch_size must be >= 0 (0: batch_size), got {config.eval_batch_size}")
  check(config.epochs > 0 or config.num_steps > 0,
        f"epochs must be > 0 (or num_steps > 0), got epochs={config.epochs}")
  check(config.num_steps >= 0, f"num_steps must be >= 0, got {config.num_steps}")
  check(config.image_size >= 0, f"image_size must be >= 0 (0: the dataset's), got {config.image_size}")
  check(config.lighting_images > 0, f"lighting_images must be > 0, got {config.lighting_images}")
  check(0 <= config.label_smoothing < 1,
        f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
  check(config.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {config.warmup_epochs}")
  choose("lr_decay", config.lr_decay, optim.DECAYS)
  choose("lighting", config.lighting, LIGHTING)
  check(config.lighting_std >= 0, f"lighting_std must be >= 0, got {config.lighting_std}")
  choose("eval_crops", config.eval_crops, CROPS)
  for crops in config.test_crops:
    choose("test_crops entry", crops, CROPS)
  check(config.crop >= 0 and config.crop_pad >= 0,
        f"crop and crop_pad must be >= 0, got {config.crop} and {config.crop_pad}")
  check(config.plateau.patience >= 0, f"plateau.patience must be >= 0 (0: off), "
                                      f"got {config.plateau.patience}")
  check(0 < config.plateau.factor < 1, f"plateau.factor must be in (0, 1), got {config.plateau.factor}")
  check(config.ensemble.members >= 1, f"ensemble.members must be >= 1, got {config.ensemble.members}")
  choose("ensemble.mode", config.ensemble.mode, ensemble.MODES)
  for key in ("log_every", "eval_every", "checkpoint_every"):
    check(config[key] >= 0, f"{key} must be >= 0 (0: once per epoch), got {config[key]}")
  check(config.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {config.keep_checkpoints}")


@dataclasses.dataclass
class Plan:
  """What a run does, derived from config, dataset and devices."""
  steps_per_epoch: int
  total_steps: int
  log_every: int
  eval_every: int
  checkpoint_every: int
  warmup_steps: int


def _every(value: int, steps_per_epoch: int) -> int:
  return value if value > 0 else steps_per_epoch


def make_plan(config, train_examples: int) -> Plan:
  steps_per_epoch = train_examples // config.batch_size
  check(steps_per_epoch >= 1, f"batch_size {config.batch_size} exceeds the {train_examples} "
                              f"examples of train_split {config.train_split!r}")
  total = config.num_steps or config.epochs * steps_per_epoch
  return Plan(steps_per_epoch, total, _every(config.log_every, steps_per_epoch),
              _every(config.eval_every, steps_per_epoch),
              _every(config.checkpoint_every, steps_per_epoch),
              int(round(config.warmup_epochs * steps_per_epoch)))


def _data_kwargs(config) -> dict:
  return dict(data_dir=config.data_dir or None, manual_dir=config.manual_dir or None,
              image_size=config.image_size or None)


def split_size(config, split: str) -> int:
  """Number of examples of a (possibly sliced, e.g. "train[:90%]") split."""
  return data.num_examples(config.dataset, split, data_dir=config.data_dir or None,
                           manual_dir=config.manual_dir or None)


def model_kwargs(config, num_classes: int) -> dict:
  """config.model_kwargs, plus num_classes when the dataset's differs from the model's default."""
  kwargs = dict(config.model_kwargs or {})
  if models.build(config.model, **kwargs).num_classes != num_classes:
    kwargs["num_classes"] = num_classes
  return kwargs


def lighting_basis(config):
  """(eigval, eigvec) for PCA lighting, or (None, None): the paper's ImageNet values, or the
  RGB covariance of the first config.lighting_images training images (read in file order, the
  same on every host and every restart)."""
  if config.lighting == "none" or config.lighting_std == 0:
    return None, None
  if config.lighting == "imagenet":
    return aug.IMAGENET_EIGVAL, aug.IMAGENET_EIGVEC
  batches = data.load(config.dataset, config.train_split, batch_size=config.batch_size,
                      train=False, process_index=0, process_count=1, **_data_kwargs(config))
  images, count = [], 0
  for batch in batches:
    images.append(batch["image"][batch["mask"]])
    count += len(images[-1])
    if count >= config.lighting_images:
      break
  eigval, eigvec = aug.pca_lighting_basis(np.concatenate(images)[:config.lighting_images])
  return np.asarray(eigval), np.asarray(eigvec)


def init_states(config, module, input_size: int, tx, plateau_tx, mesh):
  """The ensemble's stacked initial states (member i from PRNGKey(seed + i)) in one compiled,
  replicated call.

  Compiled without backend optimisation: XLA CPU spends ~15 s optimising the threefry code of a
  network's initialisers (under 1 s at -O0), for a function that runs once.
  """
  dummy = jax.numpy.zeros((1, input_size, input_size, 3), jax.numpy.float32)

  def init_one(seed):
    key = jax.random.PRNGKey(seed)
    variables = module.init(key, dummy, train=False)
    return state_lib.create(variables, tx, plateau_tx, jax.random.fold_in(key, 1))

  seeds = np.arange(config.ensemble.members, dtype=np.int32) + config.seed
  init = jax.jit(jax.vmap(init_one), out_shardings=parallel.replicated(mesh),
                 compiler_options={"xla_backend_optimization_level": 0})
  return init(seeds)


def epoch_seed(seed: int, epoch: int) -> int:
  return (seed * 100_003 + epoch) % 2 ** 31


def train_batches(config, plan: Plan, start_step: int):
  """This host's training batches from global step start_step on; epoch e is shuffled with
  epoch_seed(seed, e). The next epoch's pipeline starts a few batches before this one ends, so
  filling its shuffle buffer overlaps training."""
  def epoch_iter(epoch):
    return data.load(config.dataset, config.train_split, batch_size=config.batch_size, train=True,
                     seed=epoch_seed(config.seed, epoch), **_data_kwargs(config))

  epoch, skip = divmod(start_step, plan.steps_per_epoch)
  current = epoch_iter(epoch)
  upcoming = None
  step = start_step
  for _ in range(skip):
    next(current)
  while step < plan.total_steps:
    left_in_epoch = plan.steps_per_epoch - step % plan.steps_per_epoch
    if left_in_epoch == min(8, plan.steps_per_epoch) and step + left_in_epoch < plan.total_steps:
      upcoming = epoch_iter(epoch + 1)
    yield next(current)
    step += 1
    if step % plan.steps_per_epoch == 0 and step < plan.total_steps:
      epoch += 1
      current, upcoming = upcoming if upcoming is not None else epoch_iter(epoch), None


class Trainer:
  """Compiled steps and the evaluation loop for one config on one mesh."""

  def __init__(self, config, module, mesh, plan: Plan, eigval, eigvec, crop: int):
    self.config, self.mesh = config, mesh
    self.tx = optim.optimizer(config.momentum, config.weight_decay)
    self.plateau_tx = optim.plateau(config.plateau.factor, config.plateau.patience or 1,
                                    config.plateau.max_reductions, config.plateau.cooldown)
    schedule = optim.schedule(config.lr_decay, plan.total_steps, plan.warmup_steps)
    self.lr_schedule = lambda step: config.lr * schedule(step)
    augment = steps.Augment(crop, config.crop_pad, eigval, eigvec, config.lighting_std)
    step_fn = functools.partial(steps.train_step, apply_fn=module.apply, tx=self.tx,
                                lr_schedule=self.lr_schedule, augment=augment,
                                label_smoothing=config.label_smoothing)
    repl, batch = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    self.train_step = jax.jit(
        functools.partial(ensemble.train_step, step_fn=step_fn, mode=config.ensemble.mode),
        in_shardings=(repl, batch), out_shardings=(repl, repl), donate_argnums=0)
    self._eval_steps = {
        crops: jax.jit(functools.partial(
            ensemble.eval_step, mode=config.ensemble.mode,
            predict_fn=functools.partial(steps.predict, apply_fn=module.apply, crop=crop,
                                         crops=crops)),
            in_shardings=(repl, batch), out_shardings=repl)
        for crops in CROPS}
    self.plateau_step = jax.jit(jax.vmap(functools.partial(optim.plateau_update, self.plateau_tx)))

  def evaluate(self, states, split: str, crops: str) -> dict:
    """{"members": [summary per member], "mean": mean of members, "ensemble": summary}."""
    config = self.config
    batch_size = config.eval_batch_size or config.batch_size
    totals = None
    for local in data.load(config.dataset, split, batch_size=batch_size, train=False,
                           **_data_kwargs(config)):
      sums = parallel.to_host(self._eval_steps[crops](states, parallel.shard_batch(local, self.mesh)))
      totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    members = [steps.summarize(ensemble.member(totals["members"], i))
               for i in range(config.ensemble.members)]
    mean = {k: float(np.mean([m[k] for m in members])) for k in ("accuracy", "top5", "loss")}
    return {"members": members, "mean": mean, "ensemble": steps.summarize(totals["ensemble"])}

  def update_plateau(self, states, result: dict):
    """Feeds each member's validation error to its plateau rule (when enabled)."""
    if not self.config.plateau.patience:
      return states
    errors = np.array([1.0 - m["accuracy"] for m in result["members"]], np.float32)
    errors = parallel.replicate(errors, self.mesh)
    return states.replace(plateau=self.plateau_step(states.plateau, errors))


class Logger:
  """metrics.jsonl, TensorBoard and the progress bar (only on a terminal); process 0 writes."""

  def __init__(self, workdir: Path, plan: Plan, start_step: int, batch_size: int):
    self.workdir, self.plan, self.batch_size = workdir, plan, batch_size
    self.main = jax.process_index() == 0
    self.writer = None
    if self.main:
      # TensorFlow's event writer: TF is loaded already by the input pipeline, while tensorboardX
      # would import torch (seconds of start-up) and tf.summary.scalar / flax's writer need the
      # tensorboard package; a scalar is tf.summary.write with the "scalars" plugin tag.
      import tensorflow as tf  # lazy: TensorFlow must not load before torch (DESIGN.md notes)
      from tensorflow.core.framework import summary_pb2  # lazy: as above
      self.writer = tf.summary.create_file_writer(str(workdir / "tensorboard"))
      self.scalar_metadata = summary_pb2.SummaryMetadata(
          plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    self.bar = tqdm(total=plan.total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                    disable=not (self.main and sys.stderr.isatty()))
    self.pending, self.last_step, self.last_time = [], start_step, time.perf_counter()
    self.start_time = self.last_time

  def write(self, step: int, record: dict) -> None:
    if not self.main:
      return
    runs.append_metrics(self.workdir, {"step": step, **record})
    import tensorflow as tf  # lazy: TensorFlow must not load before torch (DESIGN.md notes)
    with self.writer.as_default(step=step):
      for key, value in record.items():
        tf.summary.write(key, tf.constant(float(value)), metadata=self.scalar_metadata)
    self.writer.flush()

  def flush_train(self, step: int, last_good_checkpoint) -> None:
    """Averages the pending train metrics, logs them; UserError if a step was not finite."""
    if not self.pending:
      return
    values = parallel.to_host(self.pending)  # replicated: also right when other hosts hold devices
    first_step = step - len(values) + 1
    self.pending = []
    for i, metrics in enumerate(values):
      if not np.all(metrics["finite"]):
        raise UserError(
            f"loss or gradient became NaN/inf at step {first_step + i} (lr "
            f"{float(np.mean(metrics['lr'])):.3g}); run stopped, the bad step was not applied; "
            f"last good checkpoint: {last_good_checkpoint}")
    now = time.perf_counter()
    rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
    record = {f"train/{k}": float(np.mean([v[k] for v in values]))
              for k in ("loss", "accuracy", "grad_norm", "param_norm")}
    record.update({"lr": float(np.mean(values[-1]["lr"])),
                   "images_per_sec": rate * self.batch_size,
                   "eta_s": (self.plan.total_steps - step) / max(rate, 1e-9),
                   "elapsed_s": now - self.start_time,
                   "epoch": step / self.plan.steps_per_epoch})
    self.write(step, record)
    self.bar.update(step - self.last_step)
    self.bar.set_postfix(loss=f"{record['train/loss']:.3f}",
                         acc=f"{record['train/accuracy']:.3f}",
                         img_s=f"{record['images_per_sec']:.0f}")
    self.last_step, self.last_time = step, now

  def close(self) -> None:
    self.bar.close()
    if self.writer is not None:
      self.writer.close()


def eval_record(prefix: str, result: dict) -> dict:
  record = {f"{prefix}/accuracy": result["mean"]["accuracy"], f"{prefix}/top5": result["mean"]["top5"],
            f"{prefix}/loss": result["mean"]["loss"]}
  if len(result["members"]) > 1:
    record[f"{prefix}/ensemble_accuracy"] = result["ensemble"]["accuracy"]
    record[f"{prefix}/ensemble_top5"] = result["ensemble"]["top5"]
  return record


@dataclasses.dataclass
class Setup:
  """A validated training run: everything train_and_evaluate needs, nothing written yet."""
  config: object
  mesh: object
  module: object
  input_size: int
  crop: int
  plan: Plan
  eigval: object
  eigvec: object
  model_info: dict


def prepare(config, workdir) -> Setup:
  """Validates the config against the data, the devices and the checkpoints already in workdir
  (a different network's are refused); one-line UserErrors; writes nothing."""
  validate(config)
  mesh = parallel.data_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  parallel.check_batch_size(config.eval_batch_size or config.batch_size, mesh, "eval_batch_size")
  check(config.batch_size % jax.process_count() == 0,
        f"batch_size {config.batch_size} is not a multiple of the {jax.process_count()} hosts")
  info = data.info(config.dataset, **_data_kwargs(config))
  spec = models.get_spec(config.model)
  kwargs = model_kwargs(config, info.num_classes)
  module = models.build(config.model, **kwargs)
  crop = config.crop or spec.input_size
  check(crop == spec.input_size, f"crop {crop} differs from model {config.model}'s input size "
                                 f"{spec.input_size}")
  check(crop <= info.image_size + 2 * config.crop_pad,
        f"crop {crop} larger than the dataset's {info.image_size}px images padded by {config.crop_pad}")
  plan = make_plan(config, split_size(config, config.train_split))
  for split in (config.eval_split, config.test_split):
    split_size(config, split)
  eigval, eigvec = lighting_basis(config)
  model_info = {"model": config.model, "model_kwargs": kwargs, "members": config.ensemble.members,
                "dataset": config.dataset, "class_names": list(info.class_names)}
  if workdir:
    checkpoint.check_same_model(Path(workdir) / checkpoint.CHECKPOINTS, model_info)
  return Setup(config, mesh, module, spec.input_size, crop, plan, eigval, eigvec, model_info)


def train_and_evaluate(setup: Setup, workdir):
  """Trains (or resumes from workdir's newest checkpoint) and evaluates; returns the results dict
  also saved as workdir/results.json."""
  t_start = time.perf_counter()
  config, plan, mesh = setup.config, setup.plan, setup.mesh
  workdir = Path(workdir)
  trainer = Trainer(config, setup.module, mesh, plan, setup.eigval, setup.eigvec, setup.crop)
  ckpt = checkpoint.Checkpointer(
      workdir / checkpoint.CHECKPOINTS, every=plan.checkpoint_every, keep=config.keep_checkpoints,
      asynchronous=config.checkpoint_async, model=setup.model_info)
  states = init_states(config, setup.module, setup.input_size, trainer.tx, trainer.plateau_tx,
                       mesh)
  restored, restored_step = ckpt.restore_latest(states)
  if restored is not None:
    states = restored
    print(f"resumed from checkpoint step {restored_step} in {ckpt.directory}", file=sys.stderr)
  step = int(parallel.to_host(states.step)[0])
  if jax.process_index() == 0:
    runs.truncate_metrics(workdir, step)  # steps after the checkpoint are trained (and logged) again
  logger = Logger(workdir, plan, step, config.batch_size)
  try:
    states = train_loop(config, trainer, ckpt, logger, mesh, plan, states, step)
    train_seconds = time.perf_counter() - t_start
    results = {"model": config.model, "model_kwargs": setup.model_info["model_kwargs"],
               "dataset": config.dataset, "steps": plan.total_steps,
               "epochs": plan.total_steps / plan.steps_per_epoch,
               "members": config.ensemble.members, "devices": mesh.devices.size,
               "train_seconds": train_seconds, "test_split": config.test_split, "test": {}}
    for crops in config.test_crops:
      results["test"][crops] = trainer.evaluate(states, config.test_split, crops)
      logger.write(plan.total_steps, eval_record(f"test_{crops}", results["test"][crops]))
    results["wall_seconds"] = time.perf_counter() - t_start
  finally:
    logger.close()
    ckpt.close()
  if jax.process_index() == 0:
    runs.write_json(workdir / "results.json", results)
  return results


def train_loop(config, trainer: Trainer, ckpt: checkpoint.Checkpointer, logger: Logger, mesh,
               plan: Plan, states, step: int):
  """Trains from `step` to plan.total_steps: logs, evaluates (feeding the plateau rule) and
  checkpoints on schedule; returns the final states, saved."""
  last_good = lambda: (f"step {ckpt.latest_step()} in {ckpt.directory}"
                       if ckpt.latest_step() is not None else "none written yet")
  try:
    for local in train_batches(config, plan, step):
      states, metrics = trainer.train_step(states, parallel.shard_batch(local, mesh))
      step += 1
      logger.pending.append(metrics)
      end = step == plan.total_steps
      if step % plan.log_every == 0 or end:
        logger.flush_train(step, last_good())
      if step % plan.eval_every == 0 or end:
        result = trainer.evaluate(states, config.eval_split, config.eval_crops)
        states = trainer.update_plateau(states, result)
        logger.write(step, {**eval_record("eval", result),
                            "plateau_scale": float(np.mean(parallel.to_host(states.plateau.scale)))})
      if step % plan.checkpoint_every == 0 or end:
        logger.flush_train(step, last_good())  # never save after a non-finite step
        ckpt.save(step, states, force=end)
  finally:
    ckpt.wait()  # an in-flight save (always of a good state) completes even on errors
  return states


