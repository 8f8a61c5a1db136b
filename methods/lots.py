"""LOTS: Layerwise Origin-Target Synthesis (Rozsa et al. 2017) as a saliency method
(Algorithms 1 and 2 of the thesis "Visualization of Deep Features with Grad-CAM and LOTS", 2023).

Algorithm 1, per image, batched here with per-sample convergence::

    x_adv = x
    repeat `iterations` times, for the samples not yet converged:
        F_s = features(x_adv)
        if distance(F_s, F_t) <= tau: the sample is converged (stops changing)
        g = d/dx_adv [ 0.5 * ||F_t - F_s||^2 ]
        x_adv = clamp(x_adv - g * alpha / max|g|, 0, 1)        # max over that image's g

Algorithm 2 turns the perturbation into a map::

    p = minmax(|gray(x_adv) - gray(x)|);  map = minmax(gaussian_blur(p, k))

Every image's update depends only on its own gradient (the model is in eval mode), so the
batched run gives the same adversarial images as :func:`lots_attack_reference`, the literal
one-image loop, up to floating-point rounding (exact to ~1e-15 in float64).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.core.errors import BenchmarkError
from benchmark.metrics.functional.image import gaussian_blur, minmax_normalize, to_grayscale

FeaturesFn = Callable[[Tensor], Tensor]
DISTANCES = ("euclidean", "cosine")


@dataclass
class LotsResult:
    """Adversarial images and, per sample, the updates applied and the final distance."""

    adversarial: Tensor  # [B, 3, H, W]
    iterations: Tensor  # [B] int64: updates applied (distance checked before each)
    final_distance: Tensor  # [B]: distance of the returned adversarial image


def feature_distance(features: Tensor, targets: Tensor, distance: str = "euclidean") -> Tensor:
    """Per-row distance between ``features[B, D]`` and ``targets[B, D]``.

    ``euclidean``: ||F_s - F_t||_2. ``cosine``: 1 - cos(F_s, F_t), undefined for a zero vector.
    """
    if distance == "euclidean":
        return (features - targets).norm(dim=1)
    if distance == "cosine":
        return 1 - torch.nn.functional.cosine_similarity(features, targets, dim=1, eps=1e-12)
    raise BenchmarkError(f"unknown LOTS distance {distance!r}; choose one of: {', '.join(DISTANCES)}")


def check_targets(targets: Tensor, distance: str) -> None:
    if distance == "cosine" and bool((targets.flatten(1).norm(dim=1) == 0).any()):
        raise BenchmarkError(
            "the cosine distance is undefined for the zero target: use "
            "--method.distance euclidean or another --method.target"
        )


def _scaled_step(gradient: Tensor, alpha: float) -> Tensor:
    """``g * alpha / max|g|`` per image; a zero gradient gives a zero step (not NaN)."""
    peak = gradient.abs().flatten(1).amax(dim=1).view(-1, *([1] * (gradient.dim() - 1)))
    return torch.where(peak > 0, gradient * (alpha / torch.where(peak > 0, peak, 1)), 0)


def _loss_and_gradient(features_fn: FeaturesFn, images: Tensor, targets: Tensor, distance: str):
    images = images.detach().requires_grad_(True)
    with torch.enable_grad():
        features = features_fn(images).flatten(1)
        loss = 0.5 * (targets - features).pow(2).sum()
        (gradient,) = torch.autograd.grad(loss, images)
    return feature_distance(features.detach(), targets, distance), gradient


def lots_attack(
    features_fn: FeaturesFn,
    images: Tensor,
    targets: Tensor,
    iterations: int = 500,
    tau: float = 0.1,
    alpha: float = 1 / 255,
    distance: str = "euclidean",
    progress: Callable[[int], None] | None = None,
) -> LotsResult:
    """Run LOTS (Algorithm 1) on a batch; only unconverged samples are forwarded.

    ``features_fn(images[B,3,H,W]) -> [B, D]``; ``targets[B, D]``. ``progress(n)`` is called
    after each iteration with the number of samples still active.
    """
    check_targets(targets, distance)
    targets = targets.flatten(1).to(images.dtype)
    adversarial = images.detach().clone()
    used = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
    final = torch.full((images.shape[0],), float("nan"), dtype=images.dtype, device=images.device)
    active = torch.arange(images.shape[0], device=images.device)
    for _ in range(iterations):
        if active.numel() == 0:
            break
        everyone = active.numel() == images.shape[0]
        current = adversarial if everyone else adversarial[active]
        dist, gradient = _loss_and_gradient(features_fn, current, targets if everyone else targets[active], distance)
        converged = dist <= tau
        # One device-to-host sync per iteration: boolean-mask indexing (five syncs) only in the
        # iterations where a sample converged; otherwise integer indexing, which needs none.
        if bool(converged.any()):
            final[active[converged]] = dist[converged]
            keep = ~converged
            stepped = (current[keep] - _scaled_step(gradient[keep], alpha)).clamp_(0, 1)
            active = active[keep]
        else:
            stepped = (current - _scaled_step(gradient, alpha)).clamp_(0, 1)
        adversarial[active] = stepped
        used[active] += 1
        if progress is not None:
            progress(active.numel())
    if active.numel():  # one extra forward after the last update
        with torch.no_grad():
            final[active] = feature_distance(features_fn(adversarial[active]).flatten(1), targets[active], distance)
    return LotsResult(adversarial, used, final)


def lots_attack_reference(
    features_fn: FeaturesFn,
    image: Tensor,
    target: Tensor,
    iterations: int = 500,
    tau: float = 0.1,
    alpha: float = 1 / 255,
    distance: str = "euclidean",
) -> LotsResult:
    """The thesis's Algorithm 1, literally, on one image ``[3, H, W]``: the test oracle for
    :func:`lots_attack` and the baseline of ``python -m perf``."""
    check_targets(target[None], distance)
    target = target.flatten().to(image.dtype)[None]
    adversarial = image.detach().clone()[None]
    used = 0
    for _ in range(iterations):
        dist, gradient = _loss_and_gradient(features_fn, adversarial, target, distance)
        if dist.item() <= tau:
            return LotsResult(adversarial, torch.tensor([used]), dist)
        adversarial = (adversarial - gradient * (alpha / gradient.abs().max())).clamp(0, 1)
        used += 1
    with torch.no_grad():
        dist = feature_distance(features_fn(adversarial).flatten(1), target, distance)
    return LotsResult(adversarial, torch.tensor([used]), dist)


def lots_map(images: Tensor, adversarial: Tensor, kernel_size: int = 49, threshold: float | None = None) -> Tensor:
    """Algorithm 2: ``[B,3,H,W]`` x2 -> maps ``[B,H,W]`` in [0, 1].

    ``p = minmax(|gray(x_adv) - gray(x)|)``, blurred with a ``k x k`` Gaussian (OpenCV's
    sigma for sigma=0, reflect-101 border), min-max normalized again. A zero perturbation
    gives an all-zero map. ``threshold`` T (the thesis's section 6.2 noise clean-up): values
    below T after the last normalization become 0 (``None`` = off).
    """
    perturbation = (to_grayscale(adversarial) - to_grayscale(images)).abs()
    maps = minmax_normalize(gaussian_blur(minmax_normalize(perturbation), kernel_size))
    if threshold is not None:
        maps = torch.where(maps < threshold, torch.zeros_like(maps), maps)
    return maps
