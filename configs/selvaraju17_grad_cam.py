"""Grad-CAM and Guided Grad-CAM (Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra 2017, §3).

  python -m cnn_vis.main --config=configs/selvaraju17_grad_cam.py --workdir=runs/grad_cam
  python -m cnn_vis.main --config=configs/selvaraju17_grad_cam.py \
      --config.method=guided_grad_cam --workdir=runs/guided_grad_cam

alpha_k^c = mean_ij dy^c/dA^k_ij (eq. 1, y^c the score before the softmax), L^c = ReLU(sum_k
alpha_k^c A^k) (eq. 2) at the last conv layer (§3: "the last convolutional layers ... have the
best compromise between high-level semantics and detailed spatial information"), bilinearly
upsampled to the image and shown in the jet colours of the paper; Guided Grad-CAM (§3.1) =
guided backprop * upsampled L^c. The paper's VGG-16 has pretrained weights only if torchvision's
file is on disk (--config.model=vgg16); the default is the pretrained SqueezeNet 1.1, whose
last conv feature map is `fire9` (14x14x512 at 227 px; `head`, 7x7x1280, on EfficientNet-Lite0).
An empty layer picks each model's last conv layer.
"""
from configs import common


def get_config(arg=None):
  config = common.attribution_config("attribution", "grad_cam", arg)
  config.targets = "predicted"    # Fig. 1: the predicted (or a chosen) class
  config.layer = ""               # "" = the model's last conv layer (fire9, conv5, conv5_3, ...)
  return config


def get_sweep():
  """Grad-CAM at successively earlier layers (the paper compares layers of VGG-16), and Guided
  Grad-CAM."""
  return [{"layer": layer} for layer in ("fire9", "fire7", "fire5", "fire3")] + \
      [{"method": "guided_grad_cam"}, {"model": "efficientnet_lite0"}]
