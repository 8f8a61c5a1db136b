"""Complexity, ADCC and the pointing games against hand-computed values and TorchRay's rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.metrics import SaliencyScorer
from benchmark.metrics.functional.complexity import adcc, complexity
from benchmark.metrics.functional.localization import energy_pointing_game, pointing_game
from benchmark.metrics.pointing_game import PointingGame


def test_complexity_by_hand():
    maps = torch.tensor([[[0.0, 1.0], [0.5, 0.5]], [[0.0, 0.0], [0.0, 0.2]]])
    torch.testing.assert_close(complexity(maps), torch.tensor([50.0, 5.0], dtype=torch.float64))


def test_adcc_by_hand():
    got = adcc(
        torch.tensor([80.0, 90.0, float("nan")]), torch.tensor([30.0, 100.0, 10.0]), torch.tensor([20.0, 5.0, 5.0])
    )
    expected = 3 / (1 / 0.8 + 1 / 0.7 + 1 / 0.8) * 100  # = 76.36...
    assert float(got[0]) == pytest.approx(expected, abs=1e-12)
    assert float(got[1]) == 0.0  # complexity 100: 1 - complexity = 0, the harmonic mean's limit
    assert math.isnan(float(got[2]))  # undefined coherency -> undefined ADCC


def _map_with_peak(row, col, size=40):
    maps = torch.zeros(1, size, size)
    maps[0, row, col] = 1.0
    return maps


@pytest.mark.parametrize(
    "box,hit",
    [
        ((12, 12, 16, 16), True),  # the peak (10, 10) lies outside, 2 px away
        ((13, 10, 20, 11), True),  # nearest box pixel (10, 13): distance 3 < tolerance 4
        ((14, 10, 20, 11), False),  # nearest box pixel (10, 14): distance 4, not < 4 (strict, as TorchRay)
        ((30, 30, 35, 35), False),
    ],
)
def test_pointing_game_tolerance_is_strict(box, hit):
    maps = _map_with_peak(10, 10)
    value = pointing_game(maps, [torch.tensor([box], dtype=torch.float64)], tolerance=4)
    assert float(value[0]) == (100.0 if hit else 0.0)


def test_pointing_game_multiple_boxes_and_no_box():
    maps = torch.cat([_map_with_peak(5, 5), _map_with_peak(30, 30), _map_with_peak(0, 0)])
    boxes = [
        torch.tensor([[20.0, 20.0, 25.0, 25.0], [4.0, 4.0, 7.0, 7.0]]),  # the second box holds the peak
        torch.tensor([[0.0, 0.0, 5.0, 5.0], [10.0, 10.0, 12.0, 12.0]]),  # both far
        None,  # no box: excluded and counted
    ]
    values = pointing_game(maps, boxes, tolerance=0.5)
    assert values[:2].tolist() == [100.0, 0.0] and math.isnan(float(values[2]))
    metric = PointingGame(tolerance=0.5)
    metric.update(torch.arange(3), maps, boxes)
    assert float(metric.compute()) == 50.0 and metric.undefined_count() == 1


def _torchray_pointing_game(saliency: np.ndarray, mask: np.ndarray, tolerance: float) -> float:
    """TorchRay's PointingGame.evaluate on one map, written from its documentation."""
    y, x = np.unravel_index(np.argmax(saliency), saliency.shape)
    v, u = np.meshgrid((np.arange(mask.shape[0]) - y) ** 2, (np.arange(mask.shape[1]) - x) ** 2, indexing="ij")
    return 100.0 if (mask & ((v + u) < tolerance**2)).any() else 0.0


def test_pointing_game_equals_torchray_rule_on_random_cases():
    rng = np.random.default_rng(0)
    maps = torch.from_numpy(rng.random((30, 32, 32)))
    boxes, masks = [], []
    for _ in range(30):
        count = int(rng.integers(1, 4))
        corners = rng.integers(0, 32, size=(count, 2, 2))
        xyxy = np.concatenate([corners.min(axis=1), corners.max(axis=1) + 1], axis=1)  # x1, y1, x2, y2
        mask = np.zeros((32, 32), dtype=bool)
        for x1, y1, x2, y2 in xyxy:
            mask[y1:y2, x1:x2] = True
        boxes.append(torch.tensor(xyxy, dtype=torch.float64))
        masks.append(mask)
    ours = pointing_game(maps, boxes, tolerance=6).numpy()
    expected = [_torchray_pointing_game(maps[i].numpy(), masks[i], 6) for i in range(30)]
    np.testing.assert_array_equal(ours, expected)
    assert 0 < np.mean(expected) < 100  # both hits and misses occur


def test_energy_game_by_hand_with_overlapping_boxes():
    maps = torch.zeros(2, 4, 4)
    maps[0] = torch.arange(16, dtype=torch.float32).view(4, 4)  # total mass 120
    boxes = [
        torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]),  # pixels (0,0),(0,1),(1,0),(1,1); union
        torch.tensor([[0.0, 0.0, 4.0, 4.0]]),  # an all-zero map: undefined
    ]
    values = energy_pointing_game(maps, boxes)
    assert float(values[0]) == pytest.approx((0 + 1 + 4 + 5) / 120 * 100)
    assert math.isnan(float(values[1]))


def test_scorer_extras_and_their_errors():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    images = torch.rand(3, 3, 8, 8)
    maps = torch.rand(3, 8, 8)
    with torch.no_grad():
        probs = model(images).softmax(-1)
    classes = probs.argmax(-1)
    base = probs.gather(1, classes[:, None])[:, 0]
    scorer = SaliencyScorer(
        n_steps=4, blur_kernel=3, blur_sigma=1.0, extra=["pointing_game", "adcc", "energy_pointing_game"], tolerance=1
    )
    assert scorer.keys[5:] == ("complexity", "adcc", "pointing_game", "energy_pointing_game")
    boxes = [torch.tensor([[0.0, 0.0, 8.0, 8.0]]), None, torch.tensor([[0.0, 0.0, 1.0, 1.0]])]
    out = scorer.update(model, lambda x, c: maps, torch.arange(3), images, maps, classes, base, boxes=boxes)
    assert out["pointing_game"][0] == 100.0 and math.isnan(float(out["pointing_game"][1]))
    torch.testing.assert_close(out["complexity"], complexity(maps).float())
    expected_adcc = adcc(out["coherency"].double(), out["complexity"].double(), out["avg_drop"].double())
    torch.testing.assert_close(out["adcc"].double(), expected_adcc, rtol=0, atol=1e-4)
    assert scorer.undefined_counts()["energy_pointing_game"] == 1
    with pytest.raises(BenchmarkError, match="extra"):
        SaliencyScorer(extra=["pointing"])
    with pytest.raises(BenchmarkError, match="bootstrap"):
        SaliencyScorer(bootstrap=0)
