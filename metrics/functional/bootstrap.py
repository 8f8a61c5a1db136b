"""Percentile bootstrap confidence intervals over images (Efron & Tibshirani 1993, "An
Introduction to the Bootstrap", ch. 13).

A metric's mean over N images is one draw of a noisy estimate. Resampling the N per-image
values with replacement B times gives B bootstrap means; their (1 - level)/2 and
(1 + level)/2 quantiles are the interval. Two methods scored on the *same* images are
compared by resampling the images once for both (a paired bootstrap), i.e. bootstrapping the
per-image differences d_i = a_i - b_i: the difference of the means is not significant when
its interval contains 0.

Everything is seeded (a CPU ``torch.Generator``), batched over resamples, and skips
non-finite values (images where a metric is undefined).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

#: The interval level reported everywhere (``ci95`` in results.json).
CONFIDENCE_LEVEL = 0.95
#: Resamples per interval unless configured (``--metrics.bootstrap``).
DEFAULT_RESAMPLES = 10_000
_ROWS_PER_CHUNK = 1_000


def _finite(values: Tensor | list[float]) -> Tensor:
    values = torch.as_tensor(values, dtype=torch.float64).flatten().cpu()
    return values[torch.isfinite(values)]


def bootstrap_means(values: Tensor | list[float], n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Tensor:
    """``[n_resamples]`` means of ``values`` resampled with replacement (finite values only).

    Resample ``r`` draws N indices uniformly from a generator seeded with ``seed``, so the same
    seed and N give the same resamples for any values (that is what makes two methods' draws
    paired).
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    values = _finite(values)
    n = values.numel()
    if n == 0:
        return torch.full((n_resamples,), float("nan"), dtype=torch.float64)
    generator = torch.Generator().manual_seed(int(seed))
    means = []
    for start in range(0, n_resamples, _ROWS_PER_CHUNK):
        rows = min(_ROWS_PER_CHUNK, n_resamples - start)
        index = torch.randint(n, (rows, n), generator=generator)
        means.append(values[index].mean(dim=1))
    return torch.cat(means)


def bootstrap_ci(
    values: Tensor | list[float],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = CONFIDENCE_LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of the mean of the finite ``values``.

    ``low``/``high`` = the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (linear
    interpolation, numpy's default) of :func:`bootstrap_means`. No finite value: ``(nan, nan)``;
    one value: ``(v, v)``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    means = bootstrap_means(values, n_resamples, seed)
    if torch.isnan(means).all():
        return (math.nan, math.nan)
    tail = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return (low, high)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over the images both have, its interval, and whether it excludes 0."""

    difference: float
    low: float
    high: float
    images: int

    @property
    def significant(self) -> bool:
        """True when the interval lies entirely above or below 0 (0 inside: noise)."""
        return self.images > 0 and (self.low > 0 or self.high < 0)


def paired_bootstrap(
    ids_a: list[int],
    values_a: list[float],
    ids_b: list[int],
    values_b: list[float],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = CONFIDENCE_LEVEL,
) -> PairedDifference:
    """Paired bootstrap of ``mean(a) - mean(b)`` over the images (sample ids) where both
    values are finite: the images are resampled once and both methods' values go with them."""
    b_of = {i: v for i, v in zip(ids_b, values_b) if math.isfinite(v)}
    diffs = [va - b_of[i] for i, va in zip(ids_a, values_a) if math.isfinite(va) and i in b_of]
    if not diffs:
        return PairedDifference(math.nan, math.nan, math.nan, 0)
    low, high = bootstrap_ci(diffs, n_resamples, seed, level)
    return PairedDifference(float(torch.tensor(diffs, dtype=torch.float64).mean()), low, high, len(diffs))
