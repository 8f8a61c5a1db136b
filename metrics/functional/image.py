"""Image operations shared by the LOTS map (the blurred grey perturbation) and the
Insertion/Deletion baseline (the blurred image). All work on batches, in float32 or float64: a bfloat16/float16
input is computed in float32, and autocast (``--precision bf16``) is switched off inside, so
that maps and baselines are never quantized to 8 bits of mantissa whatever the precision of
the model's forward."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.transforms.v2.functional import gaussian_blur as _tv_gaussian_blur

from benchmark.core.errors import BenchmarkError
from benchmark.core.tensors import at_least_float32, full_precision

#: ITU-R BT.601 luma weights, as ``cv2.cvtColor(..., COLOR_RGB2GRAY)`` and PIL's "L" use.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def opencv_sigma(kernel_size: int) -> float:
    """The sigma OpenCV derives for ``sigma=0``: ``0.3 * ((k - 1) / 2 - 1) + 0.8``."""
    return 0.3 * ((kernel_size - 1) / 2 - 1) + 0.8


def gaussian_blur(images: Tensor, kernel_size: int, sigma: float | None = None) -> Tensor:
    """Blur ``images[..., H, W]`` with a sampled ``k x k`` Gaussian, reflect-101 border.

    This is what ``cv2.GaussianBlur(x, (k, k), sigma)`` computes (torchvision's kernel is
    the same normalized sampled Gaussian and its "reflect" padding is OpenCV's
    BORDER_REFLECT_101). ``sigma=None`` uses OpenCV's rule for ``sigma=0``.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise BenchmarkError(f"Gaussian kernel size must be odd and >= 1, got {kernel_size}")
    if kernel_size == 1:
        return images.clone()
    height, width = images.shape[-2:]
    if kernel_size // 2 >= min(height, width):
        raise BenchmarkError(
            f"Gaussian kernel size {kernel_size} is too large for {height}x{width} maps: "
            f"use a kernel smaller than {2 * min(height, width) - 1}"
        )
    sigma = opencv_sigma(kernel_size) if sigma is None else float(sigma)
    shape = images.shape
    flat = at_least_float32(images).reshape(-1, 1, height, width)
    with full_precision(flat):
        blurred = _tv_gaussian_blur(flat, [kernel_size, kernel_size], [sigma, sigma])
    return blurred.reshape(shape)


def to_grayscale(images: Tensor) -> Tensor:
    """``images[..., 3, H, W]`` -> ``[..., H, W]`` with gray = 0.299 R + 0.587 G + 0.114 B."""
    if images.shape[-3] != 3:
        raise ValueError(f"expected RGB images [..., 3, H, W], got shape {tuple(images.shape)}")
    images = at_least_float32(images)
    weights = torch.tensor(GRAY_WEIGHTS, dtype=images.dtype, device=images.device)
    with full_precision(images):
        return torch.einsum("...chw,c->...hw", images, weights)


def minmax_normalize(maps: Tensor) -> Tensor:
    """Scale each map ``[..., H, W]`` to [0, 1]; a constant map becomes all zeros (no NaN)."""
    flat = at_least_float32(maps).flatten(-2)
    low = flat.amin(dim=-1, keepdim=True)
    span = flat.amax(dim=-1, keepdim=True) - low
    scaled = torch.where(span > 0, (flat - low) / torch.where(span > 0, span, 1), 0)
    return scaled.reshape(maps.shape)


#: ``map_problems`` codes: a usable map, a constant map (no pixel ranks above another), a map
#: with NaN or infinite values.
MAP_OK, MAP_CONSTANT, MAP_NON_FINITE = 0, 1, 2
MAP_PROBLEM_NAMES = {MAP_CONSTANT: "constant", MAP_NON_FINITE: "non-finite"}


def map_problems(maps: Tensor) -> Tensor:
    """Per map ``[..., H, W]`` a code: ``MAP_NON_FINITE`` if any value is NaN or infinite, else
    ``MAP_CONSTANT`` if all values are equal, else ``MAP_OK`` (long tensor ``[...]``)."""
    flat = maps.detach().flatten(-2)
    non_finite = ~torch.isfinite(flat).all(dim=-1)
    constant = flat.amax(dim=-1) == flat.amin(dim=-1)
    codes = torch.where(constant, MAP_CONSTANT, MAP_OK)
    return torch.where(non_finite, MAP_NON_FINITE, codes).long()
