"""Feature targets F_t of LOTS beyond the zero vector (the thesis's default target).

* ``class``: per ImageNet class, the features of one image of that class chosen with the seed.
* ``mean``: per class, the mean features over the class's images.
* ``image``: the features of one user-given image (objects the model never saw, RQ3).

``class`` and ``mean`` targets are precomputed by ``python -m benchmark targets`` into a file
(a ``torch.save`` dict of plain tensors, strings and numbers, read with ``weights_only=True``)::

    {"format": TARGETS_FORMAT, "model": str, "features": str, "feature_dim": int,
     "kinds": ["class", "mean"], "data": str, "seed": int,
     "class": {"targets": FloatTensor[1000, D], "counts": LongTensor[1000], "files": [str] * 1000},
     "mean":  {"targets": FloatTensor[1000, D], "counts": LongTensor[1000]}}

A class without images has count 0 and a zero row; asking LOTS for it is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from benchmark.core.errors import BenchmarkError

TARGETS_FORMAT = "saliency-benchmark/lots-targets/1"
TARGET_KINDS = ("class", "mean")
_MAKE = "make one with: python -m benchmark targets --data TRAIN_DIR --kind class,mean --output FILE.pt"


@dataclass
class TargetsFile:
    """The content of a targets file (see the module docstring)."""

    path: str
    model: str
    features: str
    kinds: list[str]
    targets: dict[str, Tensor]
    counts: dict[str, Tensor]
    files: list[str] = field(default_factory=list)  # class kind: the chosen image per class
    data: str = ""
    seed: int = 0

    def rows(self, kind: str, classes: Tensor) -> Tensor:
        """``targets[kind][classes]``; a class without images is an error naming it."""
        if kind not in self.targets:
            raise BenchmarkError(
                f"--method.targets_file {self.path} holds {', '.join(self.kinds)} targets, not {kind}; {_MAKE}"
            )
        classes = classes.to(device="cpu", dtype=torch.long)
        missing = sorted({int(c) for c in classes[self.counts[kind][classes] == 0]})
        if missing:
            from benchmark.datamodules import imagenet_classes

            names = imagenet_classes()
            shown = ", ".join(f"{c} ({names.wnids[c]} {names.names[c]})" for c in missing[:5])
            raise BenchmarkError(
                f"--method.targets_file {self.path} has no {kind} target for class {shown}: build it from "
                "a folder with images of that class, or use --method.target zero"
            )
        return self.targets[kind][classes]


def write_targets_file(path: str | Path, content: TargetsFile) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True)
    payload = {
        "format": TARGETS_FORMAT,
        "model": content.model,
        "features": content.features,
        "feature_dim": int(next(iter(content.targets.values())).shape[1]),
        "kinds": list(content.kinds),
        "data": content.data,
        "seed": int(content.seed),
    }
    for kind in content.kinds:
        payload[kind] = {"targets": content.targets[kind].float().cpu(), "counts": content.counts[kind].long().cpu()}
        if kind == "class":
            payload[kind]["files"] = list(content.files)
    torch.save(payload, path)
    return path


def read_targets_file(path: str | Path, kind: str | None = None) -> TargetsFile:
    """Load and check a targets file; ``kind`` (class/mean) must be in it. Errors name the fix."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise BenchmarkError(f"--method.targets_file {path}: file does not exist; {_MAKE}")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception:  # a truncated file, a pickle with code, not a torch file at all
        raise BenchmarkError(f"--method.targets_file {path}: not a readable targets file; {_MAKE}") from None
    if not isinstance(payload, dict) or payload.get("format") != TARGETS_FORMAT:
        raise BenchmarkError(f"--method.targets_file {path}: not a targets file of this benchmark; {_MAKE}")
    kinds = [k for k in payload.get("kinds", []) if k in TARGET_KINDS]
    if kind is not None and kind not in kinds:
        raise BenchmarkError(
            f"--method.targets_file {path} holds {', '.join(kinds) or 'no'} targets, not {kind}; {_MAKE}"
        )
    return TargetsFile(
        path=str(path),
        model=str(payload["model"]),
        features=str(payload["features"]),
        kinds=kinds,
        targets={k: payload[k]["targets"] for k in kinds},
        counts={k: payload[k]["counts"] for k in kinds},
        files=list(payload.get("class", {}).get("files", [])),
        data=str(payload.get("data", "")),
        seed=int(payload.get("seed", 0)),
    )


def load_target_image(path: str | Path) -> Tensor:
    """The ``image`` target's picture as ``[3, 224, 224]`` in [0, 1] (same resize and crop as
    the evaluated images); an unreadable file is an error naming it."""
    from benchmark.datamodules import ImageLoadError, load_rgb, make_transform

    file = Path(path).expanduser()
    if not file.is_file():
        raise BenchmarkError(f"--method.target_image {path}: file does not exist; pass an image file")
    try:
        return make_transform()(load_rgb(str(file)))
    except ImageLoadError as error:
        raise BenchmarkError(f"--method.target_image {path}: {error}; pass a readable image file") from None
