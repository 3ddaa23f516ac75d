"""The attribution and occlusion experiments end to end, their configs, bad input, and the maps of
the pretrained EfficientNet-Lite0 on a photo of a cat (skimage's chelsea)."""
import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from cnn_vis import loader, main, models
from cnn_vis.data.images import skimage_image
from cnn_vis.errors import UserError
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
  if name == "sundararajan17_integrated_gradients":
    assert all("completeness_gap" in m for m in metrics)


def test_configs_name_layers_of_their_models():
  """Default and sweep targets/layers exist in the default model (no weights needed)."""
  apply_fn = models.ModelFn(models.build("efficientnet_lite0"))
  variables = jax.eval_shape(lambda: models.init_variables("efficientnet_lite0", apply_fn.module))
  table = models.layer_table(apply_fn, variables, (1, 224, 224, 3),
                             models.get_spec("efficientnet_lite0").class_names)
  for name in CONFIGS:
    module_ = importlib.import_module(f"configs.{name}")
    for overrides in [{}] + list(getattr(module_, "get_sweep", list)()):
      config = _config(name, None, **overrides)
      if config.model != "efficientnet_lite0":
        continue
      assert config.pretrained
      if "targets" in config:
        models.parse_units(config.targets, table)
      for key in ("layer", "feature_layer"):
        if config.get(key):
          models.check_layer(config[key], table)
      if "method" in config:
        attribution.get(config.method).options.from_config(config, models.get_spec(config.model)
                                                           ).check(table)


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

def _cat_scene(background: float, top: int, left: int):
  """skimage's chelsea (the cat, without the background on the right) pasted with soft edges
  onto a plain 224x224 background; returns the image and the cat's box (y0, y1, x0, x1)."""
  height, width = 112, 142
  cat = Image.fromarray(np.round(skimage_image("chelsea")[:, :380] * 255).astype(np.uint8))
  cat = np.asarray(cat.resize((width, height), Image.BILINEAR), np.float32) / 255
  canvas = np.full((224, 224, 3), background, np.float32)
  pasted = np.zeros_like(canvas)
  pasted[top:top + height, left:left + width] = cat
  alpha = np.zeros((224, 224, 1), np.float32)
  alpha[top:top + height, left:left + width] = 1
  alpha = ndimage.gaussian_filter(alpha, (3, 3, 0))  # no hard edge for the gradient to latch on
  return alpha * pasted + (1 - alpha) * canvas, (top, top + height, left, left + width)


def _inside(values, box, top=0.10):
  """Fraction of the top-`top` pixels of a map that fall inside box."""
  mask = values >= np.quantile(values, 1 - top)
  y0, y1, x0, x1 = box
  return mask[y0:y1, x0:x1].sum() / mask.sum()


@pytest.mark.slow  # the pretrained 224x224 model: ~30 s on 2 cores, most of it occlusion
def test_pretrained_maps_put_their_mass_on_the_cat():
  apply_fn, variables, spec = loader.load("efficientnet_lite0", pretrained=True)
  scenes = [_cat_scene(0.2, 8, 8), _cat_scene(0.8, 104, 74)]  # dark / light, two corners
  images = jnp.asarray(np.stack([image for image, _ in scenes]))
  boxes = [box for _, box in scenes]
  area = (boxes[0][1] - boxes[0][0]) * (boxes[0][3] - boxes[0][2]) / 224 ** 2
  logits, _ = jax.jit(apply_fn)(variables, images)
  predicted = np.argmax(np.asarray(logits), axis=-1)
  cats = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
  assert all(int(c) in cats for c in predicted), [spec.class_names[int(c)] for c in predicted]
  units = G.Units.make([-1])
  saliency = np.asarray(G.saliency(G.gradients(apply_fn, variables, images, units).values))[0]
  cam = np.asarray(G.grad_cam(apply_fn, variables, images, units, "head").values)[0]
  occlusion = O.occlusion(apply_fn, variables, images, -1, 0.5, size=32, stride=16, chunk=64)
  drop = np.asarray(O.to_pixels(occlusion.base_prob[:, None, None] - occlusion.prob,
                                occlusion.starts_y, occlusion.starts_x, 32, 224, 224))
  fractions = {name: [float(_inside(maps[n], boxes[n])) for n in range(2)]
               for name, maps in (("saliency", saliency), ("grad_cam", cam), ("occlusion", drop))}
  print(f"\ncat box = {area:.0%} of the image; top-10% pixels inside it: {fractions}")
  for name, values in fractions.items():
    assert min(values) > 0.6, (name, values)
