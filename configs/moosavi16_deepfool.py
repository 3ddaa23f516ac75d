"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard 2016, Algorithm 2; docs/papers.md §20).

  python -m cnn_vis.main --config=configs/moosavi16_deepfool.py --workdir=runs/deepfool
  python -m cnn_vis.main --config=configs/moosavi16_deepfool.py --config.reference=foolbox \
      --workdir=runs/deepfool_foolbox   # foolbox 3's L2DeepFoolAttack on the same weights too

The multi-class L2 DeepFool of the reference code (LTS4/DeepFool): the clean image's top-10
classes as candidates, overshoot 0.02, at most 50 iterations, on the pre-softmax scores, pixels
clipped to [0, 1]. Reports per image ||r||_2, ||r||_2 / ||x||_2 and ||r||_inf, and the mean
rho_adv = mean ||r||_2 / ||x||_2 of Table 1 (ILSVRC 2012: CaffeNet 2.7e-3, GoogLeNet 1.9e-3)
beside FGSM's (the smallest fooling eps per image; Table 1: 3.5e-2 and 4.7e-2). Neither of the
paper's nets has weights here: the default is the pretrained EfficientNet-Lite0 on the 100
ImageNet samples; `--config.model=squeezenet1_1` or a checkpoint work alike.
"""
from configs import _adversarial


def get_config(arg=None):
  config = _adversarial.minimal_config("deepfool", arg)
  config.batch_size = 10         # 10 candidates x 10 images backward at once (memory bound)
  return config


def get_sweep():
  return [{"model": "efficientnet_lite0"}, {"model": "squeezenet1_1"}, {"overshoot": 0.0}]
