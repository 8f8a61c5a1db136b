"""Insertion and Deletion curves (Petsiuk et al. 2018, "RISE: Randomized Input Sampling for
Explanation of Black-box Models", BMVC), with the blurred baseline for both curves as the
thesis used it.

Pixels are ranked by the map, descending, with a stable sort (ties: lower row-major index
first). Step k = 0..S changes the ``min(k * pixels_per_step, H * W)`` most salient pixels:

- Deletion starts from x and replaces them by the blurred image;
- Insertion starts from the blurred image and puts the original pixels back.

The blurred image is ``gaussian_blur(x, 11, 5)`` (``cv2.GaussianBlur``, reflect-101 border).
The curve holds the softmax probability of the original top-1 class c at each step (or, with
``score="max_class"``, the highest class probability: the thesis's variant), and
``AUC = trapezoid area over x in [0, 1] * 100 = (sum - first / 2 - last / 2) / S * 100``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from benchmark.core.errors import BenchmarkError
from benchmark.metrics.functional.image import gaussian_blur

#: The values of the ``score`` option.
SCORES = ("original_class", "max_class")


def check_score(score: str) -> str:
    """Return ``score`` if it is a known curve score, else raise a BenchmarkError."""
    if score not in SCORES:
        raise BenchmarkError(f"unknown curve score {score!r}: use one of {', '.join(SCORES)}")
    return score


def check_chunk_size(chunk_size: int) -> int:
    """Return ``chunk_size`` if it is an integer >= 1, else raise a BenchmarkError."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise BenchmarkError(f"chunk size must be an integer >= 1, got {chunk_size!r}")
    return chunk_size


def check_n_steps(n_steps: int | None) -> int | None:
    """Return ``n_steps`` if it is ``None`` or an integer >= 1, else raise a BenchmarkError."""
    if n_steps is not None and (isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1):
        raise BenchmarkError(f"insertion/deletion steps must be an integer >= 1, got {n_steps!r}")
    return n_steps


def check_blur(kernel_size: int, sigma: float | None) -> float | None:
    """Check the baseline blur: odd kernel >= 1, sigma > 0 (``0`` or ``None``: OpenCV's rule).

    Returns the sigma to pass to ``gaussian_blur`` (``None`` for OpenCV's rule).
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or (kernel_size % 2 == 0):
        raise BenchmarkError(f"blur kernel must be an odd integer >= 1, got {kernel_size!r}")
    if sigma is None or sigma == 0:
        return None
    if not sigma > 0 or not math.isfinite(sigma):
        raise BenchmarkError(f"blur sigma must be > 0 (or 0 for OpenCV's rule), got {sigma!r}")
    return float(sigma)


def pixel_order(maps: Tensor) -> Tensor:
    """Pixels of each map ``[B, H, W]`` by saliency, descending -> ``LongTensor[B, H * W]``.

    Row-major pixel indices; the sort is stable, so ties keep the lower index first.
    """
    if maps.ndim != 3:
        raise ValueError(f"expected maps [B, H, W], got shape {tuple(maps.shape)}")
    return torch.sort(maps.detach().flatten(1), dim=1, descending=True, stable=True).indices


def pixel_rank(maps: Tensor) -> Tensor:
    """``rank[b, p]`` = position of pixel p in ``pixel_order(maps)[b]`` -> ``LongTensor[B, H*W]``.

    The k most salient pixels of image b are exactly those with ``rank[b] < k``.
    """
    order = pixel_order(maps)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def steps_for(height: int, width: int, n_steps: int | None = None) -> tuple[int, int]:
    """``(n_steps, pixels_per_step)`` for an ``height x width`` image.

    ``n_steps`` defaults to the image side (224 for 224x224; ``max(H, W)`` when not square);
    ``pixels_per_step = ceil(H * W / n_steps)``, so the last steps may already hold every pixel.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    n_steps = check_n_steps(n_steps)
    if n_steps is None:
        n_steps = max(height, width)
    return n_steps, math.ceil(height * width / n_steps)


def insertion_deletion_curves(
    score_fn: Callable[[Tensor], Tensor],
    images: Tensor,
    maps: Tensor,
    classes: Tensor,
    n_steps: int | None = None,
    chunk_size: int = 16,
    blur_kernel: int = 11,
    blur_sigma: float | None = 5.0,
    score: str = "original_class",
) -> tuple[Tensor, Tensor]:
    """Insertion and Deletion curves ``([B, S + 1], [B, S + 1])`` of ``images[B, C, H, W]``.

    ``blur_sigma`` 0 or ``None`` uses OpenCV's rule for the kernel size.
    ``score_fn(images[N, C, H, W]) -> probabilities[N, num_classes]`` (softmax; the caller
    places it on its device and may run it under ``no_grad``; this function needs no
    gradients and runs under ``no_grad``). ``maps[B, H, W]`` rank the pixels; ``classes[B]``
    is c. The ``2 * B * (S + 1)`` perturbed images are built from a rank tensor, vectorised,
    and passed to ``score_fn`` ``chunk_size`` at a time across the flattened
    (image, step, curve) triples, so memory does not grow with ``n_steps``.
    """
    check_score(score)
    check_chunk_size(chunk_size)
    blur_sigma = check_blur(blur_kernel, blur_sigma)
    if images.ndim != 4:
        raise ValueError(f"expected images [B, C, H, W], got shape {tuple(images.shape)}")
    batch, _, height, width = images.shape
    if maps.shape != (batch, height, width):
        raise ValueError(
            f"expected maps of shape {(batch, height, width)} for images of shape "
            f"{tuple(images.shape)}, got {tuple(maps.shape)}"
        )
    if classes.shape != (batch,):
        raise ValueError(f"expected classes of shape ({batch},), got {tuple(classes.shape)}")
    steps, per_step = steps_for(height, width, n_steps)
    points = steps + 1
    device = images.device

    with torch.no_grad():
        images = images.detach()
        blurred = gaussian_blur(images, blur_kernel, blur_sigma)
        rank = pixel_rank(maps.to(device))  # [B, H*W]
        counts = (torch.arange(points, device=device) * per_step).clamp(max=height * width)
        classes = classes.to(device=device, dtype=torch.long)

        total = 2 * batch * points  # triple q = (b * points + k) * 2 + curve
        scores = []
        for start in range(0, total, chunk_size):
            stop = min(start + chunk_size, total)
            q = torch.arange(start, stop, device=device)
            curve = q % 2  # 0 = insertion, 1 = deletion
            b = q // 2 // points
            k = q // 2 % points
            first, last = start // 2 // points, (stop - 1) // 2 // points
            # Most chunks lie within one image: its rows broadcast, nothing is gathered.
            rows = slice(first, first + 1) if first == last else b
            changed = rank[rows] < counts[k].unsqueeze(1)
            # Insertion keeps x at the changed pixels (the rest blurred), Deletion elsewhere.
            keep_x = (changed != curve.bool().unsqueeze(1)).view(-1, 1, height, width)
            inputs = torch.where(keep_x, images[rows], blurred[rows])
            probs = score_fn(inputs)
            if probs.ndim != 2 or probs.shape[0] != len(q):
                raise ValueError(
                    f"score_fn must return probabilities [N, num_classes] for N={len(q)} "
                    f"images, got shape {tuple(probs.shape)}"
                )
            if score == "original_class":
                chosen = probs.gather(1, classes[b].to(probs.device).unsqueeze(1)).squeeze(1)
            else:
                chosen = probs.amax(dim=1)
            scores.append(chosen)
        if not scores:  # an empty batch
            empty = images.new_zeros(0, points)
            return empty, empty.clone()
        curves = torch.cat(scores).view(batch, points, 2)
    return curves[..., 0].contiguous(), curves[..., 1].contiguous()


def curve_auc(curves: Tensor) -> Tensor:
    """Trapezoid area under each curve ``[B, P]`` over x in [0, 1], in percent -> ``[B]``.

    ``(sum - first / 2 - last / 2) / (P - 1) * 100`` (RISE's ``auc``), P >= 2 points.
    """
    if curves.ndim != 2 or curves.shape[1] < 2:
        raise ValueError(f"expected curves [B, P] with P >= 2 points, got {tuple(curves.shape)}")
    area = curves.sum(dim=1) - curves[:, 0] / 2 - curves[:, -1] / 2
    return area / (curves.shape[1] - 1) * 100
