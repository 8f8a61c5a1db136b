"""Spearman's rank correlation of maps (metrics/functional/similarity.py) against scipy's, ties
and constant maps included, and by hand on a tiny case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from benchmark.metrics.functional.similarity import average_ranks, spearman


def test_average_ranks_by_hand():
    values = torch.tensor([[3.0, 1.0, 3.0, 0.0, 1.0]])
    # sorted: 0 (rank 0), 1, 1 (ranks 1, 2 -> 1.5), 3, 3 (ranks 3, 4 -> 3.5)
    assert average_ranks(values).tolist() == [[3.5, 1.5, 3.5, 0.0, 1.5]]


def test_spearman_by_hand_and_its_extremes():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert spearman(a, a * 10).item() == pytest.approx(1.0)
    assert spearman(a, -a).item() == pytest.approx(-1.0)
    # ranks 0..3 against 1, 0, 3, 2: d = (1, 1, 1, 1), rho = 1 - 6 * 4 / (4 * 15) = 0.6
    assert spearman(a, torch.tensor([[2.0, 1.0, 4.0, 3.0]])).item() == pytest.approx(0.6)
    assert math.isnan(spearman(a, torch.ones(1, 4)).item())


def test_spearman_equals_scipys_on_maps_with_ties():
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(5, 12, 12, generator=generator)
    b = a + 0.3 * torch.rand(5, 12, 12, generator=generator)
    a[:, :4] = 0.0  # a ReLU'd map: many ties at zero
    b = torch.round(b * 4) / 4  # coarse values: ties everywhere
    ours = spearman(a, b)
    for row in range(5):
        expected = stats.spearmanr(a[row].flatten().numpy(), b[row].flatten().numpy()).statistic
        assert ours[row].item() == pytest.approx(float(expected), abs=1e-12)
    assert np.isfinite(ours.numpy()).all()
