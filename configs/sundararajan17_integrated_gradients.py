"""Integrated Gradients (Sundararajan, Taly & Yan 2017, "Axiomatic attribution", §3 and §5).

  python -m cnn_vis.main --config=configs/sundararajan17_integrated_gradients.py --workdir=runs/ig

IG_i(x) = (x_i - x'_i) * sum_k dS(x' + k/m (x - x'))/dx_i / m (§5, a right Riemann sum of the
path integral of §3), baseline x' the black image (§3: for image networks "the baseline could be
the black image"), target the pre-softmax logit of the predicted class. §5: 20 to 300 steps
usually approximate the integral within 5%, and completeness (the attributions sum to
S(x) - S(x')) should be checked; a user cannot know the steps their image needs, so the step count
is chosen by that check: m starts at 50 (the reference code's `steps=50`) and doubles, reusing the
points already computed (the right Riemann sums nest), until every map's completeness gap
|sum IG - (S(x) - S(x'))| / |S(x) - S(x')| is within target_gap = 5%, or max_steps = 1600 is
reached; metrics.jsonl and the captions report the gap, the steps used and Captum's convergence
delta (target_gap=0 keeps exactly `steps`). Shown as the attribution magnitude summed over colour
channels, clipped at its 99th percentile. Path points run `chunk` at a time: memory grows with
chunk, not with steps.

Default run (pretrained SqueezeNet 1.1, skimage's chelsea and coffee, predicted classes): 100
steps, gaps 0.35% (chelsea) and 0.86% (coffee); the fixed 50 steps leave 0.21% and 7.4%
(benchmarks/fidelity.py). On EfficientNet-Lite0 (--config.model=efficientnet_lite0) the
black-image path is far from uniform (for chelsea the Egyptian-cat logit is 0.4 at alpha = 0.02
and already 9.3 at alpha = 0.04), so 50 steps leave a 35% gap on chelsea and 256 still 6%.
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("attribution", "integrated_gradients", arg)
  config.targets = "predicted"
  config.steps = 50               # the first try; §5: 20 to 300 steps (reference code: 50)
  config.target_gap = 0.05        # §5: within 5% of S(x) - S(x'); 0 = exactly `steps` steps
  config.max_steps = 1600         # the doubling stops here (ours)
  config.baseline = "black"       # §3: black | white | grey | a number in [0, 1]
  config.rule = "riemann_right"   # §5; also riemann_left|middle|trapezoid, gausslegendre
  config.chunk = 10               # path points per forward/backward pass (memory bound)
  if arg == "smoke":
    config.steps, config.max_steps, config.chunk = 8, 16, 4
  return config


def get_sweep():
  """Completeness against fixed numbers of steps, and the effect of the baseline."""
  return [{"steps": steps, "target_gap": 0.0} for steps in (20, 50, 100, 300)] + \
      [{"baseline": baseline} for baseline in ("white", "grey")]
