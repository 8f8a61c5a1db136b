"""Find the images in a data folder, recognise its ImageNet layout and label each file.

Recognised layouts (checked in this order):

* ``imagefolder``: ``DIR/<wnid>/*.JPEG`` -- subfolders named like wnids (``n`` + 8 digits);
  loose files next to them are not read.
* ``ilsvrc-val``: a flat folder of ``ILSVRC2012_val_*.JPEG`` labelled by ``LOC_val_solution.csv``
  (given explicitly, or found in DIR or its parents).
* ``wnid-prefix``: a flat folder of ``<wnid>_<anything>.<ext>``.
* ``unlabelled``: any other flat folder of images (label -1).

Files whose class cannot be told (a wnid outside ImageNet-1k, a val image missing from the CSV,
a name without a wnid) get label -1. Hidden files (``.*``) are skipped. Everything is sorted, so
nothing depends on the order the file system lists entries in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import BenchmarkError

from .builtin import BUILTIN_PHOTOS, BUILTIN_PREFIX
from .classes import imagenet_classes, is_wnid
from .ground_truth import GROUND_TRUTH_NAME, check_ground_truth, find_ground_truth, read_loc_solution

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
VAL_NAME = re.compile(r"ILSVRC2012_val_\d+")
WNID_NAME = re.compile(r"(n\d{8})(?:_.*)?")


@dataclass(frozen=True)
class FoundImage:
    """One image before selection: its file, label (-1 = unknown) and sort key (its name)."""

    file: str
    label: int
    key: str
    boxes: tuple[tuple[int, int, int, int], ...] | None = None  # from LOC_val_solution.csv


@dataclass(frozen=True)
class Found:
    """Everything a data source holds, with the layout it was recognised as."""

    layout: str
    layout_text: str
    source: str
    images: list[FoundImage]


def is_image_name(name: str) -> bool:
    """True for a file name with a recognised image extension (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def find_images(data: str | os.PathLike | None, ground_truth: str | os.PathLike | None = None) -> Found:
    """Scan ``data`` (``None`` = the built-in photos) and label every image in it.

    Raises :class:`BenchmarkError` for a missing path, a file, an empty folder, a folder without
    images, a missing ground-truth file, or ``ILSVRC2012_val_*`` images without ground truth.
    """
    explicit_gt = check_ground_truth(ground_truth) if ground_truth is not None else None
    if data is None:
        return _builtin()
    root = Path(data).expanduser()
    if not root.exists():
        raise BenchmarkError(f"--data {data}: folder does not exist; pass a folder of ImageNet validation images")
    if not root.is_dir():
        raise BenchmarkError(
            f"--data {data}: is a file, not a folder; pass the folder that holds the images"
        )
    root = root.absolute()
    try:
        entries = sorted((e for e in os.scandir(root) if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise BenchmarkError(f"--data {data}: cannot be read ({exc.strerror or exc}); pass a readable folder") from None
    if not entries:
        raise BenchmarkError(f"--data {data}: folder is empty; pass a folder of ImageNet validation images")
    wnid_dirs = [e for e in entries if e.is_dir() and is_wnid(e.name)]
    if wnid_dirs:
        return _imagefolder(root, data, wnid_dirs)
    files = [e for e in entries if e.is_file() and is_image_name(e.name)]
    if not files:
        raise BenchmarkError(
            f"--data {data}: no image files in the folder (recognised: {', '.join(IMAGE_EXTENSIONS)}); "
            "pass a folder of images or of <wnid> subfolders"
        )
    return _flat(root, data, files, explicit_gt)


def _builtin() -> Found:
    images = [FoundImage(BUILTIN_PREFIX + name, -1, name) for name in sorted(BUILTIN_PHOTOS)]
    return Found("builtin", "scikit-image photos", "built-in photos", images)


def _imagefolder(root: Path, data: object, wnid_dirs: list[os.DirEntry]) -> Found:
    classes = imagenet_classes()
    images = []
    for folder in wnid_dirs:
        label = classes.index_of(folder.name) if folder.name in classes else -1
        try:
            names = sorted(n for n in os.listdir(folder.path) if not n.startswith(".") and is_image_name(n))
        except OSError as exc:
            raise BenchmarkError(
                f"--data {data}: subfolder {folder.name} cannot be read ({exc.strerror or exc}); fix its permissions"
            ) from None
        for name in names:
            path = root / folder.name / name
            if path.is_file():
                images.append(FoundImage(str(path), label, f"{folder.name}/{name}"))
    if not images:
        raise BenchmarkError(
            f"--data {data}: no image files in its <wnid> subfolders (recognised: {', '.join(IMAGE_EXTENSIONS)}); "
            "put the images into the class folders"
        )
    return Found("imagefolder", "ImageFolder <wnid>/* layout", root.name or str(root), images)


def _flat(root: Path, data: object, files: list[os.DirEntry], explicit_gt: Path | None) -> Found:
    classes = imagenet_classes()
    stems = [os.path.splitext(e.name)[0] for e in files]
    source = root.name or str(root)
    pattern = _pattern([e.name for e in files])
    if any(VAL_NAME.fullmatch(stem) for stem in stems):
        gt_path = explicit_gt or find_ground_truth(root)
        if gt_path is None:
            raise BenchmarkError(
                f"--data {data}: ILSVRC2012_val_* images need {GROUND_TRUTH_NAME} for their classes; "
                "pass --ground-truth FILE or put the file in the folder"
            )
        solution = read_loc_solution(gt_path)
        images = []
        for entry, stem in zip(files, stems):
            wnid, boxes = solution.get(stem, ("", []))
            images.append(
                FoundImage(str(root / entry.name), _label(classes, wnid), entry.name, tuple(boxes) or None)
            )
        return Found("ilsvrc-val", f"flat ILSVRC2012_val_{pattern} layout with {gt_path.name}", source, images)
    matches = [WNID_NAME.fullmatch(stem) for stem in stems]
    images = [
        FoundImage(str(root / e.name), _label(classes, m.group(1)) if m else -1, e.name)
        for e, m in zip(files, matches)
    ]
    if any(matches):
        return Found("wnid-prefix", f"flat <wnid>_{pattern} layout", source, images)
    return Found("unlabelled", "folder of images", source, images)


def _label(classes, wnid: str) -> int:
    return classes.index_of(wnid) if wnid in classes else -1


def _pattern(names: list[str]) -> str:
    """``*.JPEG`` when all files share one extension, else ``*``."""
    extensions = {os.path.splitext(n)[1] for n in names}
    return f"*{extensions.pop()}" if len(extensions) == 1 else "*"
