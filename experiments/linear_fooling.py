"""The lecture's linear example of fooling (CS231n "Understanding ConvNets"; Goodfellow et al.
2015, §3; cnn_vis.techniques.adversarial.linear_example).

A logistic regression P(class 1 | x) = sigmoid(w.x + b) on config.x; the adversarial input
x + eps sign(w) (FGSM against class 0) moves every input by eps yet the score by eps ||w||_1.
The report shows the slide's table (x, w, adversarial x, with the score and P(class 1) before
and after) and the general point: for dimensions config.dimensions, random x and w with
|w_i| = 1, the same eps step moves the score by eps * n, whatever x is.

Writes summary.json (p_before, p_after, x_adv, score_before, score_after, score_change and
eps_times_w_l1, which the linear argument says are equal), metrics.jsonl (one line per
dimension of the general point) and report.html.
"""
import numpy as np

from cnn_vis import report, runs
from cnn_vis.errors import check
from cnn_vis.techniques import adversarial as A


def slide_table(x, w, result) -> str:
  cells = lambda values: " ".join(f"{v:5g}" for v in values)
  return "\n".join([
      f"x             {cells(x)}",
      f"w             {cells(w)}",
      f"adversarial x {cells(result.x_adv)}",
      "",
      f"class 1 score w.x + b: {result.score:g} -> {result.score_adv:g}",
      f"P(class 1 | x) = sigmoid(score): {result.p:.4f} -> {result.p_adv:.4f}",
      f"score change {result.score_adv - result.score:g} = eps ||w||_1 = {result.score_change:g}"])


def general_point(eps: float, dimensions, seed: int) -> list[dict]:
  """For each n: random x ~ N(0, 1) and w in {-1, 1}^n: the FGSM step's score change and
  eps ||w||_1 = eps n."""
  rng = np.random.RandomState(seed)
  rows = []
  for n in dimensions:
    x, w = rng.randn(n), rng.choice([-1.0, 1.0], n)
    result = A.linear_example(x, w, 0.0, eps)
    rows.append({"dimension": int(n), "max_input_change": float(np.abs(result.x_adv - x).max()),
                 "score_change": result.score_adv - result.score,
                 "eps_times_w_l1": result.score_change})
  return rows


def run(config, workdir):
  x, w = np.asarray(config.x, np.float64), np.asarray(config.w, np.float64)
  check(x.ndim == 1 and x.shape == w.shape, f"x and w must be vectors of one length, got "
                                            f"{x.shape} and {w.shape}")
  dimensions = [int(n) for n in config.dimensions]
  check(all(n >= 1 for n in dimensions), f"dimensions must be >= 1, got {dimensions}")
  result = A.linear_example(x, w, float(config.b), float(config.eps))
  with runs.Run(config, workdir) as run:
    rows = general_point(float(config.eps), dimensions, int(config.seed))
    for row in rows:
      runs.append_metrics(run.dir, row)
    run.summary.update({"p_before": result.p, "p_after": result.p_adv,
                        "x_adv": [float(v) for v in result.x_adv], "score_before": result.score,
                        "score_after": result.score_adv,
                        "score_change": result.score_adv - result.score,
                        "eps_times_w_l1": result.score_change, "eps": float(config.eps)})
    general = "\n".join(f"n = {r['dimension']:6d}: every input moves by at most "
                        f"{r['max_input_change']:g}, the score by {r['score_change']:.6g} "
                        f"(eps n = {r['eps_times_w_l1']:g})" for r in rows)
    report.write_report(run.dir, "Fooling a linear classifier (the lecture's example)", config,
                        [("The slide", [("x + eps sign(w), eps = "
                                         f"{config.eps:g}", None, slide_table(x, w, result))]),
                         ("The general point: a step of eps per input moves the score by "
                          "eps ||w||_1", [("random x, w in {-1, 1}^n", None, general)])],
                        summary=run.summary)
  return run.summary
