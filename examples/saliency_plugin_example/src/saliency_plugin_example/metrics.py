"""A metric from outside the benchmark: the Sparseness (Gini index) of each map."""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from benchmark.metrics import MetricOptions, PerSampleMetric


def sparseness(maps: torch.Tensor, pool: int = 1) -> torch.Tensor:
    """Gini index of each map's values in percent: 100 * sum_i (2i - n - 1) a_(i) / (n sum_i a_i),
    a_(1) <= ... <= a_(n) the sorted |values|; 0 for a constant map, 100 for one bright pixel.
    With ``pool`` > 1 the map is first averaged over ``pool`` x ``pool`` blocks (a coarser map)."""
    if pool > 1:
        maps = F.avg_pool2d(maps[:, None], pool)[:, 0]
    values = maps.flatten(1).abs().sort(dim=1).values.double()
    n = values.shape[1]
    ranks = torch.arange(1, n + 1, dtype=values.dtype, device=values.device)
    total = values.sum(dim=1)
    gini = ((2 * ranks - n - 1) * values).sum(dim=1) / (n * total)
    return torch.where(total > 0, 100 * gini, torch.full_like(gini, float("nan"))).float()


@dataclass
class SparsenessOptions(MetricOptions):
    sparseness_pool: int = field(
        default=1, metadata={"help": "Sparseness: side of the blocks the map is averaged over first (1: each pixel)"}
    )

    def validate(self) -> None:
        if self.sparseness_pool < 1:
            raise ValueError(f"--metrics.sparseness_pool must be >= 1, got {self.sparseness_pool}")


class Sparseness(PerSampleMetric):
    """Sparseness (higher is better): the Gini index of the map, Chalasani et al. 2020, "Concise
    explanations of neural networks using adversarial training" (ICML); as Quantus's Sparseness."""

    higher_is_better = True
    title = "Sparseness"
    needs = ("maps",)
    options_class = SparsenessOptions  # --metrics.sparseness_pool

    def __init__(self, sparseness_pool: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pool = sparseness_pool

    def update(self, sample_ids, maps: torch.Tensor) -> None:
        self._store(sample_ids, sparseness(maps, self.pool))
