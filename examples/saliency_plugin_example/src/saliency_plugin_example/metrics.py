"""A metric from outside the benchmark: the Sparseness (Gini index) of each map."""

import torch

from benchmark.metrics import PerSampleMetric


def sparseness(maps: torch.Tensor) -> torch.Tensor:
    """Gini index of each map's values in percent: 100 * sum_i (2i - n - 1) a_(i) / (n sum_i a_i),
    a_(1) <= ... <= a_(n) the sorted |values|; 0 for a constant map, 100 for one bright pixel."""
    values = maps.flatten(1).abs().sort(dim=1).values.double()
    n = values.shape[1]
    ranks = torch.arange(1, n + 1, dtype=values.dtype, device=values.device)
    total = values.sum(dim=1)
    gini = ((2 * ranks - n - 1) * values).sum(dim=1) / (n * total)
    return torch.where(total > 0, 100 * gini, torch.full_like(gini, float("nan"))).float()


class Sparseness(PerSampleMetric):
    """Sparseness (higher is better): the Gini index of the map, Chalasani et al. 2020, "Concise
    explanations of neural networks using adversarial training" (ICML); as Quantus's Sparseness."""

    higher_is_better = True
    title = "Sparseness"
    needs = ("maps",)

    def update(self, sample_ids, maps: torch.Tensor) -> None:
        self._store(sample_ids, sparseness(maps))
