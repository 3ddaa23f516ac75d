"""SmoothGrad (Smilkov, Thorat, Kim, Viegas & Wattenberg 2017, §3, Figs. 3-5).

  python -m cnn_vis.main --config=configs/smilkov17_smoothgrad.py --workdir=runs/smoothgrad
  python -m cnn_vis.sweep --config=configs/smilkov17_smoothgrad.py --workdir=runs/smoothgrad_noise

M(x) = 1/n sum_i dS_c/dx (x + N(0, sigma^2)), sigma = noise * (x_max - x_min) (§3). The paper's
recommendations: noise 10-20% of the input range (we take 15%) and n around 50 samples, beyond
which returns diminish. Shown as max_c |M| clipped at its 99th percentile like the saliency map
(§3's display); --config.base=guided_backprop (or any registered attribution method) smooths
another method instead (the paper also combines SmoothGrad with other gradient methods). The
model is the pretrained SqueezeNet 1.1, as for the saliency config it is compared with
(benchmarks/fidelity.py measures how much smoother the maps are). The noisy copies run `chunk`
at a time: memory grows with chunk, not with samples.
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("attribution", "smoothgrad", arg)
  config.targets = "predicted"
  config.base = "saliency"        # the method being smoothed (any registered attribution method)
  config.samples = 50             # §3: ~50 samples, diminishing returns beyond
  config.noise = 0.15             # §3: sigma / (x_max - x_min) between 10% and 20%
  config.chunk = 10               # noisy copies per forward/backward pass (memory bound)
  if arg == "smoke":
    config.samples, config.chunk = 6, 4
  return config


def get_sweep():
  """The same image at noise levels from 0% (the plain gradient) to 50%, as the paper compares."""
  return [{"noise": noise} for noise in (0.0, 0.1, 0.2, 0.3, 0.5)]
