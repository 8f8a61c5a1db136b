"""Complexity and ADCC (Poppi et al. 2021, "Revisiting The Evaluation of Class Activation
Mapping for Explainability: A Novel Metric and Experimental Analysis", CVPR Workshops).

Complexity = mean_ij |M_ij| * 100 (the L1 norm per pixel: a map that lights up everything is
complex). ADCC = the harmonic mean of Coherency, 1 - Complexity and 1 - Average Drop, all as
fractions, per image::

    ADCC = 3 / (1 / coherency + 1 / (1 - complexity) + 1 / (1 - drop))

The benchmark averages the per-image ADCC over images (like every other metric, so it gets a
bootstrap interval); a term equal to 0 gives ADCC = 0 (the harmonic mean's limit).
"""

from __future__ import annotations

import torch
from torch import Tensor


def complexity(maps: Tensor) -> Tensor:
    """Per-image Complexity in percent: ``mean(|M|) * 100`` over the pixels of ``maps[B, H, W]``
    (float64, ``[B]``). Lower is better."""
    if maps.ndim < 2:
        raise ValueError(f"expected maps [B, H, W], got shape {tuple(maps.shape)}")
    return maps.detach().flatten(1).to(torch.float64).abs().mean(dim=1) * 100


def adcc(coherency: Tensor, complexity: Tensor, average_drop: Tensor) -> Tensor:
    """Per-image ADCC in percent from per-image Coherency, Complexity and Average Drop (all in
    percent, ``[B]``). NaN where an input is NaN (e.g. an undefined Coherency). Higher is better."""
    terms = torch.stack([coherency.double(), 100 - complexity.double(), 100 - average_drop.double()]) / 100
    harmonic = 3 / (1 / terms).sum(dim=0)  # a zero term: 1/0 = inf -> 0, the limit
    harmonic = torch.where((terms == 0).any(dim=0), torch.zeros_like(harmonic), harmonic)
    return torch.where(torch.isnan(terms).any(dim=0), torch.full_like(harmonic, float("nan")), harmonic) * 100
