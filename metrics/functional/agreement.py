"""Do the metrics agree on which method is better? Kendall's tau-b between the method rankings of
every pair of metrics, and how stable each method's rank is, both under a bootstrap of the
images (Efron & Tibshirani 1993; Kendall 1945, "The treatment of ties in ranking problems").

Input: ``values[K, M, N]``, metric k's value for method m on image n (NaN where undefined), and
whether higher is better per metric. A metric ranks the methods by their mean over the images
(NaN values left out), oriented so that the better method ranks first. Each bootstrap resample
draws N images with replacement, the same images for every method and metric (as
:func:`benchmark.metrics.functional.bootstrap.bootstrap_means` draws them), and ranks again. All
resamples are computed at once (in chunks), never one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.metrics.functional.bootstrap import CONFIDENCE_LEVEL

#: Resampled values held at once (K x M x R x N doubles: 160 MB), so a whole validation set fits.
_VALUES_PER_CHUNK = 20_000_000


def oriented_means(values: Tensor, higher_is_better: Sequence[bool], index: Tensor | None = None) -> Tensor:
    """``[K, M]`` (or ``[R, K, M]`` for an ``index[R, N]`` of resampled images) means of
    ``values[K, M, N]`` over the images, negated where lower is better (higher = better)."""
    sign = torch.tensor([1.0 if h else -1.0 for h in higher_is_better], dtype=torch.float64)
    if index is None:
        return torch.nanmean(values, dim=-1) * sign[:, None]
    resampled = values[:, :, index]  # [K, M, R, N]
    return torch.nanmean(resampled, dim=-1).permute(2, 0, 1) * sign[:, None]


def kendall_tau_b(scores: Tensor) -> Tensor:
    """``[..., K, K]`` Kendall's tau-b between the rows of ``scores[..., K, M]`` (each row one
    metric's scores of M methods). A method whose score is NaN under either metric of a pair is
    left out of that pair; NaN where a ranking has only ties (or fewer than 2 methods).

    tau-b = sum_{i<j} s_ij t_ij / sqrt(sum s_ij^2 * sum t_ij^2) with s_ij = sign(x_i - x_j),
    t_ij = sign(y_i - y_j): the concordant minus the discordant pairs over the geometric mean
    of the pairs untied in each ranking (as ``scipy.stats.kendalltau``'s default variant).
    """
    count = scores.shape[-1]
    first, second = torch.triu_indices(count, count, offset=1)
    differences = scores[..., first] - scores[..., second]  # [..., K, P]
    defined = torch.isfinite(differences)
    signs = torch.where(defined, torch.sign(differences), torch.zeros_like(differences))
    both = (defined[..., :, None, :] & defined[..., None, :, :]).to(scores.dtype)  # [..., K, K, P]
    concordance = (signs[..., :, None, :] * signs[..., None, :, :] * both).sum(dim=-1)
    untied_a = (signs[..., :, None, :].abs() * both).sum(dim=-1)
    untied_b = (signs[..., None, :, :].abs() * both).sum(dim=-1)
    denominator = (untied_a * untied_b).sqrt()
    return torch.where(
        denominator > 0,
        concordance / torch.where(denominator > 0, denominator, 1),
        torch.full_like(denominator, float("nan")),
    )


def competition_ranks(scores: Tensor) -> Tensor:
    """``[..., K, M]`` rank of each method under each metric, 1 = best (higher score); tied
    methods share the better rank ("1224"); NaN for a method without a score."""
    better = (scores[..., None, :] > scores[..., :, None]).sum(dim=-1).to(scores.dtype)  # [..., K, M]
    return torch.where(torch.isfinite(scores), better + 1, torch.full_like(scores, float("nan")))


@dataclass(frozen=True)
class Agreement:
    """Kendall's tau-b of every pair of metrics (``tau[K, K]``, on all images) with its
    percentile bootstrap interval (``low``, ``high``), each method's rank under each metric
    (``ranks[K, M]``) and the share of resamples that keep it (``stability[K, M]``)."""

    tau: Tensor
    low: Tensor
    high: Tensor
    ranks: Tensor
    stability: Tensor
    images: int
    resamples: int


def metric_agreement(
    values: Tensor, higher_is_better: Sequence[bool], n_resamples: int, seed: int = 0, level: float = CONFIDENCE_LEVEL
) -> Agreement:
    """The agreement of the K metrics of ``values[K, M, N]`` over M methods and N images."""
    values = torch.as_tensor(values, dtype=torch.float64)
    if values.ndim != 3 or values.shape[-1] == 0:
        raise ValueError(f"expected values [metrics, methods, images] with images, got {tuple(values.shape)}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    metrics, _, images = values.shape
    full = oriented_means(values, higher_is_better)
    ranks = competition_ranks(full)
    generator = torch.Generator().manual_seed(int(seed))
    taus, kept = [], torch.zeros_like(ranks)
    per_chunk = max(1, _VALUES_PER_CHUNK // values.numel())
    for start in range(0, n_resamples, per_chunk):
        rows = min(per_chunk, n_resamples - start)
        index = torch.randint(images, (rows, images), generator=generator)
        resampled = oriented_means(values, higher_is_better, index)  # [R, K, M]
        taus.append(kendall_tau_b(resampled))
        kept += (competition_ranks(resampled) == ranks).sum(dim=0)
    tail = (1 - level) / 2
    bounds = torch.nanquantile(torch.cat(taus).flatten(1), torch.tensor([tail, 1 - tail], dtype=torch.float64), dim=0)
    return Agreement(
        tau=kendall_tau_b(full),
        low=bounds[0].view(metrics, metrics),
        high=bounds[1].view(metrics, metrics),
        ranks=ranks,
        stability=torch.where(torch.isfinite(ranks), kept / n_resamples, torch.full_like(ranks, float("nan"))),
        images=images,
        resamples=n_resamples,
    )
