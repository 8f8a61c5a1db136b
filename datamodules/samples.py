"""Which images a run evaluates: discovery (see :mod:`.layouts`) followed by selection.

Selection keeps, within each class, the first ``per_class`` files by name; optionally only the
given ``classes``; then the first ``limit`` images. Labelled images come first, ordered by
(class index, file name), unlabelled ones last in name order. ``sample_id`` is the position in
the final list. Nothing here needs torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby

from benchmark.core.errors import BenchmarkError
from benchmark.datamodules.classes import imagenet_classes
from benchmark.datamodules.ground_truth import read_loc_solution
from benchmark.datamodules.layouts import IMAGE_EXTENSIONS, Found, FoundImage, find_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "Discovery",
    "Sample",
    "discover",
    "discover_samples",
    "parse_classes",
    "read_loc_solution",
]


@dataclass(frozen=True)
class Sample:
    """One image to evaluate. ``label == -1`` means unknown; ``file`` is an absolute path or
    ``skimage:<name>`` for a built-in photo; ``boxes`` = its bounding boxes (inclusive pixel
    indices ``x1, y1, x2, y2`` of the original image) where known, else ``None``."""

    sample_id: int
    file: str
    label: int
    boxes: tuple[tuple[int, int, int, int], ...] | None = None


@dataclass(frozen=True)
class Discovery:
    """The selected samples together with where they came from."""

    layout: str
    layout_text: str
    source: str
    samples: list[Sample]
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line, e.g. ``imagenet-sample: 200 images, flat <wnid>_*.JPEG layout, labelled``."""
        labelled = sum(s.label >= 0 for s in self.samples)
        total = len(self.samples)
        if labelled == total:
            labels = "labelled"
        elif labelled == 0:
            labels = "unlabelled"
        else:
            labels = f"{labelled} labelled, {total - labelled} unlabelled"
        noun = "image" if total == 1 else "images"
        return f"{self.source}: {total} {noun}, {self.layout_text}, {labels}"


def discover_samples(
    data: str | None,
    per_class: int | None = 1,
    limit: int | None = None,
    classes: list[str] | None = None,
    ground_truth: str | None = None,
) -> list[Sample]:
    """The samples of ``data`` (``None`` = built-in photos) after selection; see :func:`discover`."""
    return discover(data, per_class, limit, classes, ground_truth).samples


def discover(
    data: str | os.PathLike | None,
    per_class: int | None = 1,
    limit: int | None = None,
    classes: Iterable[str | int] | str | None = None,
    ground_truth: str | os.PathLike | None = None,
) -> Discovery:
    """Find, label and select the images of ``data``; every user error is a :class:`BenchmarkError`."""
    _check_count("--per-class", per_class, "or null for every image of a class")
    _check_count("--limit", limit, "or null for no limit")
    wanted = parse_classes(classes)
    found = find_images(data, ground_truth)
    chosen = _select(found, per_class, limit, wanted, classes)
    samples = [Sample(i, image.file, image.label, image.boxes) for i, image in enumerate(chosen)]
    return Discovery(found.layout, found.layout_text, found.source, samples, found.notes)


def parse_classes(classes: Iterable[str | int] | str | None) -> set[int] | None:
    """Class indices for a list of wnids / index strings (a comma-separated string also works).

    ``None`` or an empty list means no restriction. Unknown entries raise :class:`BenchmarkError`
    naming all of them.
    """
    if classes is None:
        return None
    if isinstance(classes, str):
        classes = classes.replace(",", " ").split()
    table = imagenet_classes()
    wanted: set[int] = set()
    bad: list[str] = []
    for entry in classes:
        text = str(entry).strip()
        if text in table:
            wanted.add(table.index_of(text))
        elif text.isdigit() and int(text) < len(table):
            wanted.add(int(text))
        else:
            bad.append(repr(text) if not text else text)
    if bad:
        raise BenchmarkError(
            f"--classes: unknown classes {', '.join(bad)}; pass ImageNet wnids (like n01440764) "
            f"or class indices 0-{len(table) - 1}"
        )
    return wanted or None


def _check_count(option: str, value: int | None, unset: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BenchmarkError(f"{option} {value}: must be a whole number of at least 1; pass 1 or more, {unset}")


def _select(
    found: Found,
    per_class: int | None,
    limit: int | None,
    wanted: set[int] | None,
    classes_option: object,
) -> list[FoundImage]:
    labelled = sorted((im for im in found.images if im.label >= 0), key=lambda im: (im.label, im.key))
    unlabelled = sorted((im for im in found.images if im.label < 0), key=lambda im: im.key)
    chosen: list[FoundImage] = []
    for label, group in groupby(labelled, key=lambda im: im.label):
        if wanted is not None and label not in wanted:
            continue
        members = list(group)
        chosen.extend(members if per_class is None else members[:per_class])
    if wanted is None:
        chosen.extend(unlabelled)
    elif not chosen:
        shown = classes_option if isinstance(classes_option, str) else ",".join(map(str, classes_option))
        raise BenchmarkError(
            f"--classes {shown}: none of the {len(found.images)} images in {found.source} belong to these classes; "
            "choose classes present in the data (unlabelled images never match)"
        )
    return chosen if limit is None else chosen[:limit]
