"""Integrated Gradients (Sundararajan, Taly & Yan 2017, "Axiomatic attribution", §3 and §5).

  python -m cnn_vis.main --config=configs/sundararajan17_integrated_gradients.py --workdir=runs/ig

IG_i(x) = (x_i - x'_i) * sum_k dS(x' + k/m (x - x'))/dx_i / m (§5, a right Riemann sum of the
path integral of §3), baseline x' the black image (§3: for image networks "the baseline could be
the black image"), m = 50 steps (§5: 20 to 300 steps approximate the integral within 5%; the
paper says to check completeness, which metrics.jsonl reports as completeness_gap). Shown as the
attribution magnitude summed over colour channels. Path points run `chunk` at a time: memory
grows with chunk, not with steps.

On the pretrained EfficientNet-Lite0 the black-image path is far from uniform: for chelsea the
Egyptian-cat logit is 0.4 at alpha = 0.02 and already 9.3 at alpha = 0.04 (9.2 at the image), so
64 uniform steps leave a 6% (Egyptian cat) to 10% (tiger cat, the top class) completeness gap,
as Captum's IntegratedGradients does on the same weights; 256 steps still leave 6% (tiger cat);
raise `steps` (see get_sweep) when the gap matters.
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("attribution", "integrated_gradients", arg)
  config.targets = "predicted"
  config.steps = 50               # §5: 20 to 300 steps
  config.baseline = "black"       # §3: black | white | grey | a number in [0, 1]
  config.rule = "riemann_right"   # §5; also riemann_left|middle|trapezoid, gausslegendre
  config.chunk = 10               # path points per forward/backward pass (memory bound)
  if arg == "smoke":
    config.steps, config.chunk = 8, 3
  return config


def get_sweep():
  """Completeness against the number of steps, and the effect of the baseline."""
  return [{"steps": steps} for steps in (20, 50, 100, 300)] + \
      [{"baseline": baseline} for baseline in ("white", "grey")]
