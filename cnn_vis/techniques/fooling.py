"""High-confidence fooling images (Nguyen, Yosinski & Clune 2015; docs/papers.md §8): images
no human would recognise that a network labels with >= 99.6% certainty (their Fig. 1).

- `gradient_ascent` (the paper's gradient-ascent images, Figs. 13 and S3-S7; reference code
  Evolving-AI-Lab/fooling: caffe/ascent/find_fooling_image.py): from the mean image plus N(0, 1)
  noise in 0..255 units (std 1/255 here), ascend the softmax output of one class per setting,
  pixels clipped to the valid range after every step; `decay` > 0 is the regularised variant
  (x - mean *= 1 - decay after each step; the reference code's default decay is 0.01). We
  ascend log p rather than p (the same maximiser; its gradient does not vanish as p -> 1) with
  Adam: the reference's `progress` rate policy sets its target progress from the current p
  (min(0.03, 0.1 (1 - p))), which the optimisation core's optimisers do not see; `progress` with
  a fixed target is available as optimizer="progress". All classes (x decay values) are one
  vmapped `optimize.render`.
- `evolve` (the paper's evolutionary images): a compositional pattern-producing network (CPPN;
  Stanley 2007) maps each pixel's (x, y, r) to RGB, and an evolution strategy from evosax
  (CMA-ES, separable CMA-ES or OpenAI-ES) evolves its weights with fitness = the class's
  probability (minimising -log p, the same ranking). The paper evolves CPPN topologies with NEAT
  inside MAP-Elites over all 1,000 classes (population 400, 5,001 generations); here the topology
  is fixed (hidden layers whose units cycle through sin, Gaussian, tanh and identity, the
  periodic and symmetric functions that give CPPN images their regular patterns) and one ES runs
  per class. The whole run, every class and every generation, is ONE compiled call: vmap over the
  classes of a lax.scan over the generations (the CPPN is tiny and the network only runs
  forward, so XLA:CPU's slow convolutions inside loops, which hit backward passes, matter little).
"""
import functools
from typing import NamedTuple, Sequence

import evosax.algorithms as evosax_algorithms
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnn_vis.errors import check, choose, whole_number
from cnn_vis.techniques import class_model, optimize
from cnn_vis.techniques.objectives import ClassLogProbability

# Nguyen et al.'s Fig. 1 threshold.
CONFIDENCE = 0.996
# Gradient ascent: the reference code starts at the mean plus N(0, 1) on 0..255 pixels.
DEFAULTS = dict(steps=100, lr=0.02, optimizer="adam", init_std=1 / 255)

OBJECTIVE = ClassLogProbability()


def gradient_ascent(apply_fn, variables, classes, *, size: int, center, key, decay=0.0,
                    steps: int = DEFAULTS["steps"], lr=DEFAULTS["lr"],
                    optimizer: str = DEFAULTS["optimizer"], init_std: float = DEFAULTS["init_std"],
                    max_lr=None, desired_prog=None, chunk: int | None = None,
                    loop: str = "auto") -> optimize.Result:
  """One fooling image per entry of `classes` (S,), all vmapped in one render.

  decay, lr (and, for optimizer="progress", max_lr and desired_prog): one value or (S,) each.
  center: the model's mean pixel (3,). Result.images (S, 1, size, size, 3).
  """
  classes = class_model.check_classes(apply_fn, variables, classes, size)
  check(init_std >= 0, f"init_std must be >= 0, got {init_std}")
  extra = {}
  if optimizer == "progress":
    check(max_lr is not None and desired_prog is not None,
          "optimizer progress needs max_lr and desired_prog")
    extra = dict(max_lr=max_lr, desired_prog=desired_prog)
  decay_values = np.broadcast_to(np.asarray(decay, np.float32), classes.shape)
  check(bool(np.all((decay_values >= 0) & (decay_values < 1))),
        f"decay must be in [0, 1), got {sorted(set(decay_values.tolist()))}")
  settings = optimize.stack_settings(len(classes), class_index=classes.astype(np.int32),
                                     decay=decay_values, lr=lr, center=center, **extra)
  recipe = optimize.Recipe(size, size, phases=((int(steps), 1.0),),
                           param=optimize.Param(init_std=float(init_std)),
                           projections=(optimize.Decay(), optimize.Clip()),
                           optimizer=optimize.Optimizer(optimizer))
  return optimize.render(apply_fn, variables, OBJECTIVE, settings, key, recipe, chunk=chunk,
                         loop=loop)


# ---------------------------------------------------------------------------------------------
# CPPN + evolution strategy
# ---------------------------------------------------------------------------------------------

ACTIVATIONS = (jnp.sin, lambda h: jnp.exp(-h * h), jnp.tanh, lambda h: h)


class CPPN(nn.Module):
  """pixels' (x, y, r) (P, 3) -> RGB (P, 3) in (0, 1); hidden unit j applies ACTIVATIONS[j % 4].

  scale: the coordinates are multiplied by it (the spatial frequency of the patterns);
  weight_std: the gain of the initial weights, N(0, weight_std^2 / fan_in), so every layer's
  pre-activations are of order weight_std * scale at the start (not saturating the output).
  """
  hidden: Sequence[int] = (16, 16, 16)
  weight_std: float = 2.0
  scale: float = 8.0

  @nn.compact
  def __call__(self, coords):
    h = coords * self.scale
    kernel = nn.initializers.variance_scaling(self.weight_std ** 2, "fan_in", "normal")
    bias = nn.initializers.normal(self.weight_std)
    for width in self.hidden:
      h = nn.Dense(width, kernel_init=kernel, bias_init=bias)(h)
      kinds = jnp.arange(width) % len(ACTIVATIONS)
      h = sum(jnp.where(kinds == k, f(h), 0.0) for k, f in enumerate(ACTIVATIONS))
    return nn.sigmoid(nn.Dense(3, kernel_init=kernel, bias_init=bias)(h))


def coordinates(size: int) -> jnp.ndarray:
  """(size * size, 3): x, y in [-1, 1] (row-major pixels) and r = sqrt(x^2 + y^2)."""
  axis = jnp.linspace(-1.0, 1.0, size)
  y, x = jnp.meshgrid(axis, axis, indexing="ij")
  return jnp.stack([x, y, jnp.sqrt(x * x + y * y)], axis=-1).reshape(-1, 3)


def cppn_image(cppn: CPPN, params, size: int):
  """The (size, size, 3) image of one CPPN's parameters."""
  return cppn.apply({"params": params}, coordinates(size)).reshape(size, size, 3)


@functools.partial(jax.jit, static_argnames=("apply_fn", "cppn", "size", "samples"))
def _random_cppn_log_probs(apply_fn, variables, key, *, cppn, size, samples):
  """(samples, classes) log-probabilities of random CPPN images (the ES's starting points)."""
  def one(k):
    image = cppn_image(cppn, cppn.init(k, coordinates(2))["params"], size)
    return jax.nn.log_softmax(apply_fn(variables, image[None])[0][0].astype(jnp.float32))
  return jax.lax.map(one, jax.random.split(key, samples), batch_size=16)


def screen_classes(apply_fn, variables, *, size: int, key, count: int = 10, samples: int = 256,
                   pool: int = 30, generations: int = 20, hidden: Sequence[int] = (16, 16, 16),
                   weight_std: float = 2.0, scale: float = 8.0, **strategy) -> np.ndarray:
  """The `count` classes on which evolution gets furthest soonest, best first.

  Two stages: the best of `samples` random CPPN images (the ES's starting distribution) ranks
  every class; then the first `pool` of them evolve for `generations` (`strategy`: evolve's
  strategy, population, std, lr) and are ranked by the best probability reached. Evolving for
  all 1,000 classes at once, the paper's MAP-Elites finds its confident classes the same way.
  generations=0 keeps the first stage's ranking alone.
  """
  count = whole_number("screen count", count)
  samples = whole_number("screen samples", samples)
  pool = whole_number("screen pool", pool)
  generations = whole_number("screen generations", generations, least=0)
  cppn = CPPN(tuple(hidden), float(weight_std), float(scale))
  log_p = _random_cppn_log_probs(apply_fn, variables, key, size=int(size), samples=samples,
                                 cppn=cppn)
  ranked = np.argsort(-np.asarray(log_p).max(axis=0)).astype(np.int32)
  if generations == 0:
    return ranked[:count]
  candidates = ranked[:max(pool, count)]
  evolution = evolve(apply_fn, variables, candidates, size=size, key=jax.random.fold_in(key, 1),
                     generations=generations, hidden=hidden, weight_std=weight_std,
                     scale=scale, **strategy)
  reached = np.asarray(evolution.best_log_prob[:, -1])
  return candidates[np.argsort(-reached, kind="stable")[:count]]


STRATEGIES = ("cma_es", "sep_cma_es", "open_es")


def make_strategy(name: str, population: int, solution, std, lr):
  """(an evosax strategy by name for solutions shaped like `solution`, its params): CMA-ES's
  initial sigma, or OpenAI-ES's constant noise std and Adam rate."""
  if name == "open_es":
    es = evosax_algorithms.Open_ES(population, solution, optimizer=optax.adam(lr),
                                   std_schedule=optax.constant_schedule(std))
    return es, es.default_params
  cls = {"cma_es": evosax_algorithms.CMA_ES, "sep_cma_es": evosax_algorithms.Sep_CMA_ES}[name]
  es = cls(population, solution)
  return es, es.default_params.replace(std_init=std)


class Evolution(NamedTuple):
  images: jax.Array        # (C, size, size, 3) the best CPPN's image per class
  params: dict             # the best CPPN parameters per class (leading axis C)
  best_log_prob: jax.Array  # (C, generations) best log p of the class so far, per generation


def _evolve_one(apply_fn, variables, cppn, strategy, population, generations, size, search,
                class_index, key):
  """One class's ES run: (best image, best CPPN parameters, best log p per generation)."""
  init_key, es_key, run_key = jax.random.split(key, 3)
  start = cppn.init(init_key, coordinates(2))["params"]
  es, params = make_strategy(strategy, population, start, search["std"], search["lr"])
  state = es.init(es_key, start, params)

  def fitness(population_params):
    images = jax.vmap(lambda p: cppn_image(cppn, p, size))(population_params)
    log_p = jax.nn.log_softmax(apply_fn(variables, images)[0].astype(jnp.float32))
    return -log_p[:, class_index]

  def generation(state, key):
    ask_key, tell_key = jax.random.split(key)
    candidates, state = es.ask(ask_key, state, params)
    state, _ = es.tell(tell_key, candidates, fitness(candidates), state, params)
    return state, -state.best_fitness

  state, history = jax.lax.scan(generation, state, jax.random.split(run_key, generations))
  best = es._unravel_solution(state.best_solution)  # evosax keeps solutions flat
  return cppn_image(cppn, best, size), best, history


@functools.partial(jax.jit, static_argnames=("apply_fn", "cppn", "strategy", "population",
                                             "generations", "size"))
def evolve_jit(apply_fn, variables, classes, keys, search, *, cppn, strategy, population,
               generations, size):
  """Every class's whole evolution in ONE compiled call (vmap over classes of a lax.scan)."""
  one = functools.partial(_evolve_one, apply_fn, variables, cppn, strategy, population,
                          generations, size, search)
  return Evolution(*jax.vmap(one)(classes, keys))


def check_evolution(strategy: str, population, generations, std, lr, hidden) -> tuple:
  """One-line UserErrors for bad evolution settings; returns hidden as a tuple of ints."""
  choose("evolution strategy", strategy, STRATEGIES)
  whole_number("population", population)
  whole_number("generations", generations)
  check(strategy != "open_es" or int(population) % 2 == 0,
        f"open_es needs an even population (antithetic pairs), got {population}")
  check(std > 0 and lr > 0, f"std and lr must be > 0, got {std} and {lr}")
  hidden = tuple(int(h) for h in hidden)
  check(len(hidden) > 0 and min(hidden) >= 1, f"hidden must be layer widths >= 1, got {hidden}")
  return hidden


def evolve(apply_fn, variables, classes, *, size: int, key, strategy: str = "cma_es",
           population: int = 16, generations: int = 100, std: float = 0.2, lr: float = 0.05,
           hidden: Sequence[int] = (16, 16, 16), weight_std: float = 2.0,
           scale: float = 8.0) -> Evolution:
  """One evolved CPPN image per class of `classes` (C,), maximising the class's probability.

  std: the ES's initial search std (CMA-ES's sigma; OpenAI-ES's constant noise std);
  lr: OpenAI-ES's Adam rate. Strategies: cma_es, sep_cma_es, open_es.
  """
  classes = class_model.check_classes(apply_fn, variables, classes, size)
  hidden = check_evolution(strategy, population, generations, std, lr, hidden)
  keys = jax.random.split(key, len(classes))
  return evolve_jit(apply_fn, variables, jnp.asarray(classes, jnp.int32), keys,
                    {"std": jnp.float32(std), "lr": jnp.float32(lr)},
                    cppn=CPPN(hidden, float(weight_std), float(scale)), strategy=strategy,
                    population=int(population), generations=int(generations), size=int(size))
