"""Learned filters as pictures (Krizhevsky et al. 2012, Fig. 3: the 96 11x11x3 conv1 kernels, "the
top 48 kernels were learned on GPU 1 while the bottom 48 kernels were learned on GPU 2";
docs/papers.md §1).

- `find_kernel(params, layer)`: a layer's convolution kernel (HWIO) in the parameter tree; a
  layer holding several (a fire module, an MBConv block) gives its largest spatial one, the kernel
  on its receptive-field path (cnn_vis.models.geometry), unless a path such as "fire2/expand1x1"
  names one.
- `filter_images`: first-layer kernels (k, k, 3, O) as O RGB images; deeper kernels (k, k, I, O)
  as O grey images of their mean over the I input channels (as such, they show where in the
  window a filter looks, not what it looks for).
- Contrast normalisation (`normalize`), per filter by default: each filter is stretched on its
  own, min -> 0 and max -> 1 over all its pixels and colours together (the colour balance within
  a filter is kept, its scale relative to others is not); "global" stretches all filters by the
  same min and max (relative magnitudes kept); "symmetric" maps each filter's 0 to grey and its
  largest |w| to black/white (signs kept).
- `group_blocks`: the filters split into `groups` consecutive blocks (AlexNet `groups=2`: the
  next layer, conv2, sees filters 0-47 on one GPU and 48-95 on the other), laid out one block
  above the other.
"""
import numpy as np

from cnn_vis.errors import UserError, check, choose

NORMALIZATIONS = ("per_filter", "global", "symmetric")


def _kernels(tree, prefix: str = "") -> dict[str, np.ndarray]:
  """{"path/to/kernel": 4-D array} of every convolution kernel below `tree`."""
  out = {}
  for key, value in tree.items():
    path = f"{prefix}{key}"
    if isinstance(value, dict) or hasattr(value, "items"):
      out.update(_kernels(value, f"{path}/"))
    elif key == "kernel" and np.ndim(value) == 4:
      out[path] = np.asarray(value)
  return out


def find_kernel(params, layer: str) -> tuple[str, np.ndarray]:
  """(path, kernel HWIO) of `layer` ("conv1", or a path like "fire2/expand3x3"): its largest
  spatial kernel when it holds several."""
  node = params
  for key in layer.split("/"):
    if not (hasattr(node, "items") and key in node):
      raise UserError(f"no parameters named {layer!r}; layers with conv kernels: "
                      f"{', '.join(sorted({p.split('/')[0] for p in _kernels(params)}))}")
    node = node[key]
  kernels = _kernels(node, f"{layer}/") if hasattr(node, "items") else {}
  check(bool(kernels), f"layer {layer!r} has no convolution kernel (a pooling, norm or fc "
                       "layer?); give a conv layer")
  largest = max(k.shape[0] * k.shape[1] for k in kernels.values())
  best = [p for p, k in kernels.items() if k.shape[0] * k.shape[1] == largest]
  check(len(best) == 1, f"layer {layer!r} has several {int(np.sqrt(largest))}x"
                        f"{int(np.sqrt(largest))} kernels; name one: {', '.join(best)}")
  return best[0].removesuffix("/kernel"), kernels[best[0]]


def filter_images(kernel, mean_over_inputs: bool | None = None, bgr: bool = False
                  ) -> np.ndarray:
  """(O, k, k, C) raw filter images of an HWIO kernel: RGB (C = 3) for a kernel over 3 input
  channels, else (or with mean_over_inputs) the mean over its inputs (C = 1). bgr: the net is
  fed BGR pixels (Caffe weights), so its input channels are reversed to show RGB."""
  kernel = np.asarray(kernel, np.float32)
  check(kernel.ndim == 4, f"expected an HWIO kernel, got shape {kernel.shape}")
  if mean_over_inputs is None:
    mean_over_inputs = kernel.shape[2] != 3
  if mean_over_inputs:
    kernel = kernel.mean(axis=2, keepdims=True)
  elif bgr:
    kernel = kernel[:, :, ::-1]
  return np.transpose(kernel, (3, 0, 1, 2))


def normalize(filters, how: str = "per_filter") -> np.ndarray:
  """Filters (O, k, k, C) mapped to [0, 1] for display (module docstring)."""
  choose("filter normalisation", how, NORMALIZATIONS)
  f = np.asarray(filters, np.float32)
  axes = tuple(range(1, f.ndim))
  if how == "symmetric":
    scale = np.abs(f).max(axis=axes, keepdims=True)
    return 0.5 + 0.5 * f / np.maximum(scale, 1e-12)
  if how == "global":
    lo, hi = f.min(), f.max()
  else:
    lo, hi = f.min(axis=axes, keepdims=True), f.max(axis=axes, keepdims=True)
  return (f - lo) / np.maximum(hi - lo, 1e-12)


def group_blocks(filters, groups: int) -> list[np.ndarray]:
  """The filters (O, ...) as `groups` consecutive blocks of O / groups (the two GPUs' halves)."""
  count = len(filters)
  check(isinstance(groups, int) and groups >= 1 and count % groups == 0,
        f"groups {groups!r} must be a positive integer dividing the {count} filters")
  size = count // groups
  return [np.asarray(filters[g * size:(g + 1) * size]) for g in range(groups)]


def upscale(images, factor: int) -> np.ndarray:
  """Nearest-neighbour upscaling of (N, h, w, C) images by an integer factor (tiny kernels)."""
  check(isinstance(factor, int) and factor >= 1, f"zoom must be an integer >= 1, got {factor!r}")
  return np.repeat(np.repeat(np.asarray(images), factor, axis=1), factor, axis=2)
