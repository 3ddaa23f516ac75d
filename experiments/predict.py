"""Classify every image of config.images; write predictions.jsonl (one line per image with its
top-k [class_index, class_name, probability]) and report.html showing each image with its top-k."""
import json
import os

from cnn_vis import models, report, runs
from cnn_vis.errors import check
from cnn_vis.techniques import classify


def run(config, workdir):
  check(config.top_k >= 1, f"top_k must be >= 1, got {config.top_k}")
  check(config.batch_size >= 1, f"batch_size must be >= 1, got {config.batch_size}")
  module, variables, spec = runs.model_from_config(config)
  names, images = runs.images_from_config(config, spec, skip_unreadable=True)  # before touching the workdir: bad input writes nothing
  workdir = runs.start_run(config, workdir)
  k = min(config.top_k, len(spec.class_names))
  probs, indices = classify.batched_top_k(models.ModelFn(module), variables,
                                          images, k, config.batch_size)
  records = [{"file": name, "top5" if k == 5 else f"top{k}":
              [[int(c), spec.class_names[int(c)], float(p)] for c, p in zip(row_i, row_p)]}
             for name, row_i, row_p in zip(names, indices, probs)]
  tmp = workdir / ".predictions.jsonl.tmp"
  tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
  os.replace(tmp, workdir / "predictions.jsonl")
  items = []
  for i, (name, image) in enumerate(zip(names, images)):
    rel = f"images/{i:04d}.png"
    report.save_image(workdir / rel, image)
    text = "\n".join(f"{p:6.1%}  {spec.class_names[int(c)]}" for c, p in zip(indices[i], probs[i]))
    items.append((name, rel, text))
  report.write_report(workdir, f"predict: {config.model}", config, [("Predictions", items)],
                      summary={"model": config.model, "images": len(names)})
  return records
