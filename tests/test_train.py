"""Training: the paper's optimiser and schedule against closed forms, NaN handling, ensembles,
checkpoints (resume after SIGKILL, half-written steps), 4-device data parallelism, bad input, and
loading a trained checkpoint into a technique by path. Tiny networks on a tiny image folder."""
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from cnn_vis import loader, main, models
from cnn_vis.data import stream as stream_lib
from cnn_vis.report import draw
from cnn_vis.errors import UserError
from cnn_vis.train import checkpoint, ensemble, optim, parallel, steps
from cnn_vis.train import loop as train
from configs import (alexnet_cifar10, girshick14_top_patches, karpathy14_tsne,
                     krizhevsky12_filters, krizhevsky12_neighbours, predict,
                     yosinski15_activations)

REPO = Path(__file__).resolve().parents[1]
CLASSES = 10
KWARGS = {"width": 0.0625, "fc_width": 16, "lrn": False}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
  """split/class/*.jpg: 10 classes of 36x36 images, 4 train and 2 test images each."""
  root = tmp_path_factory.mktemp("folder")
  rng = np.random.default_rng(0)
  for split, n in (("train", 4), ("test", 2)):
    for c in range(CLASSES):
      folder = root / split / f"class{c}"
      folder.mkdir(parents=True)
      for i in range(n):
        colour = np.array([25 * c, 255 - 25 * c, 128], np.int16)
        image = np.clip(colour + rng.integers(-30, 30, (36, 36, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i}.jpg")
  return root


# The run the SIGKILL test must reproduce: the same settings on the command line.
RUN_OVERRIDES = {"num_steps": 6, "checkpoint_every": 2, "eval_every": 3, "log_every": 1}


def _set(config, key: str, value):
  """config[key] = value for a dotted key ("ensemble.members"); KeyError if it does not exist."""
  *parents, leaf = key.split(".")
  for parent in parents:
    config = config[parent]
  config[leaf]  # pylint: disable=pointless-statement  # must exist
  config[leaf] = value


def _config(folder, **overrides):
  config = alexnet_cifar10.get_config("smoke")
  config.manual_dir = str(folder)
  config.update({**RUN_OVERRIDES, **overrides})
  return config


@pytest.fixture(scope="module")
def trained(image_folder, tmp_path_factory) -> Path:
  workdir = tmp_path_factory.mktemp("run") / "w"
  main.run(_config(image_folder, test_crops=("center", "ten")), str(workdir))
  return workdir


def test_run_writes_checkpoints_metrics_and_report(trained):
  results = json.loads((trained / "results.json").read_text())
  assert results["steps"] == 6 and set(results["test"]) == {"center", "ten"}
  assert results["test"]["center"]["members"][0]["count"] == 2 * CLASSES
  info = checkpoint.read_model_info(trained)
  assert info["model"] == "alexnet_cifar" and info["model_kwargs"] == KWARGS
  assert sorted(int(p.name) for p in (trained / "checkpoints").iterdir() if p.name.isdigit()) \
      == [4, 6]  # every 2 steps, the last two kept
  records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
  train = [r for r in records if "train/loss" in r]
  assert [r["step"] for r in train] == list(range(1, 7))
  assert all(np.isfinite(r["train/loss"]) and r["images_per_sec"] > 0 for r in train)
  assert [r["step"] for r in records if "eval/accuracy" in r] == [3, 6]
  assert list((trained / "tensorboard").iterdir())
  page = (trained / "report.html").read_text()
  assert "curves.png" in page and "Final test error" in page and (trained / "curves.png").exists()


def test_checkpoint_loads_into_models_and_techniques_by_path(trained, tmp_path):
  raw = checkpoint.load_variables(trained / "checkpoints" / "6")
  # The model options come with the checkpoint (as --config.model=... --config.checkpoint=W).
  apply_fn, variables, _ = loader.load("alexnet_cifar", checkpoint=str(trained))
  module = apply_fn.module
  assert (module.convs[0].features, module.fc_widths, module.lrn_after) == (4, (16, 16), ())
  chex.assert_trees_all_equal(variables, raw)
  images = jax.random.uniform(jax.random.PRNGKey(0), (3, 32, 32, 3))
  np.testing.assert_array_equal(module.apply(variables, images)[0], module.apply(raw, images)[0])
  # The newest step's parameters (step 6), not step 4's.
  older = checkpoint.load_variables(trained / "checkpoints" / "4")
  assert not np.allclose(raw["params"]["fc8"]["kernel"], older["params"]["fc8"]["kernel"])
  _, same, _ = loader.load("alexnet_cifar", checkpoint=str(trained), **KWARGS)
  chex.assert_trees_all_equal(same, raw)
  with pytest.raises(UserError, match="model_kwargs") as e:
    loader.load("alexnet_cifar", checkpoint=str(trained), width=0.125, fc_width=16)
  assert "\n" not in str(e.value) and "{'width': 0.125}" in str(e.value)
  with pytest.raises(UserError, match="not alexnet_fashion_mnist"):
    loader.load("alexnet_fashion_mnist", checkpoint=str(trained))
  config = predict.get_config("smoke")  # a technique's experiment, loading the run by path
  config.model_kwargs = {}
  config.checkpoint = str(trained)
  records = main.run(config, str(tmp_path / "predict"))
  assert len(records) == 2 and len(records[0]["top5"]) == 5


def _view_on_checkpoint(module, trained, image_folder, **fields):
  """A dataset view's `:cifar` config reading the trained run by path, over the tiny folder's
  test split through tfds (dataset image_folder) instead of CIFAR-10."""
  config = module.get_config("cifar")
  config.model_kwargs = {}
  config.update(checkpoint=str(trained), dataset="image_folder", manual_dir=str(image_folder),
                batch_size=4, **fields)
  return config


def test_dataset_views_read_a_trained_checkpoint(trained, image_folder, tmp_path, monkeypatch):
  """The dataset views (issue: 'each working on a trained checkpoint') on the run's weights: the
  top patches' activations are the checkpoint network's own, the filters grid shows its conv1."""
  apply_fn, variables, _ = loader.load("alexnet_cifar", checkpoint=str(trained))
  config = _view_on_checkpoint(girshick14_top_patches, trained, image_folder, split="test",
                               layers="conv5", k=2, show_units=2)
  summary = main.run(config, str(tmp_path / "patches"))
  assert summary["receptive_field"]["layer"] == "conv5"
  line = json.loads((tmp_path / "patches" / "top_patches.jsonl").read_text().splitlines()[0])
  best = line["patches"][0]
  test_images = sorted((image_folder / "test").rglob("*.jpg"))
  assert len(test_images) == 20 and best["source"].startswith("test:")
  # The streamed activation equals the checkpoint network's spatial max on that image.
  stream = stream_lib.from_split("image_folder", "test", image_size=32, resize=None,
                                 manual_dir=str(image_folder))
  image = stream.fetch(np.asarray([int(best["source"].split(":")[1])]))
  layer, channel = line["unit"].split(":")
  acts = apply_fn(variables, jnp.asarray(image, jnp.float32))[1][layer]
  np.testing.assert_allclose(best["activation"], float(acts[0, ..., int(channel)].max()),
                             rtol=1e-4, atol=1e-5)

  config = _view_on_checkpoint(karpathy14_tsne, trained, image_folder, split="test",
                               perplexity=3.0, tsne_iterations=50, canvas=128, thumb=16)
  legends = []
  scatter = draw.scatter_plot
  monkeypatch.setattr(draw, "scatter_plot", lambda path, points, labels, class_names=(), **kw: (
      legends.append(tuple(class_names)), scatter(path, points, labels, class_names, **kw))[1])
  summary = main.run(config, str(tmp_path / "tsne"))
  # the legend names the dataset's labels (the folders), not the model's CIFAR-10 classes
  assert legends == [tuple(f"class{c}" for c in range(CLASSES))]
  codes = np.load(tmp_path / "tsne" / "codes.npy")
  assert codes.shape == (20, 16) and np.isfinite(codes).all()
  assert sorted(np.load(tmp_path / "tsne" / "labels.npy").tolist()) == sorted(list(range(10)) * 2)
  assert 0.0 <= summary["knn10_accuracy_2d"] <= 1.0

  config = _view_on_checkpoint(krizhevsky12_neighbours, trained, image_folder, split="train",
                               query_split="test[:2]", neighbours=3)
  main.run(config, str(tmp_path / "neighbours"))
  lines = (tmp_path / "neighbours" / "neighbours.jsonl").read_text().splitlines()
  assert len(lines) == 2 and all(len(json.loads(l)["neighbours"]) == 3 for l in lines)

  config = _view_on_checkpoint(yosinski15_activations, trained, image_folder, split="test[:1]",
                               layer="conv1")
  main.run(config, str(tmp_path / "maps"))
  assert (tmp_path / "maps" / "report.html").exists()

  config = _view_on_checkpoint(krizhevsky12_filters, trained, image_folder)
  main.run(config, str(tmp_path / "filters"))
  assert (tmp_path / "filters" / "report.html").exists()


def test_rerun_with_another_network_in_the_same_workdir_is_refused(trained, image_folder):
  before = (trained / "config.json").read_text()
  config = _config(image_folder)
  config.model_kwargs.width = 0.125
  with pytest.raises(UserError, match="holds checkpoints of") as e:
    main.run(config, str(trained))
  assert "\n" not in str(e.value) and (trained / "config.json").read_text() == before


@pytest.mark.parametrize("name", ["alexnet_imagenet", "alexnet_cifar10", "alexnet_fashion_mnist"])
def test_configs_and_their_sweeps_are_valid(name):
  module = __import__(f"configs.{name}", fromlist=["get_config"])
  for arg in (None, "smoke"):
    config = module.get_config(arg)
    train.validate(config)
    models.build(config.model, **config.model_kwargs)
  for overrides in module.get_sweep():
    config = module.get_config()
    for key, value in overrides.items():
      _set(config, key, value)
    train.validate(config)
  paper = __import__("configs.alexnet_imagenet", fromlist=["get_config"]).get_config()
  assert (paper.lr, paper.momentum, paper.weight_decay, paper.batch_size, paper.plateau.factor,
          paper.model_kwargs.paper_init, paper.test_crops) == (0.01, 0.9, 5e-4, 128, 0.1, True,
                                                                ("center", "ten"))


def test_paper_sgd_matches_the_update_rule_of_section_5():
  rng = np.random.default_rng(0)
  params = {"conv": {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=4)}}
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  tx = optim.optimizer(momentum=0.9, weight_decay=5e-4)
  opt_state = tx.init(params)
  w = jax.tree.map(np.asarray, params)
  v = jax.tree.map(np.zeros_like, w)
  for lr in (0.1, 0.05, 0.01):  # the lr changes: lr acts inside the momentum (§5), not after
    grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
    updates, opt_state = tx.update(grads, optim.set_lr(opt_state, lr), params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
    g = jax.tree.map(np.asarray, grads)
    v["conv"]["kernel"] = 0.9 * v["conv"]["kernel"] - 5e-4 * lr * w["conv"]["kernel"] \
        - lr * g["conv"]["kernel"]
    v["conv"]["bias"] = 0.9 * v["conv"]["bias"] - lr * g["conv"]["bias"]  # no decay on biases
    w = jax.tree.map(lambda a, b: a + b, w, v)
    chex.assert_trees_all_close(params, w, rtol=1e-5, atol=1e-6)


def test_schedules_closed_forms():
  warm = optim.schedule("linear", total_steps=100, warmup_steps=10)
  np.testing.assert_allclose([warm(s) for s in (0, 5, 10, 55, 100)], [0, 0.5, 1, 0.5, 0],
                             atol=1e-6)
  step = optim.schedule("step", total_steps=100, step_fractions=(0.5, 0.75))
  np.testing.assert_allclose([step(s) for s in (0, 49, 50, 74, 75, 99)],
                             [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
  cosine = optim.schedule("cosine", total_steps=100)
  np.testing.assert_allclose([cosine(s) for s in (0, 50, 100)], [1, 0.5, 0], atol=1e-6)
  assert optim.schedule("constant", 100)(77) == 1


def test_plateau_divides_lr_by_10_after_patience_evaluations_three_times_at_most():
  tx = optim.plateau(factor=0.1, patience=2, max_reductions=3)
  state = tx.init({})
  errors = [0.5, 0.4, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
  # no improvement for 2 evaluations -> x0.1, and the count restarts
  expected = [1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3]
  scales = []
  for error in errors:
    state = optim.plateau_update(tx, state, error)
    scales.append(float(state.scale))
  np.testing.assert_allclose(scales, expected, rtol=1e-5)


def _batch(n=8, seed=0):
  """Noise around a colour that depends on the label: learnable in a few steps."""
  key_x, key_y = jax.random.split(jax.random.PRNGKey(seed))
  labels = jax.random.randint(key_y, (n,), 0, CLASSES)
  colours = jnp.stack([jnp.linspace(0, 1, CLASSES), jnp.linspace(1, 0, CLASSES),
                       jnp.full(CLASSES, 0.5)], -1)
  images = 0.3 * jax.random.uniform(key_x, (n, 32, 32, 3)) + 0.7 * colours[labels, None, None]
  return {"image": images, "label": labels}


@pytest.fixture(scope="module")
def tiny(image_folder):
  """(module, stacked states of 2 members, the single-model step fn, that step jitted)."""
  config = _config(image_folder)
  config.ensemble.members = 2
  module = models.build("alexnet_cifar", **KWARGS)
  tx = optim.optimizer(0.9, 5e-4)
  states = train.init_states(config, module, 32, tx, optim.plateau(), parallel.data_mesh())
  step_fn = functools.partial(steps.train_step, apply_fn=module.apply, tx=tx,
                              lr_schedule=lambda s: 0.05, augment=steps.Augment(32, 4),
                              label_smoothing=0.1)
  return module, states, step_fn, jax.jit(step_fn)


def test_a_non_finite_step_leaves_the_state_unchanged(tiny):
  _, states, _, step = tiny
  good, metrics = step(ensemble.member(states, 0), _batch())
  assert int(good.step) == 1 and metrics["finite"] == 1 and np.isfinite(metrics["loss"])
  bad_batch = _batch()
  bad_batch["image"] = bad_batch["image"].at[0].set(jnp.nan)
  after, metrics = step(good, bad_batch)
  assert metrics["finite"] == 0
  chex.assert_trees_all_equal(after, good)


def test_training_steps_fit_a_fixed_batch(image_folder):
  module = models.build("alexnet_cifar", width=0.125, fc_width=64, lrn=False, dropout_rate=0.0)
  tx = optim.optimizer(0.9, 5e-4)
  state = ensemble.member(train.init_states(_config(image_folder), module, 32, tx, optim.plateau(),
                                            parallel.data_mesh()), 0)
  step = jax.jit(functools.partial(steps.train_step, apply_fn=module.apply, tx=tx,
                                   lr_schedule=lambda s: 0.01, augment=steps.Augment(32)))
  batch = _batch(16)
  losses = []
  for _ in range(30):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("mode", ["vmap", "unroll"])
def test_ensemble_step_is_each_member_step(tiny, mode):
  _, states, step_fn, single_step = tiny
  batch = _batch()
  stepped, metrics = jax.jit(functools.partial(ensemble.train_step, step_fn=step_fn, mode=mode))(
      states, batch)
  for i in range(2):
    single, single_metrics = single_step(ensemble.member(states, i), batch)
    chex.assert_trees_all_close(ensemble.member(stepped, i), single, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"][i], single_metrics["loss"], rtol=1e-5)
  assert not np.allclose(metrics["loss"][0], metrics["loss"][1])  # members differ by seed


def test_ensemble_eval_averages_member_softmax_in_every_mode(tiny):
  module, states, _, _ = tiny
  batch = {**_batch(12), "mask": jnp.arange(12) < 10}  # two padding examples
  predict_fn = functools.partial(steps.predict, apply_fn=module.apply, crop=32)
  by_vmap, by_unroll, by_map = [
      jax.jit(functools.partial(ensemble.eval_step, predict_fn=predict_fn, mode=mode))(states, batch)
      for mode in ensemble.MODES]
  chex.assert_trees_all_close(by_vmap, by_unroll, rtol=1e-5)
  chex.assert_trees_all_close(by_vmap, by_map, rtol=1e-5)
  apply = jax.jit(lambda v, x: jax.nn.softmax(module.apply(v, x)[0]))
  probs = np.stack([apply(ensemble.member(states, i).variables(), batch["image"])
                    for i in range(2)])
  labels, mask = np.asarray(batch["label"]), np.asarray(batch["mask"])
  for name, p in [("ensemble", probs.mean(0))] + [(i, probs[i]) for i in range(2)]:
    got = by_vmap["ensemble"] if name == "ensemble" else ensemble.member(by_vmap["members"], name)
    assert got["count"] == 10
    assert got["correct"] == ((p.argmax(-1) == labels) & mask).sum()
    top5 = (np.argsort(-p, -1)[:, :5] == labels[:, None]).any(-1)
    assert got["correct5"] == (top5 & mask).sum()
    np.testing.assert_allclose(got["loss"], -(np.log(p[np.arange(12), labels]) * mask).sum(),
                               rtol=1e-4)


def test_ten_crop_views_are_corners_centre_and_mirrors():
  images = jnp.arange(2 * 6 * 6 * 3, dtype=jnp.float32).reshape(2, 6, 6, 3)
  views = steps.eval_views(images, 4, "ten")
  assert views.shape == (10, 2, 4, 4, 3)
  np.testing.assert_array_equal(views[3], images[:, 2:, 2:])
  np.testing.assert_array_equal(views[9], images[:, 1:5, 1:5][:, :, ::-1])
  same_size = steps.eval_views(images, 6, "ten")  # CIFAR: the image and its mirror
  np.testing.assert_array_equal(same_size, jnp.stack([images, images[:, :, ::-1]]))


def test_half_written_and_unreadable_checkpoints_are_ignored(tiny, tmp_path, capsys):
  state = jax.tree.map(lambda x: x[:1], tiny[1])  # an ensemble of one
  later = state.replace(step=state.step + 4, params=jax.tree.map(lambda x: x + 1, state.params))
  directory = tmp_path / "checkpoints"
  ckpt = checkpoint.Checkpointer(directory, every=2, keep=5, asynchronous=False,
                                 model={"model": "alexnet_cifar", "model_kwargs": KWARGS,
                                        "members": 1})
  ckpt.save(2, state)
  ckpt.save(4, later)
  ckpt.close()
  # A save killed half-way: orbax's temporary folder, holding part of a newer step.
  shutil.copytree(directory / "4", directory / "6.orbax-checkpoint-tmp-1700000000")
  # A newer step that looks finished but whose array files are truncated.
  shutil.copytree(directory / "4", directory / "8")
  for path in (directory / "8" / "default").rglob("*"):
    if path.is_file() and path.stat().st_size > 64 and "metadata" not in path.name:
      path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
  loaded = checkpoint.load_variables(directory)
  chex.assert_trees_all_equal(loaded["params"], ensemble.member(later.params, 0))
  ckpt = checkpoint.Checkpointer(directory, every=2, asynchronous=False)
  restored, step = ckpt.restore_latest(later)
  assert step == 4
  chex.assert_trees_all_equal(restored, later)
  assert (directory / "8.unreadable").is_dir() and "unreadable" in capsys.readouterr().err
  ckpt.close()


@pytest.mark.parametrize("overrides, message", [
    ({"lr": -0.01}, "lr must be > 0, got -0.01"),
    ({"batch_size": 0}, "batch_size must be > 0"),
    ({"dataset": "imagenet_typo"}, "unknown dataset 'imagenet_typo'"),
    ({"ensemble.members": 0}, "ensemble.members must be >= 1"),
    ({"lr_decay": "exponential"}, "unknown lr_decay 'exponential'"),
    ({"eval_crops": "five"}, "unknown eval_crops 'five'"),
    ({"train_split": "training"}, "bad split 'training'"),
])
def test_bad_config_values_are_one_line_errors(image_folder, tmp_path, overrides, message):
  config = _config(image_folder)
  for key, value in overrides.items():
    _set(config, key, value)
  with pytest.raises(UserError) as e:
    main.run(config, str(tmp_path / "w"))
  assert message in str(e.value) and "\n" not in str(e.value)
  assert not (tmp_path / "w").exists()  # nothing written for bad input


def test_missing_imagenet_manual_dir_is_a_one_line_error(tmp_path):
  from configs import alexnet_imagenet  # pylint: disable=import-outside-toplevel
  config = alexnet_imagenet.get_config()
  config.data_dir = str(tmp_path / "tfds")
  config.manual_dir = str(tmp_path / "no_such_dir")
  with pytest.raises(UserError) as e:
    main.run(config, str(tmp_path / "w"))
  assert "ILSVRC2012_img_train.tar" in str(e.value) and "\n" not in str(e.value)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(image_folder, tmp_path):
  from configs import alexnet_imagenet  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "w"
  config = alexnet_imagenet.get_config("smoke")  # the paper's recipe: LRN, paper init, 36->32 crops
  config.update(manual_dir=str(image_folder), lr=1e8, num_steps=6, checkpoint_every=1,
                log_every=1, eval_every=100)
  with pytest.raises(UserError, match=r"NaN/inf at step \d") as e:
    main.run(config, str(workdir))
  message = str(e.value)
  bad_step = int(message.split("at step ")[1].split()[0])
  saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert saved and max(saved) < bad_step and f"last good checkpoint: step {max(saved)}" in message
  variables = checkpoint.load_variables(workdir)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(variables))


def _cli(workdir, folder) -> list[str]:
  overrides = [f"--config.{k}={v}" for k, v in RUN_OVERRIDES.items()]
  return [sys.executable, "-m", "cnn_vis.main", "--config=configs/alexnet_cifar10.py:smoke",
          f"--config.manual_dir={folder}", *overrides, f"--workdir={workdir}"]


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(trained, image_folder,
                                                                       tmp_path):
  workdir = tmp_path / "w"
  # Both processes share a compilation cache: the second one reuses what the first compiled.
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  proc = subprocess.Popen(_cli(workdir, image_folder), cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  first = workdir / "checkpoints" / "2"
  deadline = time.time() + 300
  while not first.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)  # while it compiles its first evaluation (step 3)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
  assert not (workdir / "results.json").exists()
  resumed = subprocess.run(_cli(workdir, image_folder), cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=600, check=False)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resumed from checkpoint step 2" in resumed.stderr
  chex.assert_trees_all_equal(checkpoint.load_variables(workdir), checkpoint.load_variables(trained))


DATA_PARALLEL = textwrap.dedent("""
    import json, sys, jax, numpy as np
    from configs import alexnet_cifar10
    from cnn_vis import models
    from cnn_vis.errors import UserError
    from cnn_vis.train import loop as train
    assert jax.device_count() == 4, jax.devices()
    config = alexnet_cifar10.get_config("smoke")
    module = models.build(config.model, **config.model_kwargs)
    plan = train.Plan(steps_per_epoch=10, total_steps=10, log_every=1, eval_every=10,
                      checkpoint_every=10, warmup_steps=2)
    rng = np.random.default_rng(0)
    batches = [{"image": rng.random((8, 32, 32, 3), np.float32),
                "label": rng.integers(0, 10, 8).astype(np.int32)} for _ in range(2)]
    params = {}
    for n in (1, 4):
      mesh = train.parallel.data_mesh(jax.devices()[:n])
      trainer = train.Trainer(config, module, mesh, plan, None, None, 32)
      states = train.init_states(config, module, 32, trainer.tx, trainer.plateau_tx, mesh)
      initial = jax.tree.map(np.asarray, states.params)
      for batch in batches:
        states, _ = trainer.train_step(states, train.parallel.shard_batch(batch, mesh))
      assert len(states.params["conv1"]["kernel"].sharding.device_set) == n
      params[n] = jax.tree.map(np.asarray, states.params)
    diff = max(float(np.abs(a - b).max()) for a, b in
               zip(jax.tree.leaves(params[1]), jax.tree.leaves(params[4])))
    change = max(float(np.abs(a - b).max()) for a, b in
                 zip(jax.tree.leaves(params[1]), jax.tree.leaves(initial)))
    config.batch_size = 6
    config.manual_dir = sys.argv[1]
    try:
      train.prepare(config, sys.argv[2])
      error = None
    except UserError as e:
      error = str(e)
    print(json.dumps({"diff": diff, "change": change, "error": error}))
""")


def test_data_parallel_step_on_4_devices_equals_1_device(image_folder, tmp_path):
  env = dict(os.environ, PYTHONPATH=str(REPO),
             XLA_FLAGS="--xla_force_host_platform_device_count=4")  # before jax initialises
  result = subprocess.run([sys.executable, "-c", DATA_PARALLEL, str(image_folder),
                           str(tmp_path / "w")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out["change"] > 1e-3  # the steps did move the parameters
  assert out["diff"] <= 1e-5, out
  assert out["error"] == "batch_size 6 is not a positive multiple of the 4 devices; use a multiple of 4"
