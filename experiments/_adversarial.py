"""What the adversarial and fooling experiments share: reading the inputs and their labels,
training the small Fashion-MNIST models in the run, saving 8-bit results and measuring them from
the saved files, summaries, the transfer check on a second network, report panels.

Output layout (other tools read it): one setting writes W/<kind>/<stem>.png and W/<kind>.jsonl;
several settings (an epsilon sweep) write W/<kind>/<setting label>/<stem>.png with
W/<kind>/<setting label>/<kind>.jsonl each.
"""
import dataclasses
import json
import re
from pathlib import Path

import jax
import ml_collections
import numpy as np

from cnn_vis import data, loader, models, report, runs
from cnn_vis.data import images as image_io
from cnn_vis.errors import check
from cnn_vis.models import classes as class_lib
from cnn_vis.techniques import adversarial as A
from cnn_vis.techniques import classify
from cnn_vis.techniques import minimal_perturbation as M
from cnn_vis.train import loop as train_loop

_WNID = re.compile(r"n\d{8}_")
# config.target: untargeted, or the target of each image (besides a class index).
TARGETS = ("", "least_likely", "random")


@dataclasses.dataclass
class Inputs:
  """The clean images of a run: names (the sources), images (N, H, W, 3) on the 8-bit grid, the
  true labels (or -1 where unknown) and where they came from."""
  names: list
  images: np.ndarray
  labels: np.ndarray
  label_source: str


def read_inputs(config, spec: models.ModelSpec) -> Inputs:
  """config.dataset (e.g. fashion_mnist, split config.split) or config.images, at most
  config.max_images of them (0: all); labels from the dataset or ImageNet file names."""
  limit = int(config.get("max_images", 0) or 0)
  check(limit >= 0, f"max_images must be >= 0 (0: all), got {limit}")
  if config.get("dataset"):
    check(limit > 0, "max_images must be > 0 when reading a dataset")
    batches = data.load(config.dataset, config.split, batch_size=min(limit, 1000), train=False)
    images, labels = [], []
    for batch in batches:
      keep = np.asarray(batch["mask"], bool)
      images.append(np.asarray(batch["image"])[keep])
      labels.append(np.asarray(batch["label"])[keep])
      if sum(map(len, images)) >= limit:
        break
    images, labels = np.concatenate(images)[:limit], np.concatenate(labels)[:limit]
    split = runs.safe_name(config.split)
    return Inputs([f"{split}_{i:05d}" for i in range(len(images))], images,
                  labels.astype(np.int32), f"{config.dataset} {config.split}")
  names, images = runs.images_from_config(config, spec, skip_unreadable=True)
  if limit:
    names, images = names[:limit], images[:limit]
  if spec.dataset == "imagenet" and all(_WNID.match(n) for n in names):
    labels = np.asarray([class_lib.imagenet_label(n) for n in names], np.int32)
    return Inputs(names, images, labels, "ImageNet file names")
  return Inputs(names, images, np.full(len(names), -1, np.int32), "none (clean predictions)")


def stem(name: str) -> str:
  return runs.safe_name(Path(name).stem)


def trains(config) -> bool:
  """The run trains its model first: config.train is given and no checkpoint is."""
  return bool(config.get("train")) and not config.get("checkpoint")


def training_config(config):
  """config.train (a cnn_vis.train.loop config) for config.model and its model_kwargs."""
  train = ml_collections.ConfigDict(config.train.to_dict())
  train.model = config.model
  train.model_kwargs = ml_collections.ConfigDict(dict(config.get("model_kwargs") or {}))
  return train


def check_training(config) -> None:
  """The run's own training, if any, validated before anything is written."""
  if trains(config):
    train_loop.prepare(training_config(config), None)


def model_for(config, images):
  """(apply_fn, variables, spec) of the run's model, with a numeric config.target checked
  against its classes; None when the run trains it first (then the target is checked against
  the registered model's class names)."""
  target = str(config.get("target", ""))
  if trains(config):
    check_training(config)
    count = len(models.get_spec(config.model).class_names)
    check(not target.lstrip("-").isdigit() or 0 <= int(target) < count,
          f"target class {target} out of range; the model has classes 0..{count - 1}")
    return None
  apply_fn, variables, spec = loader.from_config(config)
  if target.lstrip("-").isdigit():
    A.check_classes(apply_fn, variables, images[:1], [int(target)], "target")
  return apply_fn, variables, spec


def model_or_trained(config, model, run):
  """(apply_fn, variables, spec, training results or None): the parsed model, or, where the
  config trains one (model None), the network trained in this run's `train` stage."""
  if model is not None:
    return (*model, None)
  with run.stage("train"):
    return train_model(config, run.dir)


def train_model(config, out: Path):
  """Trains config.model with config.train into out/train by the project's training loop;
  returns (apply_fn, variables, spec) of the trained network and the loop's results."""
  train = training_config(config)
  results = train_loop.train_and_evaluate(train_loop.prepare(train, out / "train"), out / "train")
  apply_fn, variables, spec = loader.load(config.model, checkpoint=str(out / "train"))
  return apply_fn, variables, spec, results


def predictions(apply_fn, variables, images, batch_size: int):
  """(top-1 class (N,), its probability (N,)) in fixed-size batches."""
  probs, indices = classify.batched_top_k(apply_fn, variables, images, 1, batch_size)
  return indices[:, 0].astype(np.int32), probs[:, 0]


def class_probabilities(apply_fn, variables, images, classes, batch_size: int):
  """(top-1 (N,), probability of classes[n] (N,)) in fixed-size batches."""
  top1, probs = [], []
  for batch, n_valid in classify.padded_batches(np.asarray(images, np.float32), batch_size):
    predicted, p = M.predictions(apply_fn, variables, batch)
    top1.append(np.asarray(predicted)[:n_valid])
    probs.append(np.asarray(p)[:n_valid])
  probs = np.concatenate(probs)
  return np.concatenate(top1), probs[np.arange(len(probs)), np.asarray(classes)]


def output_paths(out: Path, kind: str, label: str | None) -> tuple[Path, Path]:
  """(image folder, jsonl) of one setting: flat for a single setting (label None)."""
  if label is None:
    return out / kind, out / f"{kind}.jsonl"
  return out / kind / label, out / kind / label / f"{kind}.jsonl"


def save_images(folder: Path, stems, images) -> list[Path]:
  """8-bit PNGs (lossless) of images on the 8-bit grid; returns the paths."""
  return [report.save_image(folder / f"{s}.png", image) for s, image in zip(stems, images)]


def read_saved(paths, size: int | None = None) -> np.ndarray:
  """The saved PNGs decoded again (resized to size x size if given)."""
  if size is None:
    return np.stack([image_io.load_image(p) for p in paths])
  return np.stack([image_io.model_input(str(p), size, None)[1] for p in paths])


def write_jsonl(path: Path, records) -> None:
  runs.write_text(path, "".join(json.dumps(r, default=float) + "\n" for r in records))


def measure_saved(apply_fn, variables, paths, clean, names, labels, clean_top1, batch_size: int,
                  extras=None) -> list[dict]:
  """One adversarial.jsonl record per saved image, everything measured on the file: its top-1
  and probability, ||saved - clean||_inf and _2, and rho = ||r||_2 / ||clean||_2."""
  saved = read_saved(paths)
  adv_top1, adv_prob = predictions(apply_fn, variables, saved, batch_size)
  delta = (saved - clean).reshape(len(saved), -1)
  clean_norm = np.linalg.norm(clean.reshape(len(clean), -1), axis=1)
  records = []
  for i, name in enumerate(names):
    l2 = float(np.linalg.norm(delta[i]))
    record = {"source": name, "label": int(labels[i]), "clean_top1": int(clean_top1[i]),
              "adv_top1": int(adv_top1[i]), "adv_prob": float(adv_prob[i]),
              "linf": float(np.abs(delta[i]).max()), "l2": l2,
              "rho": l2 / max(float(clean_norm[i]), 1e-12)}
    for key, values in (extras or {}).items():
      record[key] = values[i].item() if hasattr(values[i], "item") else values[i]
    records.append(record)
  return records


def attack_summary(records, targets=None) -> dict:
  """clean_accuracy and adversarial_accuracy against the labels (the clean prediction where the
  label is unknown), success_rate (untargeted: the prediction changed; targeted: it became the
  target), the mean norms of the saved perturbations, and error_confidence: the mean top-1
  probability on the adversarial images the model gets wrong (Goodfellow et al. 2015 §4: 79.3%
  for softmax regression at eps 0.25 on MNIST; NaN when none is wrong)."""
  label = np.array([r["label"] if r["label"] >= 0 else r["clean_top1"] for r in records])
  clean = np.array([r["clean_top1"] for r in records])
  adv = np.array([r["adv_top1"] for r in records])
  success = adv == np.asarray(targets) if targets is not None else adv != clean
  mean = lambda key: float(np.mean([r[key] for r in records]))
  wrong = adv != label
  confidence = np.array([r["adv_prob"] for r in records])
  return {"clean_accuracy": float(np.mean(clean == label)),
          "adversarial_accuracy": float(np.mean(adv == label)),
          "success_rate": float(np.mean(success)), "mean_linf": mean("linf"),
          "mean_l2": mean("l2"), "mean_rho": mean("rho"),
          "error_confidence": float(confidence[wrong].mean()) if wrong.any() else float("nan")}


# Figures that do not depend on the setting: one value even in a sweep's summary.
SHARED_FIGURES = ("clean_accuracy",)


def combine(per_setting: list[dict], labels: list[str]) -> dict:
  """One setting: its figures; several: each figure as a list over the settings (`settings`),
  except the SHARED_FIGURES."""
  if len(per_setting) == 1:
    return dict(per_setting[0])
  out = {"settings": labels}
  for key in per_setting[0]:
    values = [s[key] for s in per_setting]
    out[key] = values[0] if key in SHARED_FIGURES else values
  return out


def transfer(model_name: str, paths, classes, batch_size: int) -> dict:
  """The saved images classified by a second network (its published weights), each resized to its
  input size: top-1 (N,) and the probability of classes[n] (N,)."""
  apply_fn, variables, spec = loader.load(model_name, pretrained=True)
  images = read_saved(paths, spec.input_size)
  top1, prob = class_probabilities(apply_fn, variables, images, classes, batch_size)
  return {"model": model_name, "top1": top1, "prob": prob, "class_names": spec.class_names}


def check_transfer_model(name: str, spec: models.ModelSpec) -> None:
  if name:
    other = models.get_spec(name)
    check(other.pretrained is not None, f"transfer_model {name} has no pretrained weights")
    check(other.dataset == spec.dataset, f"transfer_model {name} classifies {other.dataset}, "
                                         f"not {spec.dataset} like {spec.name}")


def panel(clean, adversarial, clean_label: str, adversarial_label: str):
  """Szegedy et al.'s Fig. 5 layout: (tiles, labels) of image | perturbation (magnified, grey =
  0) | adversarial."""
  delta = np.asarray(adversarial, np.float32) - np.asarray(clean, np.float32)
  scale = max(float(np.abs(delta).max()), 1e-12)
  magnified = 0.5 + 0.5 * delta / scale
  return ([clean, magnified, adversarial],
          [clean_label, f"r x{0.5 / scale:.0f}", adversarial_label])


def panels(workdir: Path, name: str, clean, adversarial, records, class_names, count: int):
  """W/<name>.png: the first `count` images as Fig. 5 panels (one row each), the tiles in
  W/tiles/<name>/; the Grid the report shows them in (labels as text), or None."""
  rows = [panel(clean[i], adversarial[i], class_names[r["clean_top1"]],
                class_names[r["adv_top1"]]) for i, r in enumerate(records[:count])]
  if not rows:
    return None
  tiles = [tile for row, _ in rows for tile in row]
  labels = [label for _, row in rows for label in row]
  return report.labelled_grid(workdir, f"{name}.png", tiles, labels, 3)[1]


def resolve_targets(target: str, apply_fn, variables, images, labels, seed: int,
                    batch_size: int) -> np.ndarray:
  """(N,) target classes: the least likely class of the clean image, a random class other than
  the label, or the given class (range-checked)."""
  count = A.num_classes(apply_fn, variables, (1,) + images.shape[1:])
  if target == "least_likely":
    probs, indices = classify.batched_top_k(apply_fn, variables, images, count, batch_size)
    return indices[:, -1].astype(np.int32)
  if target == "random":
    draw = np.random.RandomState(seed).randint(1, count, size=len(labels))
    return ((labels + draw) % count).astype(np.int32)
  return A.check_classes(apply_fn, variables, images, np.full(len(images), int(target)), "target")


def key(config):
  return jax.random.PRNGKey(int(config.get("seed", 0)))
