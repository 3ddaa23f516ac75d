"""foolbox 3 (Rauber, Brendel & Bethge; foolbox.JAXModel) running the same attacks on the same
weights: the independent check of cnn_vis.techniques.adversarial and minimal_perturbation, and
the reference of benchmarks/adversarial.py. foolbox is an optional dependency (the `test`
extra), imported only here, when called.

The model handed to foolbox is the jitted forward pass; foolbox differentiates it itself. Its
attacks map onto ours: FGSM / FGM, Linf / L2 BasicIterativeAttack (BIM: no random start), Linf /
L2 PGD (random start), each with the same eps, number of steps and absolute step size, and
L2DeepFoolAttack (steps, candidates, overshoot, loss "logits").
"""
import jax
import jax.numpy as jnp
import numpy as np

from cnn_vis.techniques import adversarial as A
from cnn_vis.techniques import minimal_perturbation as M


def model(apply_fn, variables, bounds=A.PIXEL_BOUNDS):
  import foolbox  # lazy: optional dependency (pyproject's test extra)
  return foolbox.JAXModel(jax.jit(lambda x: apply_fn(variables, x)[0]), bounds=bounds)


def _attack(method: str, norm: str, steps: int, step_size: float, start=None):
  """The foolbox attack of one setting; `start` (N, ...) replaces PGD's random start."""
  import eagerpy  # lazy: optional dependency (foolbox's tensor layer)
  import foolbox.attacks as fa  # lazy: optional dependency (pyproject's test extra)
  if method == "fgsm":
    return fa.FGSM() if norm == "linf" else fa.FGM()
  cls = {("bim", "linf"): fa.LinfBasicIterativeAttack, ("bim", "l2"): fa.L2BasicIterativeAttack,
         ("pgd", "linf"): fa.LinfPGD, ("pgd", "l2"): fa.L2PGD}[method, norm]
  if start is not None:
    cls = type(f"{cls.__name__}FromStart", (cls,),
               {"get_random_start": lambda self, x0, epsilon: eagerpy.astensor(start)})
  return cls(abs_stepsize=float(step_size), steps=int(steps), random_start=method == "pgd")


def attack(apply_fn, variables, images, labels, method: str, eps: float, steps: int,
           step_size: float, spec: A.Attack, targets=None, start=None) -> np.ndarray:
  """foolbox's version of one setting of our attack: adversarial images (N, ...), clipped.
  PGD starts from foolbox's own random draw, or from `start` (N, ...) if given (then both sides
  take their steps from the same point)."""
  import foolbox  # lazy: optional dependency (pyproject's test extra)
  criterion = (foolbox.criteria.TargetedMisclassification(jnp.asarray(targets)) if spec.targeted
               else foolbox.criteria.Misclassification(jnp.asarray(labels)))
  _, clipped, _ = _attack(method, spec.norm, steps, step_size,
                          None if start is None else jnp.asarray(start))(
      model(apply_fn, variables, spec.bounds), jnp.asarray(images), criterion, epsilons=float(eps))
  return np.asarray(clipped)


def accuracies(apply_fn, variables, images, labels, method: str, eps, steps, step_size,
               spec: A.Attack, targets=None, batch_size: int = 32, starts=None) -> list[float]:
  """Top-1 accuracy against `labels` on foolbox's adversarial images rounded to 8 bits like ours,
  one value per setting; starts (S, N, ...): PGD's start of each setting (default: foolbox's)."""
  out = []
  part = lambda a, i: None if a is None else a[i:i + batch_size]
  for s, (e, n, size) in enumerate(zip(eps, steps, step_size)):
    start = None if starts is None else starts[s]
    adversarial = np.concatenate([
        attack(apply_fn, variables, images[i:i + batch_size], labels[i:i + batch_size], method,
               e, n, size, spec, part(targets, i), part(start, i))
        for i in range(0, len(images), batch_size)])
    rounded = A.quantize(adversarial, images, e, spec.norm)
    predicted = np.concatenate([np.asarray(M.predictions(apply_fn, variables,
                                                         rounded[i:i + batch_size])[0])
                                for i in range(0, len(images), batch_size)])
    out.append(float(np.mean(predicted == labels)))
  return out


def deepfool(apply_fn, variables, images, *, candidates: int = 10, overshoot: float = 0.02,
             max_iter: int = 50, bounds=A.PIXEL_BOUNDS) -> np.ndarray:
  """foolbox's L2 DeepFool perturbations (N, ...) away from the clean predictions."""
  import foolbox  # lazy: optional dependency (pyproject's test extra)
  x = jnp.asarray(images)
  clean = M.predictions(apply_fn, variables, x)[0]
  deepfool_attack = foolbox.attacks.L2DeepFoolAttack(steps=int(max_iter),
                                                     candidates=int(candidates),
                                                     overshoot=float(overshoot), loss="logits")
  adversarial, _, _ = deepfool_attack(model(apply_fn, variables, bounds), x,
                                      foolbox.criteria.Misclassification(clean), epsilons=None)
  return np.asarray(adversarial) - np.asarray(images)
