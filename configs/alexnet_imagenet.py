"""AlexNet on ImageNet, the paper's recipe exactly (Krizhevsky, Sutskever & Hinton 2012), for
accelerators:

    bash launch.sh run configs/alexnet_imagenet.py runs/alexnet_imagenet \
        --config.manual_dir=/data/imagenet   # ILSVRC2012_img_{train,val}.tar
    # the paper's 7-net ensemble (Table 2), members vmapped in one step (if memory is short:
    # --config.ensemble.mode=map, one member after another inside the step):
    ... --config.ensemble.members=7

Expected: 40.7% top-1 / 18.2% top-5 validation error for one net with ten-crop testing and
15.4% top-5 for seven (Table 2; the 7-net figure used pre-training on ImageNet Fall 2011, which
this config does not). The paper's run took 5-6 days on two GTX 580 3GB GPUs; it has not been run
with this code base (no accelerator or ImageNet on the development machines, which are 2-core
CPUs); `smoke` runs it end to end on tiny image folders in tests.

Every other config in configs/alexnet_*.py starts from `paper_recipe()` below and states what it
changes and why.
"""
import ml_collections

from configs import common


def paper_recipe() -> ml_collections.ConfigDict:
  """The training fields with the paper's values (§4-§5), dataset-independent."""
  config = ml_collections.ConfigDict()
  config.experiment = "train"
  config.seed = 0
  config.model_kwargs = ml_collections.ConfigDict()
  config.data_dir = ""                # tfds data_dir; "" = $CNN_VIS_CACHE/tfds
  config.manual_dir = ""              # where the dataset's own files are (ImageNet tars, ...)
  config.image_size = 0               # side of the images the pipeline yields; 0 = dataset's
  config.crop = 0                     # training crop; 0 = the model's input size
  config.crop_pad = 0                 # zero padding before random crops
  config.lighting = "imagenet"        # §4.1 PCA lighting: "imagenet" values, "train" PCA, "none"
  config.lighting_std = 0.1           # §4.1: alpha ~ N(0, 0.1)
  config.lighting_images = 10_000     # images whose RGB covariance gives lighting="train"
  config.eval_crops = "center"        # validation during training
  config.test_crops = ("center", "ten")  # final test: centre crop and §4.1's ten crops
  config.batch_size = 128             # §5
  config.eval_batch_size = 0          # 0 = batch_size
  config.epochs = 90                  # §5: "roughly 90 cycles through the training set"
  config.num_steps = 0                # > 0 overrides epochs (tests)
  config.lr = 0.01                    # §5: initial learning rate, same for all layers
  config.momentum = 0.9               # §5
  config.weight_decay = 5e-4          # §5
  config.label_smoothing = 0.0        # the paper has none
  config.warmup_epochs = 0.0          # the paper has none
  config.lr_decay = "constant"        # schedule under the plateau rule: constant|cosine|linear|step
  config.plateau = ml_collections.ConfigDict()
  config.plateau.patience = 3         # §5 "when the validation error rate stopped improving";
                                      # evaluations (epochs) without improvement; 0 = off
  config.plateau.factor = 0.1         # §5: divided by 10
  config.plateau.max_reductions = 3   # §5: "reduced three times prior to termination"
  config.plateau.cooldown = 0
  config.ensemble = ml_collections.ConfigDict()
  config.ensemble.members = 1         # Table 2: 5 or 7 nets
  config.ensemble.mode = "vmap"       # members in one compiled step: vmap | unroll | map
                                      # (cnn_vis/train/ensemble.py; map: least memory)
  config.log_every = 100              # steps; 0 = once per epoch
  config.eval_every = 0               # steps; 0 = once per epoch
  config.checkpoint_every = 0         # steps; 0 = once per epoch
  config.keep_checkpoints = 2
  config.checkpoint_async = True
  return config


def get_config(arg=None):
  common.check_arg(arg, "smoke")
  config = paper_recipe()
  config.model = "alexnet"            # §3, Fig. 2, 227x227 input (two-GPU groups), paper init
  config.model_kwargs = ml_collections.ConfigDict({"paper_init": True})  # §5: N(0, 0.01), bias 1
  config.dataset = "imagenet2012"
  config.train_split = "train"
  config.eval_split = "validation"    # the paper's plateau signal: validation error
  config.test_split = "validation"    # ILSVRC-2012 test labels are not public (Table 2 uses val)
  config.image_size = 256             # §2: shorter side 256, central 256x256
  if arg == "smoke":
    config.model = "alexnet_cifar"
    config.model_kwargs = ml_collections.ConfigDict(
        {"width": 0.0625, "fc_width": 16, "lrn": True, "paper_init": True})
    config.dataset = "image_folder"   # manual_dir: a folder of split/class/*.jpg (set by tests)
    config.train_split, config.eval_split, config.test_split = "train", "test", "test"
    config.image_size = 36
    config.batch_size = 8
    config.num_steps = 4
    config.log_every = config.eval_every = config.checkpoint_every = 2
    config.test_crops = ("center",)
    config.checkpoint_async = False
  return config


def get_sweep():
  """Ensemble sizes of Table 2: 1 and 5 nets (7 with the Fall-2011 pre-training left out)."""
  return [{"ensemble.members": 1}, {"ensemble.members": 5}]
