"""Shared test helpers: tiny models, the shared sample data, images made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"


def shared_sample_dir() -> Path:
    """The 200-image ImageNet sample beside the repo: in CI its absence is a failure."""
    if SHARED_SAMPLE.is_dir():
        return SHARED_SAMPLE
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{SHARED_SAMPLE} is missing (CI=true): the shared data must be there")
    pytest.skip(f"{SHARED_SAMPLE} not present on this machine")


class LinearModel(nn.Module):
    """``logits = W @ flatten(x)``: every LOTS step can be written down by hand."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T.to(x.dtype)


def write_random_jpeg(path: Path, seed: int, size: tuple[int, int] = (300, 260)) -> Path:
    rng = np.random.default_rng(seed)
    array = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(array).save(path, "JPEG")
    return path
