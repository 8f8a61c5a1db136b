"""The 1000 ImageNet-1k classes: wnid <-> class index <-> readable name.

The class index of a wnid is its position in sorted wnid order, which is the order used by
torchvision/timm ImageNet classifiers. The table ships with the package as
``imagenet_classes.tsv`` (columns ``index``, ``wnid``, ``name``).
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

CLASSES_FILE = Path(__file__).with_name("imagenet_classes.tsv")
NUM_CLASSES = 1000
WNID_PATTERN = re.compile(r"n\d{8}")


def is_wnid(text: str) -> bool:
    """True when ``text`` looks like a WordNet id (``n`` followed by 8 digits)."""
    return WNID_PATTERN.fullmatch(text) is not None


@dataclass(frozen=True)
class ImageNetClasses:
    """The class table: ``wnids[i]`` and ``names[i]`` belong to class index ``i``."""

    wnids: list[str]
    names: list[str]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.wnids) != len(self.names):
            raise ValueError("wnids and names must have the same length")
        if self.wnids != sorted(self.wnids):
            raise ValueError("wnids must be in sorted order (class index = sorted position)")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.wnids)})

    def __len__(self) -> int:
        return len(self.wnids)

    def __contains__(self, wnid: object) -> bool:
        return wnid in self._index

    def index_of(self, wnid: str) -> int:
        """The class index of ``wnid``; raises ``KeyError`` for a wnid outside the table."""
        return self._index[wnid]

    def name(self, index: int) -> str:
        """The readable name of class ``index``; raises ``IndexError`` when out of range."""
        if not 0 <= index < len(self.names):
            raise IndexError(f"class index {index} is outside 0..{len(self.names) - 1}")
        return self.names[index]


@functools.cache
def imagenet_classes() -> ImageNetClasses:
    """Load (once) the ImageNet-1k class table shipped with the package."""
    with CLASSES_FILE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    rows.sort(key=lambda row: int(row["index"]))
    wnids = [row["wnid"] for row in rows]
    names = [row["name"] for row in rows]
    if len(wnids) != NUM_CLASSES or [int(r["index"]) for r in rows] != list(range(NUM_CLASSES)):
        raise RuntimeError(f"{CLASSES_FILE} is damaged: expected indices 0..{NUM_CLASSES - 1}")
    return ImageNetClasses(wnids=wnids, names=names)
