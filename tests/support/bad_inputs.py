"""A folder of bad and odd image files, made by the tests themselves.

Each file is named ``<wnid>_<what>.<ext>`` (a flat labelled layout). ``make_bad_folder`` returns,
per file name, the reason a run must give for skipping it, or ``None`` for an odd file that must
be converted and evaluated (alpha, CMYK, 16-bit, palette, grayscale).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

#: wnids of the first ImageNet classes, one per file, so every file has its own label.
WNIDS = [
    "n01440764",
    "n01443537",
    "n01484850",
    "n01491361",
    "n01494475",
    "n01496331",
    "n01498041",
    "n01514668",
    "n01514859",
    "n01518878",
    "n01530575",
    "n01531178",
    "n01532829",
]


def _photo(seed: int, size=(96, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x * 2.5, y * 3.0, (x + y) * 1.2], axis=-1) % 255
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_bad_folder(folder: Path) -> dict[str, str | None]:
    """Write the bad files into ``folder``; returns ``{file name: expected skip reason or None}``."""
    folder.mkdir(parents=True, exist_ok=True)
    names = iter(WNIDS)
    expected: dict[str, str | None] = {}

    def name(what: str, ext: str) -> str:
        return f"{next(names)}_{what}.{ext}"

    good = name("good", "JPEG")
    (folder / good).write_bytes(_jpeg_bytes(_photo(0)))
    expected[good] = None

    empty = name("empty", "JPEG")
    (folder / empty).write_bytes(b"")
    expected[empty] = "empty file"

    truncated = name("truncated", "JPEG")
    data = _jpeg_bytes(_photo(1))
    (folder / truncated).write_bytes(data[: len(data) // 3])
    expected[truncated] = "truncated or corrupt image"

    text = name("text", "JPEG")
    (folder / text).write_text("this is a text file, not a JPEG\n")
    expected[text] = "not an image file"

    alpha = name("alpha", "png")
    rgba = np.concatenate([_photo(2), np.full((80, 96, 1), 128, np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(folder / alpha)
    expected[alpha] = None

    cmyk = name("cmyk", "JPEG")
    Image.fromarray(_photo(3)).convert("CMYK").save(folder / cmyk, "JPEG")
    expected[cmyk] = None

    sixteen = name("sixteen", "png")
    Image.fromarray(_photo(4)[..., 0].astype(np.uint16) * 257).save(folder / sixteen)  # mode I;16
    expected[sixteen] = None

    palette = name("palette", "gif")
    Image.fromarray(_photo(5)).convert("P", palette=Image.ADAPTIVE, colors=32).save(folder / palette)
    expected[palette] = None

    tiny = name("tiny", "png")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / tiny)
    expected[tiny] = "image is 1x1 pixels, too small"

    gray = name("gray", "JPEG")
    Image.fromarray(_photo(6)[..., 1], "L").save(folder / gray, "JPEG")
    expected[gray] = None

    loop_a, loop_b = name("loop", "JPEG"), name("loop", "JPEG")
    os.symlink(folder / loop_b, folder / loop_a)
    os.symlink(folder / loop_a, folder / loop_b)
    expected[loop_a] = expected[loop_b] = "symlink loop"

    broken = name("broken-link", "JPEG")
    os.symlink(folder / "nowhere.JPEG", folder / broken)
    expected[broken] = "file not found"
    return expected


def write_huge_jpeg(path: Path, side: int = 10000) -> Path:
    """A ``side`` x ``side`` JPEG (100 megapixels for 10000), written in strips of one colour
    each so the test process never holds the whole array."""
    image = Image.new("RGB", (side, side))
    strip = side // 10
    for i in range(10):
        image.paste((25 * i, 255 - 25 * i, 120), (0, i * strip, side, (i + 1) * strip))
    image.save(path, "JPEG", quality=80)
    return path
