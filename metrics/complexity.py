"""Complexity and ADCC metrics (Poppi et al. 2021, CVPR Workshops)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from benchmark.metrics.catalog import register_metric
from benchmark.metrics.functional.complexity import adcc, complexity
from benchmark.metrics.per_sample import PerSampleMetric


@register_metric("complexity", "Complexity")
class Complexity(PerSampleMetric):
    r"""Complexity in percent (lower is better).

    .. math:: \mathrm{Complexity} = \frac{1}{N} \sum_i \frac{1}{HW} \sum_{jk} |M_{i,jk}| \cdot 100

    Poppi et al., "Revisiting The Evaluation of Class Activation Mapping for Explainability:
    A Novel Metric and Experimental Analysis", CVPR Workshops 2021.
    """

    higher_is_better = False
    needs = ("maps",)

    def update(self, sample_ids: Tensor | Sequence[int], maps: Tensor) -> None:
        """Add the maps ``M[B, H, W]`` of samples ``sample_ids[B]``."""
        self._store(sample_ids, complexity(maps))


@register_metric("adcc", "ADCC")
class ADCC(PerSampleMetric):
    r"""ADCC in percent (higher is better): per image the harmonic mean of Coherency,
    1 - Complexity and 1 - Average Drop (as fractions), averaged over images.

    .. math:: \mathrm{ADCC}_i = 3 \Big( \frac{1}{\mathrm{Coh}_i} + \frac{1}{1 - \mathrm{Com}_i}
              + \frac{1}{1 - \mathrm{AD}_i} \Big)^{-1}

    Undefined (left out, counted) where Coherency is. Poppi et al., CVPR Workshops 2021.
    """

    higher_is_better = True
    needs = {"coherency": "coherency", "complexity": "complexity", "average_drop": "avg_drop"}

    def update(
        self, sample_ids: Tensor | Sequence[int], coherency: Tensor, complexity: Tensor, average_drop: Tensor
    ) -> None:
        """Add per-sample Coherency, Complexity and Average Drop (percent, ``[B]`` each)."""
        self._store(sample_ids, adcc(coherency, complexity, average_drop))
