"""Understanding deep image representations by inverting them (Mahendran & Vedaldi 2015, §2-3).

    x* = argmin_x ||Phi(x) - Phi0||^2 / ||Phi0||^2 + lambda_alpha R_alpha(x) + lambda_V R_V^beta(x)

with R_alpha = sum |x|^alpha and R_V^beta = sum ((dx)^2 + (dy)^2)^(beta/2) on the mean-subtracted
image. Constants follow the reference code (docs/papers.md §6; aravindhm/deep-goggle
`experiments/experiment_cnn.m`, `core/invert_nn.m`), which scales the regularisers by 1 / x0_sigma^2
(x0_sigma: the typical norm of a mean-subtracted image) and takes each step with
x_momentum = 0.9 x_momentum - lr x0_sigma^2 grad(E), momentum reset when the rate changes:
- alpha 6, lambda_alpha 8e-10; TV beta 2, lambda_TV 1 / 10 / 100 for layers 1-6, 7-12, 13-20
  of caffe-ref AlexNet (here: by relative depth, 30% / 60% / 100% of the named layers);
- lr 0.004 x [1 for 100, 0.1 for 200, 0.01 for 100 iterations], momentum 0.9;
- start: Gaussian noise of norm x0_sigma.
Conversion to our [0, 1] pixel space (x01 = x255 / 255): the TV^2 term over x0_sigma^2 and the
step lr x0_sigma^2 grad are unit-free, so they carry over unchanged; sum x^6 / x0_sigma^2 scales as
255^4, so lambda_alpha becomes 8e-10 * 255^4 = 3.4 in [0, 1] units. The paper's x0_sigma comes
from a file (`x0_sigma.mat`) we cannot read; ours is measured the same way, as the RMS of
(x - ImageNet mean) over ../shared/data/imagenet-samples (100 images at 224 px): 0.26 per pixel
entry, so x0_sigma = 0.26 sqrt(H W 3). The paper's own lambda/B normalisation formulas were not
found (docs/papers.md §6).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis.errors import check, choose
from cnn_vis.techniques import optimize
from cnn_vis.techniques.objectives import AlphaNorm, FeatureDistance, Setting, TotalVariation

X0_SIGMA_PER_PIXEL = 0.26          # measured RMS of mean-subtracted [0, 1] pixels (see above)
ALPHA = 6.0                         # experiment_cnn.m: opts.beta = 6
LAMBDA_ALPHA_255 = 8e-10            # experiment_cnn.m: opts.lambdaL2
TV_BETA = 2.0                       # experiment_cnn.m: opts{1,2,3}.TVbeta = 2
LAMBDA_TV_BY_THIRD = (1.0, 10.0, 100.0)   # experiment_cnn.m: opts1/2/3 for layers 1-6/7-12/13-20
LR = 0.004                          # experiment_cnn.m: opts.learningRate = 0.004 * [...]
PHASES = ((100, 1.0), (200, 0.1), (100, 0.01))
MOMENTUM = 0.9                      # invert_nn.m: opts.momentum


def x0_sigma(height: int, width: int) -> float:
  return X0_SIGMA_PER_PIXEL * float(np.sqrt(height * width * 3))


def lambda_tv(layer: str, layer_names) -> float:
  """The reference code's lambda_TV by relative depth: 1 for the first 30% of the layers (layers
  1-6 of 20), 10 up to 60% (7-12), 100 beyond (13-20). layer_names: the model's layers in
  FORWARD order (ModelFn.layer_names), first layer first."""
  names = list(layer_names)
  choose("layer", layer, names)
  position = (names.index(layer) + 1) / len(names)
  return LAMBDA_TV_BY_THIRD[0 if position <= 0.3 else 1 if position <= 0.6 else 2]


def paper_weights(tv, lambda_alpha_255=LAMBDA_ALPHA_255):
  """(alpha_norm weight, tv weight) in [0, 1] units of the loss x0_sigma^2 E, where the reference
  energy is E = rec + (lambda_TV/2 TV + lambda_alpha/2 sum x^alpha) / x0_sigma^2."""
  return np.asarray(lambda_alpha_255, np.float32) * 255.0 ** 4 / 2, np.asarray(tv, np.float32) / 2


def objective(layer: str):
  """-(||Phi(x) - Phi0||^2 / norm + lambda_alpha R_alpha + lambda_TV R_TV^beta), the weights and
  exponents per setting (see `invert`)."""
  return -(FeatureDistance(layer) + Setting("alpha_norm") * AlphaNorm(Setting("alpha"))
           + Setting("tv") * TotalVariation(Setting("tv_beta")))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _features(apply_fn, variables, images, layer: str):
  return apply_fn(variables, images)[1][layer]


def features(apply_fn, variables, images, layer: str):
  """Phi(x) at `layer` for a batch (N, ...), with a one-line error for an unknown layer."""
  _, acts = jax.eval_shape(apply_fn, variables, jax.ShapeDtypeStruct(images.shape, jnp.float32))
  choose("layer", layer, acts)
  return _features(apply_fn, variables, jnp.asarray(images, jnp.float32), layer)


def normalized_error(apply_fn, variables, images, targets, layer: str):
  """||Phi(x) - Phi0||^2 / ||Phi0||^2 per image (N,)."""
  phi = features(apply_fn, variables, images, layer)
  axes = tuple(range(1, phi.ndim))
  return jnp.sum((phi - targets) ** 2, axis=axes) / jnp.sum(targets ** 2, axis=axes)


def invert(apply_fn, variables, images, layer: str, *, center, key, tv, alpha_norm=None,
           alpha: float = ALPHA, tv_beta: float = TV_BETA, lr: float = LR, phases=PHASES,
           optimizer: str = "sgd", optimizer_kwargs=(("momentum", MOMENTUM),),
           transforms=(), init_scale: float = 1.0, chunk: int | None = None, loop: str = "auto"):
  """Reconstructs each image (N, H, W, 3) from its own features at `layer`, all vmapped.

  tv: lambda_TV of the reference code (scalar or (N,)); alpha_norm: lambda_alpha in 0..255 units
  (default 8e-10); both are converted with `paper_weights`. The loss minimised is x0_sigma^2 E
  (E the reference energy), so that SGD with momentum at the reference rate lr takes the
  reference step x_momentum = 0.9 x_momentum - lr x0_sigma^2 grad E, and scale-free optimisers
  (adam) see the same problem. Result.terms[f"feature distance {layer}"] is minus x0_sigma^2 *
  the reconstruction error. Returns (Result, targets); Result.images (N, 1, H, W, 3).
  """
  images = optimize.check_image(images, "image to invert")
  check(images.ndim == 4, f"images must be NxHxWx3, got {images.shape}")
  n, height, width, _ = images.shape
  targets = features(apply_fn, variables, jnp.asarray(images), layer)
  target_sq = jnp.sum(targets.reshape(n, -1) ** 2, axis=1)
  check(bool(np.all(np.asarray(target_sq) > 0)),
        f"layer {layer} is all zero for some image; nothing to invert")
  alpha_weight, tv_weight = paper_weights(
      tv, LAMBDA_ALPHA_255 if alpha_norm is None else alpha_norm)
  sigma = x0_sigma(height, width)
  # deep-goggle's start: randn scaled to norm x0_sigma (times init_scale), around the mean.
  noise = jax.random.normal(jax.random.fold_in(key, 1), images.shape)
  noise = noise / jnp.linalg.norm(noise.reshape(n, -1), axis=1)[:, None, None, None]
  noise = noise * sigma * init_scale
  settings = optimize.stack_settings(
      n, target=targets, target_sq=target_sq / sigma ** 2, center=center, lr=lr,
      alpha_norm=alpha_weight, alpha=alpha, tv=tv_weight, tv_beta=tv_beta,
      init=jnp.asarray(center, jnp.float32) + noise)
  recipe = optimize.Recipe(height, width, phases=phases,
                           optimizer=optimize.Optimizer(optimizer, tuple(optimizer_kwargs)),
                           transforms=transforms)
  result = optimize.render(apply_fn, variables, objective(layer), settings, key, recipe,
                           chunk=chunk, loop=loop)
  return result, targets
