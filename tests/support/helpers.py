"""Shared test helpers: tiny models, the shared sample data, images made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

SHARED_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenet-sample"

#: float32's machine epsilon (2 ** -23): twice the unit roundoff u of one rounding.
FLOAT32_EPS = torch.finfo(torch.float32).eps


def layer_term_tolerance(channels: int) -> dict[str, float]:
    """``assert_close``'s bounds for two float32 computations of the layer term over
    ``channels`` channels (FullGrad's, methods/cam/fullgrad_device.py), from the arithmetic, not from
    one CPU: the eager term's sum is torch.bmm's and the compiled graph's Inductor's vector code,
    whose order is the kernel's, AVX2 or AVX-512, Intel's or AMD's.

    Each channel's term ``(a - min a) * w`` (``w = s / (1e-7 + spread * s)``) lies in [0, 1]
    and is rounded at most 4 times (the subtraction, the product, the division and the product
    by ``s``): relative error <= 4u. A sum of ``C`` terms >= 0 taken in any order (one by one,
    pairwise, in vector lanes, with FMAs) is within ``(C - 1) u`` of the exact sum, relative,
    since the terms' magnitudes add up to the sum itself. So either side is within ``(C + 3) u``
    and the two within ``(C + 3) * FLOAT32_EPS`` of each other, relative; the absolute ``FLOAT32_EPS`` (one
    term's spacing at 1) only guards values that are 0 on one side. Measured: at most 0.32 of
    this bound on AMD EPYC (AVX-512; ATen's AVX2 and default kernels too), 0.04 of it on an
    Intel Xeon where the fixed 2e-6 failed (9.5e-6 at 72 channels, values near 30)."""
    return {"atol": FLOAT32_EPS, "rtol": (channels + 3) * FLOAT32_EPS}


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
