"""Classify every image of config.images; write predictions.jsonl (one line per image with its
top-k [class_index, class_name, probability]) and report.html showing each image with its top-k."""
import json

from cnn_vis import loader, report, runs
from cnn_vis.errors import check
from cnn_vis.techniques import classify


def run(config, workdir):
  check(config.top_k >= 1, f"top_k must be >= 1, got {config.top_k}")
  check(config.batch_size >= 1, f"batch_size must be >= 1, got {config.batch_size}")
  apply_fn, variables, spec = loader.from_config(config)
  names, images = runs.images_from_config(config, spec, skip_unreadable=True)  # before touching the workdir: bad input writes nothing
  with runs.Run(config, workdir) as run:
    workdir = run.dir
    k = min(config.top_k, len(spec.class_names))
    probs, indices = classify.batched_top_k(apply_fn, variables, images, k, config.batch_size)
    records = [{"file": name, "top5" if k == 5 else f"top{k}":
                [[int(c), spec.class_names[int(c)], float(p)] for c, p in zip(row_i, row_p)]}
               for name, row_i, row_p in zip(names, indices, probs)]
    (workdir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    items = []
    for i, (name, image) in enumerate(zip(names, images)):
      rel = f"images/{i:04d}.png"
      report.save_image(workdir / rel, image)
      text = "\n".join(f"{p:6.1%}  {spec.class_names[int(c)]}" for c, p in zip(indices[i], probs[i]))
      items.append((name, rel, text))
    run.summary.update({"model": config.model, "images": len(names),
                        "top1": [spec.class_names[int(row[0])] for row in indices],
                        "top1_probability": [round(float(row[0]), 4) for row in probs]})
    report.write_report(workdir, f"predict: {config.model}", config, [("Predictions", items)],
                        summary=run.summary)
  return records
