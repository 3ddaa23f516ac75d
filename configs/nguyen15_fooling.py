"""High-confidence fooling images (Nguyen, Yosinski & Clune 2015; docs/papers.md §8).

  python -m cnn_vis.main --config=configs/nguyen15_fooling.py --workdir=runs/fooling_gradient
  python -m cnn_vis.main --config=configs/nguyen15_fooling.py:cppn --workdir=runs/fooling_cppn
  python -m cnn_vis.main --config=configs/nguyen15_fooling.py --config.decay="(0.0, 0.01)" \
      --workdir=runs/fooling_regularised     # plain and regularised side by side, one render

Ten ImageNet classes, each image from noise, each checked on its saved PNG against the paper's
99.6% (Fig. 1), then classified by a second network (EfficientNet-Lite0 <-> SqueezeNet 1.1) to
see whether the fooling transfers.
- default (`gradient`): ascend log p(class) from the mean image plus N(0, 1/255^2) noise with
  Adam (lr 0.02, 100 steps; ours, see cnn_vis/techniques/fooling.py), clipping to [0, 1];
  `--config.decay=0.01` is the paper's regularised variant (the reference code's L2 decay).
- `cppn`: a CPPN of (x, y, r) whose weights separable CMA-ES evolves (evosax; population 16,
  fitness = the class probability), every class and generation in one compiled call, on
  SqueezeNet 1.1 (a Caffe ReLU net like the paper's AlexNet; transfer checked on
  EfficientNet-Lite0). The paper evolves CPPN topologies with NEAT inside MAP-Elites (population
  400, 5,001 generations over all 1,000 classes), beyond this machine's budget.
The gradient variant's ten classes (CLASSES) are those whose probability random CPPN images
already raise most on EfficientNet-Lite0 (cnn_vis.techniques.fooling.screen_classes with
generations=0, 256 draws, seed 0): cardoon, isopod, jellyfish, dugong, lorikeet, quill, bubble,
goldfish, nematode, strawberry. The CPPN variant's (CPPN_CLASSES) come from the full screen on
SqueezeNet 1.1 (`--config.classes=screen`, seed 0): the 30 best classes of those draws, each
evolved for 20 generations, ranked by the probability reached. That is where the paper's
MAP-Elites, evolving for every class at once, succeeds first. Measured with
`:cppn --config.classes=screen` (200 generations): nine of the screen's ten at >= 99.6% on their
saved PNGs; sea lion stalled at 0.9950 from generation ~20 on, so CPPN_CLASSES replaces it with
the screen's eleventh, digital clock. Measured with the default `:cppn` (200 generations, 15 min
on 2 CPU cores): all ten >= 99.6% on their saved PNGs (lowest: snorkel 0.9977, scorpion 0.9995;
the other eight >= 0.9999); EfficientNet-Lite0 gives four of the ten the same top-1 (coil 0.95,
jellyfish 0.82, nematode 0.06, digital clock 0.05), mean probability 0.20.
The search std matters: at sigma 0.5 (the CPPN's own weight scale, every child a different
pattern) sep-CMA-ES stalled, at 0.2 it climbs (30 generations, velvet / matchstick / rock beauty
/ digital clock: 0.15 / 0.59 / 0.99 / 0.76 at 0.5 against 0.99 / 0.74 / 0.99 / 0.999 at 0.2).
"""
from configs import _adversarial, common

CLASSES = "946;126;107;149;90;749;971;1;111;949"       # screened on efficientnet_lite0
CPPN_CLASSES = "552;506;749;530;107;111;616;801;71;4"  # screened on squeezenet1_1 (see above)


def get_config(arg=None):
  common.check_arg(arg, "gradient", "cppn", "smoke")
  config = _adversarial.base("fooling_images", arg)
  for unused in ("images", "dataset", "split", "max_images", "train"):   # made from noise
    del config[unused]
  config.method = "cppn" if arg == "cppn" else "gradient"   # :smoke + method=cppn tests both
  config.classes = CLASSES        # indices or class names, separated by ";", or "screen"
  config.transfer_model = "squeezenet1_1"
  if arg == "cppn":
    config.model, config.transfer_model = "squeezenet1_1", "efficientnet_lite0"
    config.classes = CPPN_CLASSES
  config.batch_size = 10
  # gradient ascent
  config.steps = 100              # the reference code: 300 (with its own rate policy)
  config.lr = 0.02
  config.optimizer = "adam"       # any optax optimiser (see cnn_vis/techniques/fooling.py)
  config.init_std = 1 / 255       # the reference code's N(0, 1) on 0..255 pixels
  config.decay = (0.0,)           # 0.01: the regularised variant; a tuple runs each, one render
  config.chunk = 0                # settings per vmapped chunk (0: all at once)
  # CPPN + evolution strategy
  config.strategy = "sep_cma_es"  # sep_cma_es | cma_es | open_es (evosax)
  config.population = 16
  config.generations = 200
  config.es_std = 0.2             # initial search std (CMA-ES sigma; OpenAI-ES noise std)
  config.es_lr = 0.05             # OpenAI-ES's Adam rate
  config.cppn_hidden = (16, 16, 16)
  config.cppn_weight_std = 2.0    # initial weights' gain (patterns without saturated flats)
  config.cppn_scale = 8.0         # coordinate scale: the patterns' spatial frequency
  config.screen_count = 10        # classes=screen: how many classes to choose,
  config.screen_generations = 20  # after evolving the 30 best of random draws this long
  if arg == "smoke":
    config.classes = "0;1;cat"
    config.transfer_model = ""
    config.steps = 5
    config.generations = 3
    config.population = 4
    config.cppn_hidden = (4,)
  return config


def get_sweep():
  """Plain and regularised gradient ascent in one run, and the reverse transfer direction."""
  return [{"decay": (0.0, 0.01)},
          {"model": "squeezenet1_1", "transfer_model": "efficientnet_lite0"}]
