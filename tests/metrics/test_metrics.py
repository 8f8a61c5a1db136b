"""Average Drop / Increase, Coherency and the per-sample metric base, checked against values
worked out by hand and against grad-cam's independent implementation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.metrics import AverageDrop, AverageIncrease, Coherency, Deletion, Insertion
from benchmark.metrics.functional import average_drop, average_increase, coherency, pearson

# --- Average Drop / Average Increase ------------------------------------------------------

# Y = prob. of c on x, O = prob. of c on x * M. Sample 2's score rises, sample 1's is equal.
Y = torch.tensor([0.8, 0.5, 0.4, 0.6])
O = torch.tensor([0.2, 0.5, 0.6, 0.45])  # noqa: E741 (the papers' name for the score on x * M)


def test_average_drop_by_hand():
    # 0.6 / 0.8 = 75 %, equal = 0, rise = 0 (not negative), 0.15 / 0.6 = 25 %.
    torch.testing.assert_close(average_drop(Y, O), torch.tensor([75.0, 0.0, 0.0, 25.0]))


def test_average_increase_by_hand_is_strict():
    torch.testing.assert_close(average_increase(Y, O), torch.tensor([0.0, 0.0, 100.0, 0.0]))


def test_confidence_metric_classes_average_by_hand():
    drop, increase = AverageDrop(), AverageIncrease()
    drop.update(torch.arange(2), Y[:2], O[:2])
    drop.update(torch.arange(2, 4), Y[2:], O[2:])
    increase.update(torch.arange(4), Y, O)
    assert drop.compute().item() == pytest.approx(25.0)  # (75 + 0 + 0 + 25) / 4
    assert increase.compute().item() == pytest.approx(25.0)  # one rise in four
    assert AverageDrop.higher_is_better is False and AverageIncrease.higher_is_better is True


def test_confidence_shapes_must_match():
    with pytest.raises(ValueError):
        average_drop(Y, O[:3])


def test_against_grad_cam_confidence_change():
    """grad-cam's DropInConfidence is the absolute drop max(0, Y - O): ours * Y / 100."""
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)).eval()
    images = torch.rand(8, 3, 4, 4)
    maps = torch.rand(8, 4, 4)
    maps[0] = 1.0  # x * M = x: O == Y exactly, neither drop nor increase
    with torch.no_grad():
        probs = model(images).softmax(-1)
        classes = probs.argmax(-1)
        base = probs.gather(1, classes[:, None])[:, 0]
        # Maps of samples 1-3 keep only the pixels that favour c over the mean class: c rises.
        weights = model[1].weight.view(5, 3, 4, 4)
        favour = ((weights[classes] - weights.mean(0)) * images).sum(1)
        maps[1:4] = (favour[1:4] > 0).float()
        expl = model(images * maps[:, None]).softmax(-1).gather(1, classes[:, None])[:, 0]
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes]
    their_drop = DropInConfidence()(images, maps.numpy(), targets, model)
    their_increase = IncreaseInConfidence()(images, maps.numpy(), targets, model)

    ours_increase = average_increase(base, expl) / 100
    assert 0 < ours_increase.sum() < len(images) - 1  # the case has rises and drops
    np.testing.assert_allclose(average_drop(base, expl) * base / 100, their_drop, atol=1e-6)
    np.testing.assert_array_equal(ours_increase.numpy(), their_increase)
    assert their_drop[0] == 0 and their_increase[0] == 0


# --- Coherency ------------------------------------------------------------------------------

A = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
SWAPPED = torch.tensor([[1.0, 3.0], [2.0, 4.0]])


def test_pearson_by_hand():
    # Centred: a = (-1.5, -.5, .5, 1.5), b = (-1.5, .5, -.5, 1.5): cov 4, var 5 -> r = 0.8.
    maps = torch.stack([A, A, A, A])
    others = torch.stack([A, -A, 2 * A + 1, SWAPPED])
    torch.testing.assert_close(pearson(maps, others), torch.tensor([1.0, -1.0, 1.0, 0.8], dtype=torch.float64))
    torch.testing.assert_close(coherency(maps, others), torch.tensor([100.0, 0.0, 100.0, 90.0], dtype=torch.float64))


def test_pearson_of_a_constant_map_is_nan():
    constant = torch.full((1, 224, 224), 0.1)  # float32 0.1: no rounding noise may leak in
    varied = torch.rand(1, 224, 224)
    assert torch.isnan(pearson(constant, varied)).all()
    assert torch.isnan(pearson(varied, constant)).all()
    assert torch.isnan(coherency(constant, constant)).all()
    # float64 0.3 x 49: the mean is one rounding off 0.3, so the centred map is not all zero
    rounded = torch.full((1, 7, 7), 0.3, dtype=torch.float64)
    assert (rounded - rounded.mean()).abs().max() > 0
    assert torch.isnan(pearson(rounded, torch.rand(1, 7, 7, dtype=torch.float64))).all()


def test_coherency_metric_counts_undefined_and_leaves_them_out():
    metric = Coherency()
    maps = torch.stack([A, A, A])
    others = torch.stack([A, SWAPPED, torch.full_like(A, 0.5)])
    metric.update(torch.tensor([0, 1, 2]), maps, others)
    assert metric.compute().item() == pytest.approx(95.0)  # (100 + 90) / 2, not / 3
    assert metric.undefined_count() == 1
    ids, values = metric.per_sample()
    assert ids.tolist() == [0, 1, 2] and torch.isnan(values[2])


def test_coherency_against_grad_cam_arcc():
    """grad-cam's arcc.Coherency: same (pearson + 1) / 2, but 0.5 for a constant map (ours NaN)."""
    from pytorch_grad_cam.metrics.arcc import Coherency as GradCamCoherency

    torch.manual_seed(1)
    images = torch.rand(5, 3, 6, 6)
    maps = torch.rand(5, 6, 6)
    maps[4] = 0.5  # constant map

    def method(x: torch.Tensor) -> torch.Tensor:  # some deterministic, non-linear "method"
        return (x[:, 0] * x[:, 1] + x[:, 2].square()) / 2

    def base_method(input_tensor, targets):  # grad-cam calls the CAM object like this
        return method(input_tensor).numpy()

    theirs = GradCamCoherency()(images, maps.numpy(), [None] * 5, None, base_method)
    ours = coherency(maps, method(images * maps[:, None]))
    np.testing.assert_allclose(ours[:4].numpy(), theirs[:4] * 100, atol=1e-4)
    assert theirs[4] == pytest.approx(0.5) and torch.isnan(ours[4])
    assert 1 < np.ptp(theirs[:4] * 100)  # a real spread of values, not all equal

    metric = Coherency()
    metric.update(torch.arange(5), maps, method(images * maps[:, None]))
    assert metric.undefined_count() == 1
    assert metric.compute().item() == pytest.approx(float(np.mean(theirs[:4])) * 100, abs=1e-4)


# --- PerSampleMetric ------------------------------------------------------------------------


def test_repeated_ids_keep_the_first_value_and_sort():
    metric = AverageDrop()
    # drops 50, 0 then 50, 0
    metric.update(torch.tensor([3, 1]), torch.tensor([0.5, 0.8]), torch.tensor([0.25, 0.8]))
    metric.update(torch.tensor([1, 2]), torch.tensor([1.0, 0.5]), torch.tensor([0.5, 0.5]))
    ids, values = metric.per_sample()
    assert ids.dtype == torch.long and ids.tolist() == [1, 2, 3]
    assert values.tolist() == [0.0, 0.0, 50.0]  # id 1 keeps its first value, 0
    assert metric.compute().item() == pytest.approx(50 / 3)


def test_empty_metric_is_nan():
    metric = AverageIncrease()
    with pytest.warns(UserWarning):  # torchmetrics: compute before update
        assert math.isnan(metric.compute().item())
    ids, values = metric.per_sample()
    assert ids.numel() == 0 and values.numel() == 0
    assert metric.undefined_count() == 0
    assert Insertion().mean_curve().numel() == 0


def test_all_undefined_is_nan():
    metric = Coherency()
    metric.update([0, 1], torch.stack([A, A]), torch.zeros(2, 2, 2))
    assert math.isnan(metric.compute().item()) and metric.undefined_count() == 2


def test_states_are_float32_and_one_dimensional():
    """A rank without update() gathers an empty float32 1-D tensor: every state must match."""
    metric = Insertion()
    metric.update(torch.tensor([5, 6]), torch.rand(2, 4, dtype=torch.float64))
    for name in ("sample_ids", "values", "curves"):
        state = getattr(metric, name)[0]
        assert state.dtype == torch.float32 and state.ndim == 1, name


def test_sample_id_checks():
    metric = AverageDrop()
    with pytest.raises(BenchmarkError):
        metric.update(torch.tensor([2**24]), torch.tensor([0.5]), torch.tensor([0.5]))
    with pytest.raises(ValueError):
        metric.update(torch.tensor([0.0]), torch.tensor([0.5]), torch.tensor([0.5]))
    with pytest.raises(ValueError):
        metric.update(torch.tensor([-1]), torch.tensor([0.5]), torch.tensor([0.5]))
    metric.update(torch.tensor([2**24 - 1]), torch.tensor([0.5]), torch.tensor([0.25]))
    assert metric.per_sample()[0].tolist() == [2**24 - 1]  # exact in float32


def test_reset_forgets_everything():
    metric = Deletion()
    metric.update([0], torch.tensor([[1.0, 0.0]]))
    metric.reset()
    metric.update([0], torch.tensor([[1.0, 1.0, 1.0]]))  # another curve length is fine now
    assert metric.compute().item() == pytest.approx(100.0)


def _two_rank_sync(other: dict[str, torch.Tensor]):
    """A dist_sync_fn that pretends rank 1 holds ``other`` (gathered in state order)."""
    queue = itertools.cycle(list(other.values()))

    def gather(tensor, group=None):
        return [tensor, next(queue)]

    return dict(dist_sync_fn=gather, distributed_available_fn=lambda: True)


def test_gathered_states_rank_order_padding_and_empty_rank():
    # Rank 0 holds ids 3, 1; rank 1 holds 0, 2 and a padded repeat of 3 (another value).
    curves0 = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # AUCs 50, 100
    rank1 = {
        "sample_ids": torch.tensor([0.0, 2.0, 3.0]),
        "values": torch.tensor([0.0, 25.0, 99.0]),
        "curves": torch.tensor([0.0, 0.0, 0.5, 0.0, 9.0, 9.0]),
    }
    metric = Insertion(**_two_rank_sync(rank1))
    metric.update(torch.tensor([3, 1]), curves0)
    ids, values = metric.per_sample()
    assert ids.tolist() == [0, 1, 2, 3] and values.tolist() == [0.0, 100.0, 25.0, 50.0]
    assert metric.compute().item() == pytest.approx(175 / 4)
    torch.testing.assert_close(metric.mean_curve(), torch.tensor([2.5 / 4, 1.0 / 4]))
    # The local state is restored after each gather.
    assert len(metric.sample_ids) == 1 and metric.sample_ids[0].tolist() == [3.0, 1.0]

    # Rank 0 never updated: torchmetrics sends an empty float32 1-D tensor for each state.
    empty = Insertion(**_two_rank_sync(rank1))
    assert empty.per_sample()[0].tolist() == [0, 2, 3]
    torch.testing.assert_close(empty.mean_curve(), torch.tensor([9.5 / 3, 9.0 / 3]))
