"""Bounding boxes for the localization metrics: where they come from and how they follow the
image through the resize and centre crop.

Sources: the ``LOC_val_solution.csv`` of a flat ``ILSVRC2012_val_*`` folder (read with the
labels), or ``--boxes FILE`` for any layout: a CSV in the same layout (``ImageId`` = the image
file's stem, ``PredictionString`` = ``wnid x1 y1 x2 y2`` repeated). ImageNet boxes are
inclusive pixel indices of the original image, so box ``(x1, y1, x2, y2)`` covers the
continuous region ``[x1, x2 + 1) x [y1, y2 + 1)``. The boxes go through the same torchvision
``Resize``/``CenterCrop`` as the pixels (as ``tv_tensors.BoundingBoxes``), so they land on the
224x224 crop exactly where the object does; boxes cut off by the crop are clipped, boxes
entirely outside it are dropped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision import tv_tensors

from benchmark.core.errors import BenchmarkError
from benchmark.datamodules.ground_truth import Box, read_loc_solution
from benchmark.datamodules.samples import Sample


def read_boxes_file(path: str | os.PathLike) -> dict[str, tuple[Box, ...]]:
    """``{file stem: boxes}`` from a CSV in the ``LOC_val_solution.csv`` layout."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise BenchmarkError(
            f"--boxes {path}: file does not exist; pass a CSV in the LOC_val_solution.csv layout "
            "(ImageId,PredictionString with 'wnid x1 y1 x2 y2' per box)"
        )
    return {stem: tuple(boxes) for stem, (_, boxes) in read_loc_solution(file).items()}


def attach_boxes(samples: list[Sample], table: dict[str, tuple[Box, ...]]) -> list[Sample]:
    """The samples with the boxes of ``table`` (by file stem); samples not in it keep none."""
    return [dataclasses.replace(s, boxes=table.get(Path(s.file).stem, s.boxes)) for s in samples]


def original_size(file: str) -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header."""
    with Image.open(file) as image:
        return image.size


def boxes_on_canvas(
    boxes: tuple[Box, ...], original: tuple[int, int], loaded: tuple[int, int]
) -> tv_tensors.BoundingBoxes:
    """Inclusive pixel boxes of the original image as continuous XYXY boxes on the loaded
    image (which may be a reduced JPEG draft of size ``loaded`` = (width, height))."""
    (width, height), (loaded_width, loaded_height) = original, loaded
    scale = torch.tensor(
        [loaded_width / width, loaded_height / height, loaded_width / width, loaded_height / height],
        dtype=torch.float64,
    )
    xyxy = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4) + torch.tensor([0, 0, 1, 1], dtype=torch.float64)
    return tv_tensors.BoundingBoxes((xyxy * scale).float(), format="XYXY", canvas_size=(loaded_height, loaded_width))


def visible_boxes(boxes: Tensor) -> Tensor:
    """The boxes with a positive area (after the crop clipped them), as a plain ``[K, 4]`` tensor."""
    plain = boxes.as_subclass(Tensor).reshape(-1, 4).float()
    keep = (plain[:, 2] > plain[:, 0]) & (plain[:, 3] > plain[:, 1])
    return plain[keep]
