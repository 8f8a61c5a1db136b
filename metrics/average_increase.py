"""Average Increase metric (Chattopadhyay et al. 2018, Grad-CAM++, WACV)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from benchmark.metrics.catalog import register_metric
from benchmark.metrics.functional.confidence import average_increase
from benchmark.metrics.per_sample import PerSampleMetric


@register_metric("avg_increase", "Avg Increase")
class AverageIncrease(PerSampleMetric):
    r"""Average Increase in Confidence in percent (higher is better).

    .. math:: \mathrm{AI} = \frac{1}{N} \sum_i [O_i > Y_i] \cdot 100

    ``Y_i`` = softmax probability of the top-1 class c on x_i, ``O_i`` = probability of c on
    x_i * M_i; the comparison is strict. Chattopadhyay et al., "Grad-CAM++: Generalized
    Gradient-Based Visual Explanations for Deep Convolutional Networks", WACV 2018.
    """

    higher_is_better = True
    needs = ("base_prob", "explanation_prob")

    def update(self, sample_ids: Tensor | Sequence[int], base_prob: Tensor, explanation_prob: Tensor) -> None:
        """Add ``Y = base_prob[B]`` and ``O = explanation_prob[B]`` of samples ``sample_ids[B]``."""
        self._store(sample_ids, average_increase(base_prob, explanation_prob))
