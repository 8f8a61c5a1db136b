"""Coherency metric (Poppi et al. 2021, CVPR Workshops)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from benchmark.metrics.catalog import register_metric
from benchmark.metrics.functional.coherency import coherency
from benchmark.metrics.per_sample import PerSampleMetric


@register_metric("coherency", "Coherency")
class Coherency(PerSampleMetric):
    r"""Coherency in percent (higher is better).

    .. math:: \mathrm{Coherency} = \frac{1}{N} \sum_i \frac{\rho(M_i, M'_i) + 1}{2} \cdot 100

    ``rho`` = Pearson correlation, ``M_i`` = the method's map of x_i, ``M'_i`` = the same
    method's map of x_i * M_i for the same class. Pearson is undefined when a map is constant:
    such samples are counted (``undefined_count()``) and left out of the mean (grad-cam's
    ``benchmark.metrics.arcc.Coherency`` gives them 50 instead). Poppi et al., "Revisiting The Evaluation
    of Class Activation Mapping for Explainability: A Novel Metric and Experimental Analysis",
    CVPR Workshops 2021.
    """

    higher_is_better = True
    needs = ("maps", "maps_of_explanation")

    def method_calls(self) -> int:
        return 1  # the method on x * M

    def update(self, sample_ids: Tensor | Sequence[int], maps: Tensor, maps_of_explanation: Tensor) -> None:
        """Add the maps ``M[B, H, W]`` and ``M'[B, H, W]`` of samples ``sample_ids[B]``."""
        self._store(sample_ids, coherency(maps, maps_of_explanation))
