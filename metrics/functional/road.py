"""ROAD: RemOve And Debias (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy
for Attribution Methods", ICML).

For each percentage p, the p% most (MoRF) or least (LeRF) relevant pixels of the map are
removed and filled in by **noisy linear imputation**: every removed pixel equals the weighted
mean of its 8 neighbours (1/6 for the 4 edge neighbours, 1/12 for the 4 diagonal ones;
neighbours outside the image are dropped and the weights renormalized), all removed pixels of
an image and channel solved jointly with the kept pixels fixed, then N(0, sigma^2) is added to
the imputed pixels. The score is the softmax probability of c on the imputed image.

The system of one image, percentage and channel is, with ``d_i`` the weight of pixel i's
neighbours inside the image and ``R`` the removed pixels::

    d_i x_i - sum_{j in R} w_ij x_j = sum_{j not in R} w_ij v_j        (i in R)

a symmetric positive definite system (a graph Laplacian with the kept pixels as boundary),
the same one grad-cam's ``NoisyLinearImputer`` builds with scipy and solves one image at a
time. Here every image, percentage and channel of a batch is solved at once on the device by
conjugate gradients preconditioned by a geometric multigrid V-cycle (damped Jacobi on each
grid, bilinear transfer between grids twice as coarse, a coarse pixel unknown where its four
fine pixels are), the matrix applied as shifted views of the image, starting from a pull-push
guess (the kept pixels averaged down a pyramid and pulled back up into the holes); solved
systems leave the batch every 4 steps. The multigrid makes the steps independent of the holes'
size: 10-25 per system where Jacobi-preconditioned conjugate gradients needed hundreds for a
CAM's contiguous holes.

Pixels are ranked as for Insertion/Deletion (stable, ties: lower row-major index first); the
p% are ``round(p / 100 * H * W)`` pixels (halves up).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.core.errors import BenchmarkError
from benchmark.core.tensors import full_precision
from benchmark.metrics.functional.insertion_deletion import pixel_rank

#: The percentages of Rong et al. (and grad-cam's ROAD averages).
DEFAULT_PERCENTAGES = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
#: Rong et al.'s noise (pixel space [0, 1]).
DEFAULT_NOISE = 0.01
#: The neighbour weights of the imputation (centre 0).
NEIGHBOUR_WEIGHTS = ((1 / 12, 1 / 6, 1 / 12), (1 / 6, 0.0, 1 / 6), (1 / 12, 1 / 6, 1 / 12))


def percentages_of(metric_settings: dict) -> tuple[float, ...]:
    """The ROAD percentages of a run's metric settings (``--metrics.*``): its own or the default."""
    return tuple(metric_settings.get("road_percentages") or DEFAULT_PERCENTAGES)


def check_percentages(percentages: Sequence[float]) -> tuple[float, ...]:
    """The percentages as floats, each in (0, 100), at least one, no repeats; else a BenchmarkError."""
    try:
        values = tuple(float(p) for p in percentages)
    except (TypeError, ValueError):
        raise BenchmarkError(
            f"road percentages must be numbers in (0, 100), e.g. 10,20,...,90; got {percentages!r}"
        ) from None
    if not values or any(not (0 < p < 100) or not math.isfinite(p) for p in values) or len(set(values)) != len(values):
        raise BenchmarkError(
            f"road percentages must be distinct numbers in (0, 100), e.g. 10,20,...,90; got {list(percentages)!r}"
        )
    return values


def check_noise(noise: float) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise BenchmarkError(f"road noise must be a standard deviation >= 0 (0 switches it off), got {noise!r}")
    return float(noise)


def removal_counts(pixels: int, percentages: Sequence[float]) -> list[int]:
    """Pixels removed at each percentage: ``round(p / 100 * pixels)``, halves up."""
    return [int(math.floor(p * pixels / 100 + 0.5)) for p in percentages]


def removed_pixels(maps: Tensor, percentages: Sequence[float], most_relevant_first: bool) -> Tensor:
    """``BoolTensor[B, P, H, W]``: the pixels removed at each percentage (MoRF: the most
    relevant; LeRF: the least relevant)."""
    batch, height, width = maps.shape
    pixels = height * width
    rank = pixel_rank(maps)[:, None, :]  # 0 = most relevant
    counts = torch.tensor(removal_counts(pixels, percentages), device=maps.device)[None, :, None]
    removed = rank < counts if most_relevant_first else rank >= pixels - counts
    return removed.view(batch, len(percentages), height, width)


def _neighbour_sum(x: Tensor) -> Tensor:
    """``sum_j w_ij x_j`` over the 8 neighbours inside the image, for ``x[N, 1, H, W]``.

    The weights are ``(a a^T - e) / 3`` with ``a = (1/2, 1, 1/2)`` and ``e`` the centre, so the
    sum is two 3-tap passes of shifted views (a one-channel ``conv2d`` is ~6x slower on the CPU)."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = padded[..., :-2, :] * 0.5 + padded[..., 1:-1, :] + padded[..., 2:, :] * 0.5
    both = rows[..., :-2] * 0.5 + rows[..., 1:-1] + rows[..., 2:] * 0.5
    return (both - x) / 3


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(dim=(1, 2, 3))


#: The 1-D taps of the multigrid's transfer between a grid and the one twice as coarse
#: (bilinear for cell-centred grids); restriction and prolongation are each other's transpose.
_TRANSFER = (0.25, 0.75, 0.75, 0.25)


def _restrict_1d(x: Tensor, dim: int, coarse: int) -> Tensor:
    """``coarse`` values along ``dim``: ``y_I = (x_{2I-1} + 3 x_{2I} + 3 x_{2I+1} + x_{2I+2}) / 4``
    (zero outside ``x``)."""
    x = x.movedim(dim, -1)
    x = F.pad(x, (1, 2 * coarse - x.shape[-1] + 1))
    y = sum(tap * x[..., k::2][..., :coarse] for k, tap in enumerate(_TRANSFER))
    return y.movedim(-1, dim)


def _prolong_1d(y: Tensor, dim: int, fine: int) -> Tensor:
    """The transpose of :func:`_restrict_1d`: ``fine`` values along ``dim``."""
    y = y.movedim(dim, -1)
    padded = F.pad(y, (1, 1))
    even = 0.75 * y + 0.25 * padded[..., :-2]  # x_{2I}: 3/4 of y_I, 1/4 of y_{I-1}
    odd = 0.75 * y + 0.25 * padded[..., 2:]  # x_{2I+1}: 3/4 of y_I, 1/4 of y_{I+1}
    x = torch.stack((even, odd), dim=-1).flatten(-2)[..., :fine]
    return x.movedim(-1, dim)


def _restrict(x: Tensor, shape: tuple[int, int]) -> Tensor:
    return _restrict_1d(_restrict_1d(x, -2, shape[0]), -1, shape[1])


def _prolong(x: Tensor, shape: tuple[int, int]) -> Tensor:
    return _prolong_1d(_prolong_1d(x, -2, shape[0]), -1, shape[1])


class _Grid:
    """One level of the multigrid: its unknowns ``mask[N, 1, h, w]`` (1 = removed) and the
    system ``A x = mask * (d * x - sum_j w_ij x_j)`` on them, with ``d`` the weight of each
    pixel's neighbours inside the grid."""

    def __init__(self, mask: Tensor, degree: Tensor | None = None):
        self.mask = mask
        if degree is None:
            degree = _neighbour_sum(torch.ones(1, 1, *mask.shape[-2:], dtype=mask.dtype, device=mask.device))
        self.degree = degree
        self.inverse_diagonal = mask / degree

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape[-2:])

    def apply(self, x: Tensor) -> Tensor:
        return self.mask * (self.degree * x - _neighbour_sum(x))

    def take(self, keep: Tensor) -> _Grid:
        return _Grid(self.mask[keep], self.degree)


#: Damping of the Jacobi smoother (< 1: the system's Jacobi-scaled eigenvalues lie in (0, 2)).
_DAMPING = 0.8
#: Jacobi sweeps on the coarsest grid.
_COARSEST_SWEEPS = 20


def _grids(mask: Tensor, smallest: int = 4) -> list[_Grid]:
    """The fine grid and the coarser ones: a coarse pixel is an unknown where all four of its
    fine pixels are (so no coarse system is singular), halving while the grid keeps at least
    ``smallest`` pixels a side and any unknown."""
    grids = [_Grid(mask)]
    while min(mask.shape[-2:]) >= 2 * smallest:
        mask = -F.max_pool2d(-mask, 2, ceil_mode=True)
        if not bool(mask.any()):
            break
        grids.append(_Grid(mask))
    return grids


def _v_cycle(grids: list[_Grid], residual: Tensor, level: int = 0) -> Tensor:
    """The multigrid preconditioner on ``residual``: damped Jacobi before and after (the same
    sweep, so the cycle is symmetric, as conjugate gradients need), the rest restricted to the
    coarser grid and its correction prolonged back."""
    grid = grids[level]
    coarsest = level == len(grids) - 1
    x = _DAMPING * grid.inverse_diagonal * residual
    for _ in range(_COARSEST_SWEEPS - 1 if coarsest else 0):
        x = x + _DAMPING * grid.inverse_diagonal * (residual - grid.apply(x))
    if coarsest:
        return x
    coarse = grids[level + 1]
    left = coarse.mask * _restrict(grid.mask * (residual - grid.apply(x)), coarse.shape)
    x = x + grid.mask * _prolong(_v_cycle(grids, left, level + 1), grid.shape)
    return x + _DAMPING * grid.inverse_diagonal * (residual - grid.apply(x))


def _pull_push(known: Tensor, removed: Tensor) -> Tensor:
    """A smooth first guess of the removed pixels (the pull-push of Gortler et al. 1996): the
    kept pixels averaged down a 2x pyramid, the coarse averages pulled back up into the holes."""
    weight = 1 - removed
    value = known * weight
    levels = []
    while min(value.shape[-2:]) > 2:
        levels.append((value, weight))
        value = F.avg_pool2d(value, 2, ceil_mode=True)
        weight = F.avg_pool2d(weight, 2, ceil_mode=True)
    mean = value.sum(dim=(2, 3), keepdim=True) / weight.sum(dim=(2, 3), keepdim=True).clamp(min=1e-12)
    estimate = torch.where(weight > 0, value / weight.clamp(min=1e-12), mean)
    for value, weight in reversed(levels):
        pulled = F.interpolate(estimate, size=value.shape[-2:], mode="bilinear", align_corners=False)
        estimate = value + (1 - weight) * pulled  # kept pixels exact, holes from the coarser level
    return estimate


def linear_imputation(
    images: Tensor, removed: Tensor, tolerance: float = 1e-5, max_iterations: int | None = None
) -> Tensor:
    """``[B, P, C, H, W]``: ``images[B, C, H, W]`` with the pixels ``removed[B, P, H, W]`` filled
    in by linear imputation (no noise), every system solved to a relative residual of
    ``tolerance`` (at most ``max_iterations`` steps; default ``4 * (H + W)``). The default
    tolerance gives pixels within 6e-4 (mean 4e-5) of a float64 solve to 1e-11 on a photo at
    10-90% removed, far below the imputation noise (0.01)."""
    with full_precision(images):  # the solve in float32 (or 64) even under --precision bf16
        return _solve(images, removed, tolerance, max_iterations)


def _solve(images: Tensor, removed: Tensor, tolerance: float, max_iterations: int | None) -> Tensor:
    batch, channels, height, width = images.shape
    count = removed.shape[1]
    dtype = torch.promote_types(images.dtype, torch.float32)
    known = images.to(dtype)[:, None].expand(batch, count, channels, height, width).reshape(-1, 1, height, width)
    mask = removed[:, :, None].expand(batch, count, channels, height, width).reshape(-1, 1, height, width).to(dtype)
    grids = _grids(mask)
    fine = grids[0]

    rhs = mask * _neighbour_sum((1 - mask) * known)
    solution = mask * _pull_push(known, mask)
    limit = (tolerance * _dot(rhs, rhs).sqrt()).clamp(min=torch.finfo(dtype).tiny)
    # conjugate gradients preconditioned by a multigrid V-cycle, on the systems not yet
    # solved; every 4 steps the solved ones leave
    live = torch.arange(solution.shape[0], device=images.device)
    x = solution.clone()  # not a view: the compaction writes x back into solution
    residual = rhs - fine.apply(x)
    z = _v_cycle(grids, residual)
    direction, rz = z, _dot(residual, z)
    for step_number in range(max_iterations or 4 * (height + width)):
        active = _dot(residual, residual).sqrt() > limit[live]
        if step_number % 4 == 0:
            if not bool(active.any()):
                break
            if not bool(active.all()):  # compact: keep the unsolved systems only
                solution[live] = x
                keep = active.nonzero().squeeze(1)
                grids = [grid.take(keep) for grid in grids]
                fine = grids[0]
                live, x, residual, direction, rz, active = (
                    live[keep],
                    x[keep],
                    residual[keep],
                    direction[keep],
                    rz[keep],
                    active[keep],
                )
        product = fine.apply(direction)
        curvature = _dot(direction, product)
        step = torch.where(active & (curvature > 0), rz / torch.where(curvature > 0, curvature, 1), 0)
        x = x + step[:, None, None, None] * direction
        residual = residual - step[:, None, None, None] * product
        z = _v_cycle(grids, residual)
        rz_next = _dot(residual, z)
        beta = torch.where(rz > 0, rz_next / torch.where(rz > 0, rz, 1), 0)[:, None, None, None]
        direction = z + beta * direction
        rz = rz_next
    solution[live] = x
    filled = torch.where(mask > 0, solution, known)
    return filled.view(batch, count, channels, height, width).to(images.dtype)


def road_scores(
    probability: Callable[[Tensor, Tensor], Tensor],
    images: Tensor,
    maps: Tensor,
    classes: Tensor,
    percentages: Sequence[float],
    most_relevant_first: bool,
    noise: Tensor | None = None,
) -> Tensor:
    """``[B, P]``: the probability of ``classes`` on each image imputed at each percentage.

    ``probability(images[N, C, H, W], classes[N]) -> [N]``; ``noise[B, P, C, H, W]`` (already
    scaled by sigma) is added to the imputed pixels, ``None`` = no noise.
    """
    batch, channels, height, width = images.shape
    removed = removed_pixels(maps, percentages, most_relevant_first)
    imputed = linear_imputation(images, removed)
    if noise is not None:
        imputed = imputed + removed[:, :, None].to(imputed.dtype) * noise.to(imputed)
    count = len(percentages)
    scores = probability(imputed.reshape(batch * count, channels, height, width), classes.repeat_interleave(count))
    return scores.view(batch, count)


def curve_mean(scores: Tensor) -> Tensor:
    """The ROAD value of each sample: ``100 x`` the mean of its scores over the percentages."""
    return scores.float().mean(dim=1) * 100
