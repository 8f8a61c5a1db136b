"""Coherency (Poppi et al. 2021, "Revisiting The Evaluation of Class Activation Mapping for
Explainability: A Novel Metric and Experimental Analysis", CVPR Workshops).

Coherency = (pearson(M, M') + 1) / 2 * 100, where M is a method's map of x and M' the same
method's map of the explanation image x * M (same class). Computed in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each pair of maps ``a[B, H, W]``, ``b[B, H, W]`` -> ``[B]``.

    Computed in float64 and clamped to [-1, 1]. NaN where either map is constant (the
    correlation is undefined there) or holds a non-finite value.
    """
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(
            f"expected two batches of maps of the same shape [B, H, W], got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a = a.detach().flatten(1).to(torch.float64)
    b = b.detach().to(a.device).flatten(1).to(torch.float64)
    a_centered = a - a.mean(dim=1, keepdim=True)
    b_centered = b - b.mean(dim=1, keepdim=True)
    covariance = (a_centered * b_centered).sum(dim=1)
    norms = (a_centered.square().sum(dim=1) * b_centered.square().sum(dim=1)).sqrt()
    # Decide "constant" on the values themselves: a constant map's centred values can be a
    # rounding error away from zero, which would give a meaningless correlation.
    constant = (a.amax(dim=1) == a.amin(dim=1)) | (b.amax(dim=1) == b.amin(dim=1))
    rho = (covariance / norms).clamp(-1.0, 1.0)  # clamp keeps NaN
    return torch.where(constant, torch.full_like(rho, float("nan")), rho)


def coherency(maps: Tensor, maps_of_explanation: Tensor) -> Tensor:
    """Per-image Coherency in percent: ``(pearson(M, M') + 1) / 2 * 100`` (float64, ``[B]``).

    NaN where Pearson is undefined (a constant map); the metric class counts those samples
    and leaves them out of the mean. Higher is better.
    """
    return (pearson(maps, maps_of_explanation) + 1) / 2 * 100
