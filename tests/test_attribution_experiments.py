"""The attribution and occlusion experiments end to end, their configs, bad input, and the maps of
the pretrained EfficientNet-Lite0 on a photo of a cat (skimage's chelsea)."""
import functools
import importlib
import json

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from cnn_vis import loader, main, models
from cnn_vis.data.images import skimage_image
from cnn_vis.errors import UserError
from cnn_vis.report import images as pictures
from cnn_vis.techniques import attribution
from cnn_vis.techniques import gradients as G
from cnn_vis.techniques import occlusion as O

CONFIGS = ["simonyan14_saliency", "springenberg15_guided_backprop", "zeiler14_deconvnet",
           "smilkov17_smoothgrad", "sundararajan17_integrated_gradients", "selvaraju17_grad_cam",
           "zeiler14_occlusion"]


def _config(name, arg="smoke", **overrides):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  config.update(overrides)
  return config


def _pngs(folder):
  return sorted(p.name for p in folder.glob("*.png")) if folder.is_dir() else []


@pytest.mark.parametrize("name", CONFIGS)
def test_smoke_config_writes_maps_and_report(name, tmp_path):
  config = _config(name)
  workdir = tmp_path / "run"
  main.run(config, str(workdir))
  assert json.loads((workdir / "config.json").read_text())["experiment"] == config.experiment
  report = (workdir / "report.html").read_text()
  assert "<img" in report and "chelsea" in report and "coffee" in report
  assert (workdir / "summary.png").stat().st_size > 0
  metrics = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [m["image"] for m in metrics] == ["chelsea", "coffee"]
  # the panels' labels are HTML text under full-resolution tiles, the whole panel linked
  assert "<figcaption>input</figcaption>" in report and "all in one picture: <a href='panels/" \
      in report
  assert (workdir / "tiles" / "panels").is_dir()
  if name == "zeiler14_occlusion":
    assert _pngs(workdir / "maps") == sorted(f"{i:03d}_{n}_{k}.png" for i, n in enumerate(
        ["chelsea", "coffee"]) for k in ("feature", "label", "legend", "prob"))
    maps = np.load(workdir / "occlusion.npz")
    assert maps["prob"].shape == (2, 7, 7)  # 32 px, window 8, stride 4
    assert np.all((maps["prob"] >= 0) & (maps["prob"] <= 1))
  else:
    target = metrics[0]["target"]
    expected = [f"{i:03d}_{n}_{target.replace(':', '_')}.png"
                for i, n in enumerate(["chelsea", "coffee"])]
    for folder in ("maps", "overlays", "panels"):
      assert _pngs(workdir / folder) == expected, folder
    panel = np.asarray(Image.open(workdir / "panels" / expected[0]))
    assert panel.shape[1] > 3 * 32 and panel.std() > 0  # input | map | overlay, not blank
    arrays = np.load(workdir / "attributions.npz")
    assert all(np.isfinite(arrays[k]).all() for k in arrays.files)
    assert all(m["color_range"][0] <= m["color_range"][1] for m in metrics)
    assert "colours span" in report
  if name == "sundararajan17_integrated_gradients":
    assert all("completeness_gap" in m and m["steps"] in (8, 16) for m in metrics)
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["steps_used"] == max(m["steps"] for m in metrics)
    assert summary["max_completeness_gap"] == max(m["completeness_gap"] for m in metrics)
    assert "steps: sum of attributions" in report


@functools.lru_cache(maxsize=None)
def _table(name):
  """The layer table of a registered model at its input size (shapes only, no weights)."""
  apply_fn = models.ModelFn(models.build(name))
  variables = jax.eval_shape(lambda: models.init_variables(name, apply_fn.module))
  spec = models.get_spec(name)
  return models.layer_table(apply_fn, variables, (1, spec.input_size, spec.input_size, 3),
                            spec.class_names)


def test_configs_name_layers_of_their_models():
  """Default and sweep targets/layers exist in the model each entry runs on (no weights
  needed); the defaults run on the ReLU + max-pool SqueezeNet 1.1."""
  for name in CONFIGS:
    module_ = importlib.import_module(f"configs.{name}")
    assert _config(name, None).model == "squeezenet1_1", name
    for overrides in [{}] + list(getattr(module_, "get_sweep", list)()):
      config = _config(name, None, **overrides)
      assert config.pretrained
      spec, table = models.get_spec(config.model), _table(config.model)
      if "targets" in config:
        models.parse_units(config.targets or spec.default(config.method), table)
      for key in ("layer", "feature_layer"):
        if config.get(key) and config[key] != "none":
          models.check_layer(config[key], table)
      if "method" in config:
        attribution.get(config.method).options.from_config(config, spec).check(table)


def test_pictures_clip_normalise_and_label_their_range():
  """Magnitudes clip at the 99th percentile, signed maps are grey at 0 on their own scale (taken
  over their support), colour bars run hi (top) to lo, legends and label maps keep the order of
  frequency, and the smoothness measures are 0 / 2 / 1 where they must be."""
  rng = np.random.default_rng(0)
  magnitude = rng.exponential(size=(50, 60)).astype(np.float32)
  picture = pictures.attribution_picture(np.stack([magnitude, 0 * magnitude], -1), "max_abs")
  assert picture.scale.hi == pytest.approx(np.percentile(magnitude, 99), rel=1e-5)
  assert picture.scale.lo == 0 and np.all(picture.image[magnitude >= picture.scale.hi] == 1)
  np.testing.assert_allclose(picture.image[..., 0], np.minimum(magnitude / picture.scale.hi, 1),
                             atol=1 / 255)   # matplotlib's colour maps are 256-entry tables
  sparse = np.zeros((40, 40, 3), np.float32)
  sparse[10:14, 10:14] = rng.normal(size=(4, 4, 3))     # a projection in a small field
  signed = pictures.attribution_picture(sparse, "signed")
  assert signed.scale.hi == -signed.scale.lo == pytest.approx(
      np.percentile(np.abs(sparse[10:14, 10:14]), 99), rel=1e-5)
  assert np.all(signed.image[0, 0] == 0.5)               # zero is grey
  bar = pictures.colorbar(pictures.Scale(-2.0, 3.0, "viridis"), 80)
  viridis = matplotlib.colormaps["viridis"]
  np.testing.assert_allclose(bar[0, 0], viridis(1.0)[:3], atol=1 / 255)
  np.testing.assert_allclose(bar[-1, 0], viridis(0.0)[:3], atol=1 / 255)
  assert bar.shape[0] == 80 and bar[:, 12:].min() < 0.5  # tick labels are drawn beside the bar
  assert pictures.Scale(-2.0, 3.0).ticks() == (-2.0, 0.0, 3.0)
  labels = np.array([[7, 7, 7], [2, 2, 9]])
  colors, entries = pictures.categorical_picture(labels)
  assert [e[0] for e in entries] == [7, 2, 9]
  assert [e[2] for e in entries] == pytest.approx([0.5, 1 / 3, 1 / 6])
  for label, color, _ in entries:
    assert np.all(colors[labels == label] == color)
  legend = pictures.legend([c for _, c, _ in entries], ["a", "b", "c"])
  assert legend.shape[0] == 3 * 15 + 1
  checkerboard = (np.indices((16, 16)).sum(0) % 2).astype(np.float32)
  assert pictures.total_variation(checkerboard) == pytest.approx(2.0)
  assert pictures.high_frequency_energy(checkerboard) == pytest.approx(1.0)
  assert pictures.total_variation(np.ones((8, 8))) == 0.0
  smooth = np.outer(np.hanning(32), np.hanning(32))
  assert pictures.high_frequency_energy(smooth) < 1e-3


def test_a_new_method_is_one_registered_function(tmp_path):
  """The experiment dispatches by name: registering a function is all a new method takes."""
  @attribution.register("gradient_times_input")
  def gradient_times_input(apply_fn, variables, images, target, options):
    """Gradient * input (Shrikumar et al. 2016)."""
    maps = attribution.gradient(apply_fn, variables, images, target, options)
    return maps._replace(values=maps.values * images[None])
  try:
    main.run(_config("simonyan14_saliency", method="gradient_times_input"), str(tmp_path / "run"))
    assert (tmp_path / "run" / "maps" / "000_chelsea_predicted.png").is_file()
  finally:
    attribution._METHODS.pop("gradient_times_input")


@pytest.mark.parametrize("name,overrides,match", [
    ("simonyan14_saliency", {"targets": "conv9:1"}, "unknown layer 'conv9'"),
    ("simonyan14_saliency", {"method": "lime"}, "unknown method 'lime'"),
    ("sundararajan17_integrated_gradients", {"steps": 0}, "steps must be >= 1, got 0"),
    ("sundararajan17_integrated_gradients", {"baseline": "blue"}, "unknown baseline 'blue'"),
    ("smilkov17_smoothgrad", {"samples": 0}, "samples must be >= 1"),
    ("zeiler14_occlusion", {"size": 40}, "window 40 is larger than the image"),
    ("zeiler14_occlusion", {"target": "label"}, "target label needs an ImageNet model"),
    ("simonyan14_saliency", {"targets": "predicted;label"}, "target label needs an ImageNet model"),
    ("simonyan14_saliency", {"targets": "predicted,conv5:1"}, "separate units with ';'"),
    ("selvaraju17_grad_cam", {"layer": "fc7"}, "Grad-CAM needs a conv layer"),
    ("smilkov17_smoothgrad", {"base": "lime"}, "smoothgrad base 'lime' must be one of"),
    ("zeiler14_occlusion", {"fill": "grey"}, "cannot parse fill 'grey'"),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(name, overrides, match, tmp_path):
  """Settings are checked before the model is built; layers and units (which need the model's
  shapes; out-of-range units and non-conv Grad-CAM layers are in test_gradients.py) before the
  workdir is created."""
  workdir = tmp_path / "run"
  with pytest.raises(UserError, match=match) as info:
    main.run(_config(name, **overrides), str(workdir))
  assert "\n" not in str(info.value)
  assert not workdir.exists()


# ------------------------------------------------------------------------------------------------
# The pretrained model on a cat.

def _cat_scene(background: float, top: int, left: int, size: int = 224):
  """skimage's chelsea (the cat, without the background on the right) pasted with soft edges
  onto a plain size x size background; returns the image and the cat's box (y0, y1, x0, x1)."""
  height, width = 112, 142
  cat = Image.fromarray(np.round(skimage_image("chelsea")[:, :380] * 255).astype(np.uint8))
  cat = np.asarray(cat.resize((width, height), Image.BILINEAR), np.float32) / 255
  canvas = np.full((size, size, 3), background, np.float32)
  pasted = np.zeros_like(canvas)
  pasted[top:top + height, left:left + width] = cat
  alpha = np.zeros((size, size, 1), np.float32)
  alpha[top:top + height, left:left + width] = 1
  alpha = ndimage.gaussian_filter(alpha, (3, 3, 0))  # no hard edge for the gradient to latch on
  return alpha * pasted + (1 - alpha) * canvas, (top, top + height, left, left + width)


def _inside(values, box, top=0.10):
  """Fraction of the top-`top` pixels of a map that fall inside box."""
  mask = values >= np.quantile(values, 1 - top)
  y0, y1, x0, x1 = box
  return mask[y0:y1, x0:x1].sum() / mask.sum()


@pytest.mark.slow  # the pretrained 227x227 SqueezeNet: ~20 s on 2 quiet cores
def test_pretrained_maps_put_their_mass_on_the_cat():
  """On the default ReLU + max-pool net, the top-10% pixels of every map of the predicted class
  fall mostly inside the cat's box (31% of the image), and a deconvnet / guided-backprop
  projection of the strongest fire5 activation (the deconvnet config's default) lies entirely
  inside it."""
  apply_fn, variables, spec = loader.load("squeezenet1_1", pretrained=True)
  size = spec.input_size
  scenes = [_cat_scene(0.2, 8, 8, size), _cat_scene(0.8, 104, 74, size)]  # dark / light corners
  images = jnp.asarray(np.stack([image for image, _ in scenes]))
  boxes = [box for _, box in scenes]
  area = (boxes[0][1] - boxes[0][0]) * (boxes[0][3] - boxes[0][2]) / size ** 2
  logits, _ = jax.jit(apply_fn)(variables, images)
  predicted = np.argmax(np.asarray(logits), axis=-1)
  cats = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
  assert all(int(c) in cats for c in predicted), [spec.class_names[int(c)] for c in predicted]
  predicted_class = attribution.Target(None, G.Units.make([-1]))
  strongest = attribution.Target(spec.default("deconvnet").split(":")[1], G.Units.make([-1]))

  def magnitude(method, target):
    maps = attribution.get(method).fn(apply_fn, variables, images, target, attribution.Options())
    return np.abs(np.asarray(maps.values[0])).max(-1)

  maps = {name: magnitude(name, predicted_class)
          for name in ("saliency", "guided_backprop", "deconvnet")}
  maps["grad_cam"] = np.asarray(G.grad_cam(apply_fn, variables, images, G.Units.make([-1]),
                                           spec.last_conv).values)[0]
  occlusion = O.occlusion(apply_fn, variables, images, -1, 0.5, size=32, stride=16, chunk=64)
  maps["occlusion"] = np.asarray(O.to_pixels(occlusion.base_prob[:, None, None] - occlusion.prob,
                                             occlusion.starts_y, occlusion.starts_x, 32, size,
                                             size))
  fractions = {name: [float(_inside(m[n], boxes[n])) for n in range(2)]
               for name, m in maps.items()}
  print(f"\ncat box = {area:.0%} of the image; top-10% pixels inside it: {fractions}")
  for name, values in fractions.items():
    assert min(values) > 0.6, (name, values)
  for method in ("deconvnet", "guided_backprop"):
    unit = magnitude(method, strongest)
    inside = [float(_mass_inside(unit[n], boxes[n])) for n in range(2)]
    print(f"{method} of the strongest {strongest.layer} activation: mass inside {inside}")
    assert min(inside) > 0.95, (method, inside)


def _mass_inside(values, box):
  y0, y1, x0, x1 = box
  return values[y0:y1, x0:x1].sum() / values.sum()
