"""Reading one image as RGB, and the pixel-space transform (resize 256, centre crop 224).

No mean/std normalisation happens here: each model normalises its own input, so every
perturbation stays in [0,1] pixel space.
"""

from __future__ import annotations

import errno
import os
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2

from benchmark.datamodules.builtin import builtin_photo, is_builtin

SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
#: Smallest side of an image worth explaining: anything smaller is mostly made up by the resize.
MIN_SIDE = 8


class ImageLoadError(Exception):
    """An image could not be read; the message is a short reason such as ``"empty file"``."""


def load_rgb(file: str, min_size: int | None = 256) -> Image.Image:
    """Open ``file`` (or ``skimage:<name>``) as an 8-bit RGB PIL image.

    Grayscale, CMYK, palette, 16-bit and alpha images are converted (alpha is dropped). JPEGs
    are decoded at a reduced scale when both sides stay at least ``min_size`` (``None`` = full
    size). Any failure raises :class:`ImageLoadError` with a short reason.
    """
    if is_builtin(file):
        try:
            return _to_rgb(Image.fromarray(builtin_photo(file)))
        except KeyError:
            raise ImageLoadError("unknown built-in photo") from None
    try:
        if os.path.getsize(file) == 0:
            raise ImageLoadError("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's palette-transparency warning
            with Image.open(file) as image:
                if min(image.size) < MIN_SIDE:
                    width, height = image.size
                    raise ImageLoadError(
                        f"image is {width}x{height} pixels, too small (at least {MIN_SIDE}x{MIN_SIDE})"
                    )
                if image.format == "JPEG" and min_size is not None:
                    image.draft("RGB", (min_size, min_size))
                image.load()
                return _to_rgb(image)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except IsADirectoryError:
        raise ImageLoadError("is a folder, not a file") from None
    except PermissionError:
        raise ImageLoadError("permission denied") from None
    except UnidentifiedImageError:
        raise ImageLoadError("not an image file") from None
    except Image.DecompressionBombError:
        raise ImageLoadError("image too large (decompression bomb check)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageLoadError("symlink loop (the link points back to itself)") from None
        raise ImageLoadError("truncated or corrupt image") from None
    except (SyntaxError, ValueError, EOFError):
        raise ImageLoadError("truncated or corrupt image") from None
    except Exception as exc:  # a decoder bug must not crash a data-loader worker
        raise ImageLoadError(f"cannot decode image ({type(exc).__name__})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; 16-bit grey is scaled, not clipped; alpha is dropped."""
    if image.mode == "RGB":
        return image.copy()  # detached from the (soon closed) file
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(image, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        if grey.size and np.nanmax(grey) <= 1.0:
            grey = grey * 255.0
        return Image.fromarray(np.clip(np.nan_to_num(np.rint(grey)), 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    return image.convert("RGB")


def make_transform(resize: int = 256, crop: int = 224) -> v2.Compose:
    """PIL RGB -> FloatTensor[3, crop, crop] in [0,1]: shorter side to ``resize`` (antialiased),
    centre crop ``crop``; no normalisation."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(resize, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
            v2.CenterCrop(crop),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
