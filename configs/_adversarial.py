"""The fields the adversarial configs share (experiments attack, minimal_perturbation,
fooling_images), with their meaning, and the Fashion-MNIST training run of Goodfellow et al.'s
linearity experiment.

Every config runs on any registered model (`--config.model=...`, `--config.pretrained=...`) or
a trained checkpoint (`--config.checkpoint=WORKDIR`); `:smoke` swaps in a small random
alexnet_cifar on two scikit-image photos (32 px), quick enough for the tests.
"""
import ml_collections

from configs import alexnet_fashion_mnist, common

IMAGENET_SAMPLES = "../shared/data/imagenet-samples"   # 100 ILSVRC-2012 images, labels in names


def base(experiment: str, arg=None) -> ml_collections.ConfigDict:
  config = common.base_config(experiment, arg, images=IMAGENET_SAMPLES)
  config.dataset = ""            # or a cnn_vis.data dataset (fashion_mnist) instead of images
  config.split = "test"          # its split (tfds syntax, e.g. test[:1000])
  config.max_images = 0          # the first N images (0: all; required for a dataset)
  config.batch_size = 25         # images per compiled call (memory bound)
  config.transfer_model = ""     # classify the saved images with this second network as well
  # scan: the whole iteration in one compiled call; dispatch: one compiled step per step (faster
  # on CPU, same result); auto: dispatch on CPU, scan on accelerators (optimize.loop_mode).
  config.loop = "auto"
  config.train = ml_collections.ConfigDict()   # a training run of config.model, done first
  if arg == "smoke":
    config.images = "skimage:chelsea,skimage:coffee"
    config.batch_size = 2
  return config


def attack_config(method: str, arg=None, extra_args=()) -> ml_collections.ConfigDict:
  """experiments/attack.py's fields for `method` (fgsm, bim, pgd)."""
  common.check_arg(arg, "smoke", *extra_args)
  config = base("attack", arg)
  config.method = method         # fgsm | bim | pgd
  config.norm = "linf"           # linf | l2
  config.eps = (2 / 255,)        # ball radii in [0, 1] pixel units; a tuple is one compiled sweep
  config.steps = {"fgsm": 1, "bim": 0, "pgd": 10}[method]   # bim 0: Kurakin's rule per eps
  config.step_size = 0.0         # 0: the method's default (eps, 1/255, 2.5 eps / steps)
  config.target = ""             # "": untargeted; least_likely | random | a class index
  config.reference = ""          # "foolbox": also run foolbox 3's attack on the same weights
  if arg == "smoke":
    config.eps = (2 / 255, 8 / 255)
  return config


def minimal_config(method: str, arg=None) -> ml_collections.ConfigDict:
  """experiments/minimal_perturbation.py's fields for `method` (deepfool, lbfgs)."""
  common.check_arg(arg, "smoke")
  config = base("minimal_perturbation", arg)
  config.method = method         # deepfool | lbfgs
  # DeepFool (Moosavi-Dezfooli et al. 2016; LTS4/DeepFool deepfool.py defaults)
  config.candidates = 10         # the clean image's top-10 classes
  config.overshoot = 0.02
  config.max_iter = 50
  config.boundary_rounds = 12   # ours: bisect r back to (1 + overshoot) x the boundary; 0: off
  # Szegedy et al. 2014's L-BFGS (the paper states none of these; ours)
  config.target = "random"       # random (not the clean class) | least_likely | a class index
  config.c_values = (0.1, 1.0, 10.0, 100.0)   # the c grid, in one vmapped render
  config.c_rounds = 2            # bisection rounds in log c after the grid
  config.steps = 20              # L-BFGS iterations (optax.lbfgs, zoom line search)
  config.box = "sigmoid"         # x + r in [0, 1]: sigmoid parameterisation | clip (projected)
  # DeepFool's Table 1 FGSM column: the smallest eps at which FGSM fools each image
  config.compare_fgsm = method == "deepfool"
  config.fgsm_eps_max = 32 / 255
  config.reference = ""          # "foolbox": foolbox 3's L2DeepFoolAttack on the same weights
  if arg == "smoke":
    config.max_iter = 10
    config.steps = 3
    config.c_values = (1.0, 100.0)
    config.c_rounds = 1
  return config


def fashion_mnist_training(model: str = "softmax_regression") -> ml_collections.ConfigDict:
  """cnn_vis.train.loop's fields for a short Fashion-MNIST run of a small model (ours: the
  paper's MNIST models trained far longer; these reach their test accuracy in a few epochs):
  SGD with momentum 0.9, lr 0.05, batch 128, 3 epochs, no weight decay, no lighting."""
  config = alexnet_fashion_mnist.get_config()
  config.model = model
  config.model_kwargs = ml_collections.ConfigDict()
  config.dataset = "fashion_mnist"
  config.train_split = "train"
  config.eval_split = config.test_split = "test"
  config.crop_pad = 0            # random crops of the unpadded 32x32 images = no crop; the loop
  config.lighting = "none"       # still flips left-right (the AlexNet recipe's augmentation)
  config.epochs = 3
  config.lr = 0.05
  config.warmup_epochs = 0.0
  config.lr_decay = "linear"
  config.weight_decay = 0.0
  config.label_smoothing = 0.0
  config.plateau.patience = 0
  config.log_every = 100
  config.eval_every = config.checkpoint_every = 0   # once per epoch
  config.test_crops = ("center",)
  config.checkpoint_async = False
  return config
