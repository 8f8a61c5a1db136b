"""Pointing Game and energy-based pointing game (need bounding boxes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from benchmark.core.errors import BenchmarkError
from benchmark.metrics.catalog import register_metric
from benchmark.metrics.functional.localization import Boxes, energy_pointing_game, pointing_game
from benchmark.metrics.options import MetricOptions
from benchmark.metrics.per_sample import PerSampleMetric


@dataclass
class PointingOptions(MetricOptions):
    """The Pointing Game's option (``--metrics.tolerance``)."""

    tolerance: float = field(
        default=15,
        metadata={
            "help": "pointing game: a hit is a box pixel closer than this many pixels of the 224x224 map to the "
            "map's maximum (TorchRay: 15)"
        },
    )

    def validate(self) -> None:
        tolerance = self.tolerance
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
            raise BenchmarkError(f"--metrics.tolerance must be a number of pixels >= 0, got {tolerance!r}")


@register_metric("pointing_game", "Pointing Game")
class PointingGame(PerSampleMetric):
    r"""Pointing Game accuracy in percent (higher is better).

    .. math:: \mathrm{PG} = \frac{1}{N} \sum_i [\exists (j,k) \in B_i:
              (j - y_i)^2 + (k - x_i)^2 < t^2] \cdot 100

    ``(y_i, x_i)`` = the maximum of map i, ``B_i`` = its box pixels, ``t`` = the tolerance
    (15 px, as TorchRay). Images without a box are left out and counted. Zhang et al.,
    "Top-down Neural Attention by Excitation Backprop", IJCV 2018.
    """

    higher_is_better = True
    needs = ("maps", "boxes")
    options_class = PointingOptions

    def __init__(self, tolerance: float = 15, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tolerance = tolerance

    def update(self, sample_ids: Tensor | Sequence[int], maps: Tensor, boxes: Boxes) -> None:
        """Add ``maps[B, H, W]`` with each sample's boxes (``[K, 4]`` tensors or ``None``)."""
        self._store(sample_ids, pointing_game(maps, boxes, self.tolerance))


@register_metric("energy_pointing_game", "Energy PG")
class EnergyPointingGame(PerSampleMetric):
    r"""Energy-based pointing game in percent (higher is better).

    .. math:: \mathrm{EPG} = \frac{1}{N} \sum_i \frac{\sum_{jk} M_{i,jk} B_{i,jk}}{\sum_{jk} M_{i,jk}} \cdot 100

    ``B_i`` = the union of the image's boxes as a 0/1 mask. Images without a box (or with an
    all-zero map) are left out and counted. Wang et al., "Score-CAM: Score-Weighted Visual
    Explanations for Convolutional Neural Networks", CVPR Workshops 2020.
    """

    higher_is_better = True
    needs = ("maps", "boxes")

    def update(self, sample_ids: Tensor | Sequence[int], maps: Tensor, boxes: Boxes) -> None:
        """Add ``maps[B, H, W]`` with each sample's boxes (``[K, 4]`` tensors or ``None``)."""
        self._store(sample_ids, energy_pointing_game(maps, boxes))
