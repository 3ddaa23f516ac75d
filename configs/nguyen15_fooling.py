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
Each variant's ten classes are those whose probability random CPPN images (the evolution's
starting distribution) already raise most on its model (cnn_vis.techniques.fooling.
screen_classes, 256 draws, seed 0): on EfficientNet-Lite0 cardoon, isopod, jellyfish, dugong,
lorikeet, quill, bubble, goldfish, nematode, strawberry; on SqueezeNet 1.1 digital clock, rock
beauty, velvet, quill, feather boa, nematode, jellyfish, matchstick, goldfish, torch. That is
where the paper's MAP-Elites, evolving for every class at once, succeeds first;
`--config.classes=screen` screens again (for another model). On EfficientNet-Lite0 sep-CMA-ES
moved slowly (after 30 generations the best of cardoon, isopod, jellyfish, dugong: 0.82, 0.24,
0.85, 0.53; on SqueezeNet its first four: 0.89, 0.99, 0.22, 0.9996). Measured with
`:cppn --config.generations=150`: all ten top-1 on their saved PNGs, six >= 99.6% (rock beauty,
quill, feather boa, nematode, jellyfish, torch), digital clock 0.95, velvet 0.26, matchstick
0.95, goldfish 0.99; EfficientNet-Lite0 gives five of the ten the same top-1.
"""
from configs import _adversarial, common

CLASSES = "946;126;107;149;90;749;971;1;111;949"       # screened on efficientnet_lite0
CPPN_CLASSES = "530;392;885;749;552;111;107;644;1;862"  # screened on squeezenet1_1


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
  config.es_std = 0.5             # initial search std (CMA-ES sigma; OpenAI-ES noise std)
  config.es_lr = 0.05             # OpenAI-ES's Adam rate
  config.cppn_hidden = (16, 16, 16)
  config.cppn_weight_std = 2.0    # initial weights' gain (patterns without saturated flats)
  config.cppn_scale = 8.0         # coordinate scale: the patterns' spatial frequency
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
