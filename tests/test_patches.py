"""Receptive fields against the support of the gradient of a unit w.r.t. the input (AlexNet,
SqueezeNet v1.1, EfficientNet-Lite0, every spatial layer), the R-CNN numbers, and the top-patches
experiment end to end: its output files and fields, and bad input (one-line errors, nothing
written)."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from cnn_vis import loader, main, models
from cnn_vis.data.images import model_input
from cnn_vis.errors import UserError
from cnn_vis.techniques import patches
from configs import girshick14_top_patches


def random_variables(name: str, module, seed: int = 0):
  """He-scaled normal kernels, zero biases, identity batch norms (numpy: no compiled init)."""
  shapes = jax.eval_shape(lambda: models.init_variables(name, module))
  rng = np.random.default_rng(seed)

  def fill(path, s):
    leaf = path[-1].key
    if leaf == "kernel":
      return (rng.normal(size=s.shape) * np.sqrt(2.0 / math.prod(s.shape[:-1]))).astype(np.float32)
    if leaf in ("scale", "var"):
      return np.ones(s.shape, np.float32)
    return np.zeros(s.shape, np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def probe_positions(field, size: int) -> list[tuple[int, int]]:
  """The first and last positions (clipped at the borders) and the diagonal one whose box is
  largest (unclipped where the field fits in the image)."""
  areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in
           (field.box(y, y, size, size) for y in range(field.height))]
  middle = int(np.argmax(areas))
  return sorted({(0, 0), (field.height - 1, field.width - 1), (middle, middle)})


def gradient_supports(apply_fn, variables, size: int, probes):
  """For each probe (layer, y, x): the pixels where the gradient of the sum over the layer's
  channels at (y, x) is nonzero, as a (size, size) bool mask. One batch: probe b differentiates
  its own unit on its own random image (the images of a batch do not interact)."""
  images = jax.random.uniform(jax.random.PRNGKey(0), (len(probes), size, size, 3))
  layers = sorted({layer for layer, _, _ in probes})

  def forward(x):
    return {name: a for name, a in apply_fn(variables, x)[1].items() if name in layers}

  outputs, pullback = jax.vjp(jax.jit(forward), images)
  cotangent = {name: np.zeros(a.shape, np.float32) for name, a in outputs.items()}
  for b, (layer, y, x) in enumerate(probes):
    cotangent[layer][b, y, x, :] = 1.0
  (grads,) = jax.jit(pullback)(cotangent)
  return np.asarray(jnp.any(grads != 0, axis=-1))


@pytest.mark.slow  # three nets, 30-63 probes each (one image per probe)
@pytest.mark.parametrize("name,options,size", [("alexnet", {"groups": 1}, 227),
                                               ("squeezenet1_1", {}, 163),
                                               ("efficientnet_lite0", {}, 160)])
def test_receptive_fields_equal_the_gradient_support(name, options, size):
  """At the first, last and most central position of every spatial layer, the gradient of the
  sum over the layer's channels w.r.t. a random image is nonzero only inside the declared box
  (the window clipped to the image: padding has no pixels), and its support reaches all four
  sides of the box. Together these are exact: a gradient cannot reach a pixel outside the true
  field, so a declared box that is too small shows pixels outside it, and one that is too large
  leaves a side unreached. Inside, a few pixels may have a zero gradient (a ReLU off or every
  max-pool switch elsewhere on all paths: SqueezeNet's 16-channel squeeze layers leave such
  holes); they say nothing about the geometry and are only counted. AlexNet runs at its input
  size (the R-CNN numbers); SqueezeNet and EfficientNet at smaller sizes to keep the test quick:
  the fields are computed for the size given, an odd one for SqueezeNet's ceil-mode pools."""
  apply_fn = models.ModelFn(models.build(name, **options))
  variables = random_variables(name, apply_fn.module)
  spatial = {layer.name for layer in apply_fn.geometry if layer.spatial}
  fields = {k: f for k, f in apply_fn.receptive_fields(size).items() if k in spatial}
  probes = [(layer, y, x) for layer, field in fields.items()
            for y, x in probe_positions(field, size)]
  supports = gradient_supports(apply_fn, variables, size, probes)
  wrong, filled = [], []
  for (layer, y, x), support in zip(probes, supports):
    top, left, bottom, right = fields[layer].box(y, x, size, size)
    inside = np.zeros((size, size), bool)
    inside[top:bottom, left:right] = True
    rows, cols = np.nonzero(support)
    reached = (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) if support.any() else None
    if support[~inside].any() or reached != (top, left, bottom, right):
      wrong.append(f"{layer}@{y},{x}: box {(top, left, bottom, right)}, gradient reaches "
                   f"{reached}, {int(support[~inside].sum())} px outside")
    filled.append(support.sum() / inside.sum())
  assert not wrong, wrong
  print(f"\n{name}: {len(probes)} probes on {len(fields)} layers all equal to their fields; "
        f"support fills {min(filled):.4f}..{max(filled):.4f} of the box")


def test_alexnet_fields_are_the_rcnn_numbers():
  """docs/papers.md §11: one-stream AlexNet at 227 px; conv5 163 px (the toolbox and the R-CNN
  code's boxes), pool5 195 px (R-CNN §3.1)."""
  fields = models.ModelFn(models.build("alexnet", groups=1)).receptive_fields(227)
  names = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")
  assert [fields[n].size for n in names] == [11, 19, 51, 67, 99, 131, 163, 195]
  assert [fields[n].stride for n in names] == [4, 8, 8, 16, 16, 16, 16, 32]
  assert (fields["pool5"].height, fields["conv5"].height) == (6, 13)
  assert fields["pool5"].box(2, 2, 227, 227) == (0, 0, 195, 195)   # fits: unclipped
  assert fields["conv5"].box(4, 4, 227, 227) == (0, 0, 163, 163)
  assert fields["pool5"].box(0, 5, 227, 227) == (0, 96, 131, 227)  # clipped at the borders
  boxes = patches.position_boxes(fields["pool5"], 227)
  assert boxes.shape == (36, 4) and tuple(boxes[2 * 6 + 2]) == (0, 0, 195, 195)


# ------------------------------------------------------------------------------------------------
# The experiment.

def _config(**overrides):
  config = girshick14_top_patches.get_config("smoke")
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("top") / "run"
  summary = main.run(_config(), str(workdir))
  return workdir, summary


def test_outputs_follow_the_contract(smoke_run):
  workdir, summary = smoke_run
  lines = [json.loads(line) for line in (workdir / "top_patches.jsonl").read_text().splitlines()]
  conv3 = [line for line in lines if line["unit"].startswith("conv3:")]
  fc6 = [line for line in lines if line["unit"].startswith("fc6:")]
  assert len(conv3) == 48 and len(fc6) == 32   # every unit of both layers (width 0.125)
  assert [line["unit"] for line in conv3] == [f"conv3:{c}" for c in range(48)]
  names = {"astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field",
           "immunohistochemistry"}
  for line in lines:
    values = [p["activation"] for p in line["patches"]]
    assert len(values) == 3 and values == sorted(values, reverse=True)
    assert len({p["source"] for p in line["patches"]}) == 3   # one patch per image
    for p in line["patches"]:
      assert p["source"] in names and set(p) == {"source", "y", "x", "activation", "box"}
      top, left, bottom, right = p["box"]
      assert 0 <= top < bottom <= 32 and 0 <= left < right <= 32
      if line["unit"].startswith("fc6"):
        assert p["box"] == [0, 0, 32, 32] and (p["y"], p["x"]) == (0, 0)
      else:
        assert 0 <= p["y"] < 8 and 0 <= p["x"] < 8
        assert p["box"] == [max(-10 + 4 * p["y"], 0), max(-10 + 4 * p["x"], 0),
                            min(17 + 4 * p["y"], 32), min(17 + 4 * p["x"], 32)]
  saved = json.loads((workdir / "summary.json").read_text())
  assert saved["receptive_field"] == [{"layer": "conv3", "size": 27, "stride": 4, "offset": -10},
                                      {"layer": "fc6", "size": 32, "stride": 32, "offset": 0}]
  assert saved["images"] == 7 and summary["units"] == 80
  grid = np.asarray(Image.open(workdir / "top_patches_conv3.png"))
  assert grid.shape[1] > 6 * 24 and grid.std() > 0     # 3 patches + 3 projections per row
  assert all((workdir / "units" / name).is_file() for name in ("conv3_47.png", "fc6_0.png"))
  assert "top_patches_conv3.png" in (workdir / "report.html").read_text()


def test_activations_in_the_file_are_the_networks(smoke_run):
  """The recorded activation of each patch is the unit's value at (y, x) on that image."""
  workdir, _ = smoke_run
  config = _config()
  apply_fn, variables, spec = loader.from_config(config)
  line = json.loads((workdir / "top_patches.jsonl").read_text().splitlines()[5])
  channel = int(line["unit"].split(":")[1])
  images = np.stack([model_input(f"skimage:{p['source']}", 32, None)[1] for p in line["patches"]])
  acts = jax.jit(apply_fn)(variables, jnp.asarray(images))[1]["conv3"]
  for n, p in enumerate(line["patches"]):
    np.testing.assert_allclose(float(acts[n, p["y"], p["x"], channel]), p["activation"],
                               rtol=1e-5)
    assert p["activation"] == pytest.approx(float(acts[n, ..., channel].max()), rel=1e-5)


@pytest.mark.parametrize("overrides,match", [
    ({"layers": "conv9"}, "unknown layer 'conv9'"),
    ({"k": 0}, "k must be an integer >= 1, got 0"),
    ({"per_image": 4}, r"per_image must be an integer in 1..k \(3\), got 4"),
    ({"projection": "lime"}, "unknown projection 'lime'"),
    ({"units": "predicted"}, "top patches need units with a channel"),
    ({"units": "conv3:99"}, "channel 99 out of range"),
    ({"images": "", "dataset": "imagenet2012", "split": "validation",
      "manual_dir": "/nonexistent"}, "ILSVRC2012_img_train.tar"),
    ({"images": "", "dataset": "mnist", "split": "test"}, "unknown dataset 'mnist'"),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(overrides, match, tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(UserError, match=match) as info:
    main.run(_config(data_dir=str(tmp_path / "tfds"), **overrides), str(workdir))
  assert "\n" not in str(info.value)
  assert not workdir.exists()


def test_empty_folder_and_another_models_checkpoint(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(UserError, match="holds no images"):
    main.run(_config(images=str(empty)), str(tmp_path / "a"))
  trained = tmp_path / "trained" / "checkpoints"
  trained.mkdir(parents=True)
  (trained / "model.json").write_text(json.dumps(
      {"model": "alexnet_fashion_mnist", "model_kwargs": {}, "members": 1}))
  with pytest.raises(UserError, match="holds model alexnet_fashion_mnist.*not alexnet_cifar"):
    main.run(_config(checkpoint=str(trained.parent), model_kwargs={}), str(tmp_path / "b"))
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_rerun_into_a_finished_run_keeps_it(smoke_run):
  """A failing rerun (bad layer) into a finished workdir leaves its files as they were."""
  workdir, _ = smoke_run
  before = (workdir / "top_patches.jsonl").read_text()
  with pytest.raises(UserError):
    main.run(_config(layers="nope", overwrite=True), str(workdir))
  assert (workdir / "top_patches.jsonl").read_text() == before
