"""Similarity of two maps of the same image: Spearman's rank correlation, batched.

Used by the sanity-check metrics (random logit, model randomization), which compare a method's
map with its map under a changed question (another class, a randomized model).
"""

from __future__ import annotations

import torch
from torch import Tensor


def average_ranks(values: Tensor) -> Tensor:
    """``[B, N]`` ranks (0-based) of each row's values, ties given the mean of their ranks (as
    ``scipy.stats.rankdata(method="average") - 1``)."""
    batch, count = values.shape
    order = torch.sort(values, dim=1, stable=True)
    sorted_values, positions = order.values, order.indices
    starts = torch.ones_like(sorted_values, dtype=torch.bool)
    starts[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    group = starts.long().cumsum(dim=1) - 1  # tie group of each sorted position, per row
    group = group + torch.arange(batch, device=values.device)[:, None] * count  # unique over rows
    index = torch.arange(count, device=values.device, dtype=torch.float64).expand(batch, count).reshape(-1)
    flat = group.reshape(-1)
    first = torch.full((batch * count,), float(count), dtype=torch.float64, device=values.device)
    last = torch.full((batch * count,), -1.0, dtype=torch.float64, device=values.device)
    first = first.scatter_reduce(0, flat, index, reduce="amin")
    last = last.scatter_reduce(0, flat, index, reduce="amax")
    mean_rank = ((first + last) / 2)[flat].view(batch, count)
    return torch.empty_like(mean_rank).scatter_(1, positions, mean_rank)


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation of ``a[B, ...]`` and ``b[B, ...]`` per row (float64): the
    Pearson correlation of their average ranks; NaN where a row is constant (no ranking)."""
    ra = average_ranks(a.flatten(1).double())
    rb = average_ranks(b.flatten(1).double())
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    denominator = (ra.pow(2).sum(dim=1) * rb.pow(2).sum(dim=1)).sqrt()
    return torch.where(
        denominator > 0,
        (ra * rb).sum(dim=1) / torch.where(denominator > 0, denominator, 1),
        torch.full_like(denominator, float("nan")),
    )
