"""Adversarial examples: the lecture's linear example exactly; the projections, 8-bit rounding and
sweeps of FGSM / BIM / PGD; the same adversarial accuracy as foolbox 3 on the same weights;
DeepFool (100% success, at most the overshoot past the boundary, foolbox's ||r||_2 within 10%),
FGSM's smallest eps, Szegedy's L-BFGS; the configs end to end; bad input."""
import importlib
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_vis import loader, main
from cnn_vis.data import images as image_io
from cnn_vis.errors import UserError
from cnn_vis.techniques import adversarial as A
from cnn_vis.techniques import foolbox_reference
from cnn_vis.techniques import minimal_perturbation as M
from conftest import imagenet_files_and_labels

SLIDE_X = [2, -1, 3, -2, 2, 2, 1, -4, 5, 1]
SLIDE_W = [-1, -1, 1, -1, 1, -1, 1, 1, -1, 1]


def test_the_lecture_linear_example_exactly():
  result = A.linear_example(SLIDE_X, SLIDE_W, b=0.0, eps=0.5)
  assert result.score == -3.0 and result.score_adv == 2.0
  assert round(result.p, 4) == 0.0474 and round(result.p_adv, 2) == 0.88
  np.testing.assert_array_equal(result.x_adv, [1.5, -1.5, 3.5, -2.5, 2.5, 1.5, 1.5, -3.5, 4.5,
                                               1.5])
  assert result.score_change == 0.5 * np.abs(SLIDE_W).sum() == result.score_adv - result.score


@pytest.fixture(scope="module")
def net():
  """A small random conv net (Fashion-MNIST layout) and 48 random images on the 8-bit grid."""
  fn, variables, _ = loader.load("small_convnet", seed=0, features=(8, 16), fc_width=32)
  images = np.round(np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (48, 32, 32, 3)))
                    * 255) / 255
  return fn, variables, images.astype(np.float32), np.asarray(M.predictions(fn, variables,
                                                                             images)[0])


@pytest.fixture(scope="module")
def linear():
  """A random softmax regression (varied predictions) and 48 random 8-bit images."""
  fn, variables, _ = loader.load("softmax_regression", seed=0)
  images = np.round(np.asarray(jax.random.uniform(jax.random.PRNGKey(2), (48, 32, 32, 3)))
                    * 255) / 255
  return fn, variables, images.astype(np.float32), np.asarray(M.predictions(fn, variables,
                                                                             images)[0])


def _accuracy(fn, variables, images, labels):
  return float(np.mean(np.asarray(M.predictions(fn, variables, images)[0]) == labels))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_and_random_start_stay_in_the_ball_and_the_box(norm):
  key = jax.random.PRNGKey(0)
  origin = jax.random.uniform(key, (5, 6, 6, 3))
  far = origin + 3.0 * jax.random.normal(jax.random.PRNGKey(1), origin.shape)
  for x in (A.project(far, origin, 0.1, norm, (0.0, 1.0)),
            A.random_start(jax.random.PRNGKey(2), origin, 0.1, norm, (0.0, 1.0))):
    assert np.all(np.asarray(A.norms(x - origin, norm)) <= 0.1 + 1e-5)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
  inside = origin + 0.01 * jnp.sign(far - origin) / (1 if norm == "linf" else 30)
  np.testing.assert_allclose(A.project(inside, origin, 0.1, norm, None), inside, atol=1e-6)


@pytest.mark.parametrize("norm,eps", [("linf", 0.25), ("linf", 2 / 255), ("l2", 0.3)])
def test_quantize_lands_on_the_8bit_grid_inside_the_ball(norm, eps):
  rng = np.random.RandomState(0)
  origin = np.round(rng.rand(4, 8, 8, 3) * 255) / 255
  adversarial = np.asarray(A.project(jnp.asarray(origin + rng.randn(*origin.shape)), origin, eps,
                                     norm, (0.0, 1.0)))
  q = A.quantize(adversarial, origin, eps, norm)
  np.testing.assert_allclose(q * 255, np.round(q * 255), atol=1e-4)
  assert np.all(np.asarray(A.norms(q - origin, norm)) <= eps + 1e-5)
  assert np.abs(q - adversarial).max() <= 1 / 255 + 1e-6


def test_an_eps_sweep_is_one_call_equal_to_separate_calls_and_to_the_scan_loop(net):
  fn, variables, images, labels = net
  eps = [1 / 255, 2 / 255, 4 / 255]
  sweep = A.bim(fn, variables, images[:8], labels[:8], eps)
  np.testing.assert_array_equal(sweep.steps, [1, 2, 5])   # Kurakin: min(e + 4, 1.25 e), down
  for s, e in enumerate(eps):
    alone = A.bim(fn, variables, images[:8], labels[:8], [e])
    np.testing.assert_allclose(sweep.images[s], alone.images[0], atol=1e-6)
  scan = A.bim(fn, variables, images[:8], labels[:8], eps, loop="scan")
  np.testing.assert_allclose(scan.images, sweep.images, atol=1e-6)
  pgd = A.pgd(fn, variables, images[:8], labels[:8], eps, key=jax.random.PRNGKey(3), steps=3)
  pgd_scan = A.pgd(fn, variables, images[:8], labels[:8], eps, key=jax.random.PRNGKey(3),
                   steps=3, loop="scan")
  np.testing.assert_allclose(pgd.images, pgd_scan.images, atol=1e-6)
  for s, e in enumerate(eps):
    assert float(A.norms(pgd.images[s] - images[:8], "linf").max()) <= e + 1e-6


def test_fgsm_is_the_sign_of_the_loss_gradient(linear):
  fn, variables, images, labels = linear
  eps = 3 / 255
  grad = jax.grad(lambda x: A.cross_entropy(fn(variables, x)[0], jnp.asarray(labels)).sum())(
      jnp.asarray(images))
  expected = np.clip(images + eps * np.sign(np.asarray(grad)), 0, 1)
  np.testing.assert_allclose(A.fgsm(fn, variables, images, labels, eps).images[0], expected,
                             atol=1e-6)
  targeted = A.fgsm(fn, variables, images, labels, eps, targeted=True).images[0]
  np.testing.assert_allclose(targeted, np.clip(images - eps * np.sign(np.asarray(grad)), 0, 1),
                             atol=1e-6)


@pytest.mark.parametrize("method,norm,eps", [("fgsm", "linf", (1 / 255, 4 / 255)),
                                             ("bim", "linf", (2 / 255,)),
                                             ("pgd", "linf", (2 / 255,)),
                                             ("pgd", "l2", (0.2,))])
def test_adversarial_accuracy_matches_foolbox_within_2_points(net, linear, method, norm, eps):
  """The independent check: foolbox 3 on the same weights and images (rounded to 8 bits alike),
  its own gradients, steps, projections and clipping."""
  for fn, variables, images, labels in (net, linear):
    eps = np.asarray(eps, np.float32)
    steps = {"fgsm": np.ones(len(eps), np.int32), "bim": A.bim_steps(eps),
             "pgd": np.full(len(eps), 5, np.int32)}[method]
    step_size = {"fgsm": eps, "bim": np.full(len(eps), 1 / 255), "pgd": 2.5 * eps / steps}[method]
    spec = A.Attack(norm, random_start=method == "pgd")
    ours = A.attack(fn, variables, images, labels, eps, spec=spec, steps=steps,
                    step_size=step_size, key=jax.random.PRNGKey(0))
    accuracy = [_accuracy(fn, variables, A.quantize(ours.images[s], images, e, norm), labels)
                for s, e in enumerate(eps)]
    # PGD: foolbox's steps from our random start (its own draw would differ image by image)
    starts = np.asarray(A.random_starts(spec, jax.random.PRNGKey(0), jnp.asarray(images),
                                        jnp.asarray(eps))) if spec.random_start else None
    theirs = foolbox_reference.accuracies(fn, variables, images, labels, method, eps, steps,
                                          step_size, spec, starts=starts)
    assert np.abs(np.subtract(accuracy, theirs)).max() <= 0.02 + 1e-9, (accuracy, theirs)
    assert min(accuracy) < 1.0   # the attack does something


@pytest.mark.slow  # the pretrained SqueezeNet, 10 images, ours and foolbox's FGSM and PGD-5
def test_adversarial_accuracy_matches_foolbox_on_pretrained_weights(imagenet_samples):
  """The same check on the published ImageNet weights and 10 of the ImageNet samples, with their
  true labels: 2 points of 10 images is less than one image, so the accuracies must be equal."""
  fn, variables, spec = loader.load("squeezenet1_1", pretrained=True)
  files, labels = imagenet_files_and_labels(imagenet_samples)
  images = np.stack([image_io.model_input(str(f), spec.input_size, spec.resize)[1]
                     for f in files[:10]])
  labels = labels[:10]
  eps = np.asarray([2 / 255], np.float32)
  for method, steps, step_size in (("fgsm", 1, eps), ("pgd", 5, 2.5 * eps / 5)):
    spec_ = A.Attack("linf", random_start=method == "pgd")
    ours = A.attack(fn, variables, images, labels, eps, spec=spec_, steps=np.asarray([steps]),
                    step_size=step_size, key=jax.random.PRNGKey(0))
    accuracy = _accuracy(fn, variables, A.quantize(ours.images[0], images, eps[0], "linf"), labels)
    starts = np.asarray(A.random_starts(spec_, jax.random.PRNGKey(0), jnp.asarray(images),
                                        jnp.asarray(eps))) if spec_.random_start else None
    theirs = foolbox_reference.accuracies(fn, variables, images, labels, method, eps,
                                          np.asarray([steps]), step_size, spec_, starts=starts)
    assert accuracy == theirs[0], (method, accuracy, theirs)
    assert accuracy < _accuracy(fn, variables, images, labels)   # the attack does something


def test_deepfool_fools_every_image_just_past_the_boundary_like_foolbox(net, linear):
  for fn, variables, images, _ in (net, linear):
    result = M.deepfool(fn, variables, images[:24])
    assert result.fooled.all()
    at_r, at_shorter = M.boundary_check(fn, variables, images[:24], result.perturbations,
                                        result.clean)
    assert at_r.all() and not at_shorter.any()     # flips at r, flips back at 0.95 r
    ours = np.linalg.norm(result.perturbations.reshape(24, -1), axis=1).mean()
    theirs = foolbox_reference.deepfool(fn, variables, images[:24])
    theirs = np.linalg.norm(theirs.reshape(24, -1), axis=1).mean()
    assert abs(ours / theirs - 1) <= 0.10, (ours, theirs)
  # a linear model is crossed in one step, exactly (1 + overshoot) past its boundary
  assert set(result.extras["iterations"].tolist()) == {1}


def test_deepfool_boundary_search_shortens_r_to_the_overshoot_past_the_boundary(net):
  """The paper's r (boundary_rounds=0), shortened along itself to (1 + overshoot) x the
  bisected boundary: never longer, fooled at r, and back to the clean class once r is cut
  below the boundary (1 / (1.02 x 1.002) of it: the overshoot and the bisection's tolerance)."""
  fn, variables, images, _ = net
  paper = M.deepfool(fn, variables, images[:24], boundary_rounds=0)
  ours = M.deepfool(fn, variables, images[:24])
  scale = ours.extras["boundary_scale"]
  assert np.all(scale <= 1) and np.all(scale > 0.5)
  np.testing.assert_allclose(ours.perturbations, scale[:, None, None, None] * paper.perturbations,
                             atol=1e-6)
  at_r, below = M.boundary_check(fn, variables, images[:24], ours.perturbations, ours.clean,
                                 factor=1 / (1.02 * 1.002))
  assert at_r.all() and not below.any()
  np.testing.assert_array_equal(paper.extras["boundary_scale"], 1.0)


def test_deepfool_scan_loop_equals_the_dispatch_loop(net):
  fn, variables, images, _ = net
  dispatch = M.deepfool(fn, variables, images[:6], max_iter=5)
  scan = M.deepfool(fn, variables, images[:6], max_iter=5, loop="scan")
  np.testing.assert_allclose(scan.perturbations, dispatch.perturbations, atol=1e-6)


class _CountingBar:
  """Stands in for runs.progress: records what a loop counts."""
  bars: list = []

  def __init__(self, iterable=None, total=None, desc="", unit="it"):
    self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
    self.n, self.disable, self.postfix = 0, False, {}
    _CountingBar.bars.append(self)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False

  def __iter__(self):
    for item in self.iterable:
      self.n += 1
      yield item

  def update(self, n=1):
    self.n += n

  def set_postfix(self, refresh=True, **values):
    self.postfix = values


def test_the_host_loops_show_progress_on_a_terminal_only(net, capsys, monkeypatch):
  fn, variables, images, labels = net
  bim = lambda: A.bim(fn, variables, images[:4], labels[:4], (2 / 255,), steps=(3,),
                      loop="dispatch")
  quiet = bim()
  M.deepfool(fn, variables, images[:4], max_iter=3)
  assert capsys.readouterr().err == ""                   # not a terminal: no bar
  monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
  bim()
  assert "attack 3 steps" in capsys.readouterr().err      # a terminal: tqdm's bar
  monkeypatch.setattr(A.runs, "progress", _CountingBar)
  shown = bim()
  attack = _CountingBar.bars[-1]
  assert (attack.desc, attack.unit, attack.n, attack.total) == ("attack 3 steps", "step", 3, 3)
  result = M.deepfool(fn, variables, images[:4], max_iter=3)
  deepfool, boundary = _CountingBar.bars[-2:]
  assert (boundary.desc, boundary.n) == ("DeepFool boundary", 12)   # then the boundary search
  assert deepfool.desc == "DeepFool 4 images" and deepfool.total == 3
  assert deepfool.n == int(result.extras["iterations"].max())
  assert deepfool.postfix["fooled"] == f"{int(result.fooled.sum())}/4"
  np.testing.assert_array_equal(np.asarray(quiet.images), np.asarray(shown.images))


def test_fgsm_minimal_eps_is_a_bisected_boundary(linear):
  fn, variables, images, labels = linear
  eps, adversarial = M.fgsm_minimal_eps(fn, variables, images[:16], labels[:16], rounds=10)
  ok = np.isfinite(eps)
  assert ok.sum() >= 8
  assert np.all(np.asarray(M.predictions(fn, variables, adversarial)[0])[ok] != labels[:16][ok])
  below = A.fgsm(fn, variables, images[:16], labels[:16], 1e-9).images[0]   # direction only
  direction = np.sign(np.asarray(below) - images[:16])
  shorter = np.clip(images[:16] + (eps - 32 / 255 / 2 ** 10)[:, None, None, None] * direction, 0, 1)
  assert np.all(np.asarray(M.predictions(fn, variables, shorter)[0])[ok] == labels[:16][ok])


def test_lbfgs_reaches_targets_with_the_largest_fooling_c(linear):
  fn, variables, images, labels = linear
  targets = (labels[:4] + 1) % 10
  result = M.lbfgs_attack(fn, variables, images[:4], targets, c_values=(0.01, 1.0, 100.0),
                          rounds=1, steps=6)
  assert result.fooled.all() and np.all(result.adversarial == targets)
  assert result.images.min() >= 0 and result.images.max() <= 1
  # a larger c gives a smaller perturbation; the chosen c is not the smallest of the grid
  assert np.all(result.extras["c"] > 0.01)
  rounded, scale = M.round_adversarial(fn, variables, images[:4], result.perturbations, targets,
                                       targeted=True)
  assert np.all(np.isfinite(scale))
  np.testing.assert_array_equal(np.asarray(M.predictions(fn, variables, rounded)[0]), targets)


# ---------------------------------------------------------------- the experiments end to end

CONFIGS = ["lecture_linear_fooling", "goodfellow15_fgsm", "kurakin17_bim", "madry18_pgd",
           "moosavi16_deepfool", "szegedy14_intriguing"]


def _config(name, arg="smoke", **overrides):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  config.update(overrides)
  return config


def _jsonl(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", CONFIGS)
def test_smoke_configs_write_their_outputs(name, tmp_path):
  config = _config(name)
  summary = main.run(config, str(tmp_path))
  assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
  assert (tmp_path / "report.html").is_file()
  if name == "lecture_linear_fooling":
    assert summary["x_adv"] == [1.5, -1.5, 3.5, -2.5, 2.5, 1.5, 1.5, -3.5, 4.5, 1.5]
    assert round(summary["p_before"], 4) == 0.0474 and round(summary["p_after"], 4) == 0.8808
    return
  settings = summary.get("settings")
  folders = [tmp_path / "adversarial" / s for s in settings] if settings else [tmp_path]
  for folder in folders:
    jsonl = folder / "adversarial.jsonl"
    images = folder / "adversarial" if not settings else folder
    records = _jsonl(jsonl)
    assert [r["source"] for r in records] == ["chelsea", "coffee"]
    assert set(records[0]) >= {"source", "label", "clean_top1", "adv_top1", "adv_prob", "linf",
                               "l2"}
    assert sorted(p.name for p in images.glob("*.png")) == ["chelsea.png", "coffee.png"]
  for key in ("clean_accuracy", "adversarial_accuracy", "success_rate", "mean_linf", "mean_l2",
              "mean_rho"):
    assert key in summary


def test_a_sweep_writes_one_folder_per_eps_with_norms_of_the_saved_files(tmp_path):
  summary = main.run(_config("goodfellow15_fgsm"), str(tmp_path))
  assert summary["settings"] == ["eps0_255", "eps2_255", "eps8_255"]
  assert (tmp_path / "accuracy_vs_eps.png").stat().st_size > 0
  for label, eps in zip(summary["settings"], summary["eps"]):
    for record in _jsonl(tmp_path / "adversarial" / label / "adversarial.jsonl"):
      assert record["linf"] <= eps + 1e-6
      assert record["linf"] == pytest.approx(eps, abs=1e-6) or eps == 0  # FGSM uses the budget


BAD = [("madry18_pgd", {"eps": (-0.1,)}, "eps -0.1 out of range"),
       ("madry18_pgd", {"eps": (1.5,)}, "eps 1.5 out of range"),
       ("madry18_pgd", {"norm": "l1"}, "unknown norm 'l1'"),
       ("madry18_pgd", {"steps": 0}, "steps must be a whole number >= 1"),
       ("madry18_pgd", {"method": "cw"}, "unknown method 'cw'"),
       ("kurakin17_bim", {"target": "1000"}, "target class 1000 out of range"),
       ("goodfellow15_fgsm", {"steps": 3}, "fgsm takes exactly 1 step"),
       ("moosavi16_deepfool", {"max_iter": 0}, "max_iter must be a whole number >= 1"),
       ("szegedy14_intriguing", {"box": "tanh"}, "unknown box constraint 'tanh'")]


@pytest.mark.parametrize("name,overrides,match", BAD)
def test_bad_input_is_a_one_line_error_and_writes_nothing(name, overrides, match, tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(UserError, match=match) as error:
    main.run(_config(name, **overrides), str(workdir))
  assert "\n" not in str(error.value)
  assert not workdir.exists()


def test_a_failed_rerun_keeps_the_previous_outputs(tmp_path):
  main.run(_config("lecture_linear_fooling"), str(tmp_path))
  before = (tmp_path / "summary.json").read_text()
  with pytest.raises(UserError, match="eps 2.0 out of range"):
    main.run(_config("lecture_linear_fooling", eps=2.0, overwrite=True), str(tmp_path))
  assert (tmp_path / "summary.json").read_text() == before


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_images_are_refused(net, bad):
  fn, variables, images, labels = net
  images = images[:2].copy()
  images[0, 0, 0, 0] = bad
  for call in (lambda: A.fgsm(fn, variables, images, labels[:2], 0.1),
               lambda: M.deepfool(fn, variables, images)):
    with pytest.raises(UserError, match="non-finite"):
      call()


def test_a_target_out_of_range_is_refused(net):
  fn, variables, images, labels = net
  with pytest.raises(UserError, match="target class 10 out of range; the model has classes 0..9"):
    A.fgsm(fn, variables, images[:2], [10, 0], 0.1, targeted=True)
