"""The built-in default images: scikit-image's bundled photos (no download needed).

They carry no ImageNet label (label -1). Samples refer to them as ``skimage:<name>``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BUILTIN_PREFIX = "skimage:"


def _loaders() -> dict[str, Callable[[], np.ndarray]]:
    import skimage.data as data

    return {
        "astronaut": data.astronaut,
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "rocket": data.rocket,
        "camera": data.camera,
        "clock": data.clock,
        "coins": data.coins,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
    }


BUILTIN_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "clock",
    "coins",
    "motorcycle",
)


def is_builtin(file: str) -> bool:
    """True when ``file`` names a built-in photo (``skimage:<name>``)."""
    return file.startswith(BUILTIN_PREFIX)


def builtin_photo(file: str) -> np.ndarray:
    """The pixels of ``skimage:<name>`` as a uint8 array (H, W) or (H, W, 3); ``KeyError`` if unknown."""
    name = file[len(BUILTIN_PREFIX) :] if is_builtin(file) else file
    if name not in BUILTIN_PHOTOS:
        raise KeyError(name)
    return np.asarray(_loaders()[name]())
