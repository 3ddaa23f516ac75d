"""Single image files in and out of the models' format (float32 HxWx3 RGB in [0, 1])."""
import sys
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnn_vis.errors import UserError, check

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Modes with an unambiguous RGB reading; anything else (e.g. 16-bit or float) is refused.
CONVERTIBLE_MODES = ("RGB", "L", "LA", "RGBA", "P", "PA", "CMYK", "YCbCr", "1")


def list_images(directory) -> list[Path]:
  """Image files directly in `directory`, sorted by name."""
  directory = Path(directory)
  check(directory.is_dir(), f"image directory {str(directory)!r} does not exist or is not a directory")
  files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
  check(bool(files), f"image directory {str(directory)!r} holds no images "
                     f"(allowed suffixes: {', '.join(IMAGE_SUFFIXES)})")
  return files


def load_image(path) -> np.ndarray:
  """Decodes an image file to float32 HxWx3 RGB in [0, 1].

  Grayscale, palette, CMYK and RGBA images are converted to RGB (alpha dropped) with a one-line
  warning on stderr; a missing, corrupt or unsupported file is a UserError.
  """
  path = Path(path)
  check(path.is_file(), f"image file {str(path)!r} does not exist")
  try:
    with Image.open(path) as image:
      image.load()
      mode = image.mode
      if mode not in CONVERTIBLE_MODES:
        raise UserError(f"image {path.name}: unsupported mode {mode}; allowed: "
                        f"{', '.join(CONVERTIBLE_MODES)}")
      if mode != "RGB":
        print(f"warning: image {path.name} has mode {mode}; converted to RGB", file=sys.stderr)
        image = image.convert("RGB")
      return np.asarray(image, np.float32) / 255.0
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    if isinstance(e, UserError):
      raise
    raise UserError(f"image {path.name}: cannot decode ({type(e).__name__}: {e})") from None


def resize_shorter_and_center_crop(image: np.ndarray, resize: int | None, crop: int) -> np.ndarray:
  """Reference ImageNet preprocessing: shorter side to `resize` (bilinear), centre crop `crop`.

  resize=None resizes the whole image to crop x crop instead.
  """
  height, width = image.shape[:2]
  pil = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
  if resize is None:
    return np.asarray(pil.resize((crop, crop), Image.BILINEAR), np.float32) / 255.0
  scale = resize / min(height, width)
  new_w, new_h = max(resize, round(width * scale)), max(resize, round(height * scale))
  pil = pil.resize((new_w, new_h), Image.BILINEAR)
  top, left = (new_h - crop) // 2, (new_w - crop) // 2
  check(top >= 0 and left >= 0, f"crop {crop} is larger than the resized image {new_h}x{new_w}")
  return np.asarray(pil.crop((left, top, left + crop, top + crop)), np.float32) / 255.0


def skimage_image(name: str) -> np.ndarray:
  """A natural photo shipped with scikit-image (chelsea, coffee, astronaut, rocket, ...) in [0,1]."""
  import skimage.data  # lazy: scikit-image takes ~1 s to import and only photos need it
  allowed = ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat", "hubble_deep_field",
             "immunohistochemistry", "motorcycle_left")
  if name not in allowed:
    raise UserError(f"unknown skimage image {name!r}; allowed: {', '.join(allowed)}")
  image = np.asarray(getattr(skimage.data, name)())
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  return image[..., :3].astype(np.float32) / 255.0


def model_input(source: str, size: int, resize: int | None) -> tuple[str, np.ndarray]:
  """(name, image at size x size) from `skimage:NAME` or an image file path."""
  if str(source).startswith("skimage:"):
    name = str(source).split(":", 1)[1]
    return name, resize_shorter_and_center_crop(skimage_image(name), resize, size)
  path = Path(source)
  return path.stem, resize_shorter_and_center_crop(load_image(path), resize, size)
