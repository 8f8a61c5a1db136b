"""Insertion and Deletion metrics (Petsiuk et al. 2018, RISE, BMVC)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from benchmark.metrics.catalog import register_metric
from benchmark.metrics.functional.insertion_deletion import curve_auc
from benchmark.metrics.per_sample import PerSampleCurveMetric


class _CurveMetric(PerSampleCurveMetric):
    """Area under per-sample curves ``[S + 1]`` (kept for :meth:`mean_curve`)."""

    def update(self, sample_ids: Tensor | Sequence[int], curves: Tensor) -> None:
        """Add ``curves[B, S + 1]`` (from ``insertion_deletion_curves``) of ``sample_ids[B]``."""
        self._store(sample_ids, curve_auc(curves), curves=curves)


@register_metric("insertion", "Insertion")
class Insertion(_CurveMetric):
    r"""Insertion AUC in percent (higher is better).

    Start from the blurred image and put back the original pixels, most salient first, in S
    steps; the curve is the probability of class c (or the top probability) at steps 0..S:

    .. math:: \mathrm{AUC} = \frac{100}{S} \Big( \sum_{k=0}^{S} p_k - \frac{p_0 + p_S}{2} \Big)

    Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models",
    BMVC 2018.
    """

    higher_is_better = True
    needs = {"curves": "insertion_curves"}


@register_metric("deletion", "Deletion")
class Deletion(_CurveMetric):
    r"""Deletion AUC in percent (lower is better).

    Start from the image and replace its pixels, most salient first, by the blurred image in
    S steps; the curve is the probability of class c (or the top probability) at steps 0..S:

    .. math:: \mathrm{AUC} = \frac{100}{S} \Big( \sum_{k=0}^{S} p_k - \frac{p_0 + p_S}{2} \Big)

    Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models",
    BMVC 2018.
    """

    higher_is_better = False
    needs = {"curves": "deletion_curves"}
