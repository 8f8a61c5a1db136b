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

from benchmark.core.errors import BenchmarkError
from benchmark.datamodules.builtin import BUILTIN_PHOTOS, BUILTIN_PREFIX
from benchmark.datamodules.classes import imagenet_classes, is_wnid
from benchmark.datamodules.ground_truth import (
    GROUND_TRUTH_NAME,
    check_ground_truth,
    find_ground_truth,
    read_loc_solution,
)

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
    #: Problems with the data that do not stop the run (shown on stderr, kept in results.json).
    notes: tuple[str, ...] = ()


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop
        return False


def _is_image_entry(entry: os.DirEntry) -> bool:
    """An image file, or an image name that cannot be opened (a broken link, a symlink loop):
    that one is kept so that loading names its problem instead of dropping it silently."""
    if not is_image_name(entry.name):
        return False
    try:
        return entry.is_file() or not entry.is_dir()
    except OSError:
        return True


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
        raise BenchmarkError(f"--data {data}: is a file, not a folder; pass the folder that holds the images")
    root = root.absolute()
    try:
        entries = sorted((e for e in os.scandir(root) if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise BenchmarkError(f"--data {data}: cannot be read ({exc.strerror or exc}); pass a readable folder") from None
    if not entries:
        raise BenchmarkError(f"--data {data}: folder is empty; pass a folder of ImageNet validation images")
    wnid_dirs = [e for e in entries if _is_dir(e) and is_wnid(e.name)]
    if wnid_dirs:
        return _imagefolder(root, data, wnid_dirs)
    files = [e for e in entries if _is_image_entry(e)]
    if not files:
        class_like = [e.name for e in entries if _is_dir(e) and _holds_images(e.path)]
        if class_like:
            shown = ", ".join(class_like[:5]) + (f" and {len(class_like) - 5} more" if len(class_like) > 5 else "")
            raise BenchmarkError(
                f"--data {data}: its subfolders ({shown}) are not named by ImageNet wnids, so their classes "
                "are unknown; rename them to wnids like n01440764 (see datamodules/imagenet_classes.tsv), or "
                "pass one subfolder as --data to evaluate its images unlabelled"
            )
        raise BenchmarkError(
            f"--data {data}: no image files in the folder (recognised: {', '.join(IMAGE_EXTENSIONS)}); "
            "pass a folder of images or of <wnid> subfolders"
        )
    return _flat(root, data, files, explicit_gt)


def _holds_images(folder: str) -> bool:
    try:
        return any(is_image_name(name) for name in os.listdir(folder))
    except OSError:
        return False


def _builtin() -> Found:
    images = [FoundImage(BUILTIN_PREFIX + name, -1, name) for name in sorted(BUILTIN_PHOTOS)]
    return Found("builtin", "scikit-image photos", "built-in photos", images)


def _imagefolder(root: Path, data: object, wnid_dirs: list[os.DirEntry]) -> Found:
    classes = imagenet_classes()
    images = []
    notes = []
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
            if path.is_file() or path.is_symlink():  # a broken link or loop is reported on loading
                images.append(FoundImage(str(path), label, f"{folder.name}/{name}"))
        if label < 0 and names:
            notes.append(f"{folder.name}: not an ImageNet-1k class; its {len(names)} image(s) are evaluated unlabelled")
    if not images:
        raise BenchmarkError(
            f"--data {data}: no image files in its <wnid> subfolders (recognised: {', '.join(IMAGE_EXTENSIONS)}); "
            "put the images into the class folders"
        )
    return Found("imagefolder", "ImageFolder <wnid>/* layout", root.name or str(root), images, tuple(notes))


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
        notes: list[str] = []
        solution = read_loc_solution(gt_path, problems=notes)
        images = []
        for entry, stem in zip(files, stems):
            wnid, boxes = solution.get(stem, ("", []))
            images.append(FoundImage(str(root / entry.name), _label(classes, wnid), entry.name, tuple(boxes) or None))
        missing = [entry.name for entry, stem in zip(files, stems) if stem not in solution]
        if missing:
            notes.append(
                f"{len(missing)} image(s) have no line in {gt_path.name} (first: {missing[0]}); "
                "they are evaluated unlabelled"
            )
        return Found(
            "ilsvrc-val", f"flat ILSVRC2012_val_{pattern} layout with {gt_path.name}", source, images, tuple(notes)
        )
    matches = [WNID_NAME.fullmatch(stem) for stem in stems]
    images = [
        FoundImage(str(root / e.name), _label(classes, m.group(1)) if m else -1, e.name) for e, m in zip(files, matches)
    ]
    if any(matches):
        outside = sorted({m.group(1) for m in matches if m and m.group(1) not in classes})
        notes = tuple(f"{wnid}: not an ImageNet-1k class; its images are evaluated unlabelled" for wnid in outside)
        return Found("wnid-prefix", f"flat <wnid>_{pattern} layout", source, images, notes)
    return Found("unlabelled", "folder of images", source, images)


def _label(classes, wnid: str) -> int:
    return classes.index_of(wnid) if wnid in classes else -1


def _pattern(names: list[str]) -> str:
    """``*.JPEG`` when all files share one extension, else ``*``."""
    extensions = {os.path.splitext(n)[1] for n in names}
    return f"*{extensions.pop()}" if len(extensions) == 1 else "*"
