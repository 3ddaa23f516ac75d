"""The basic iterative method / iterative FGSM (Kurakin, Goodfellow & Bengio 2017, §2.2;
docs/papers.md §21).

  python -m cnn_vis.main --config=configs/kurakin17_bim.py --workdir=runs/bim
  python -m cnn_vis.main --config=configs/kurakin17_bim.py --config.target=least_likely \
      --workdir=runs/bim_ll

X_{N+1} = Clip_{X,eps}(X_N + alpha sign(grad J(X_N, y))), alpha = 1/255 (one level per step),
min(255 eps + 4, 1.25 * 255 eps) iterations (2, 5 and 10 for eps 2, 4 and 8 /255; the paper does
not say how to round, we round down), every eps in one compiled call (settings with fewer steps
stop early). `--config.target=least_likely` is the paper's iterative least-likely class method:
the same steps descend the cross-entropy of the clean image's least likely class. The paper's
Inception v3 has no weights here: the default is the pretrained EfficientNet-Lite0 on the 100
ImageNet samples.
"""
from configs import _adversarial


def get_config(arg=None):
  config = _adversarial.attack_config("bim", arg)
  config.eps = (2 / 255, 4 / 255, 8 / 255)   # the paper sweeps 2..128 (0..255 units)
  if arg == "smoke":
    config.eps = (2 / 255, 4 / 255)
  return config


def get_sweep():
  return [{"target": ""}, {"target": "least_likely"}, {"model": "squeezenet1_1"}]
