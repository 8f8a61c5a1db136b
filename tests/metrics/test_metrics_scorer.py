"""SaliencyScorer end to end on a tiny linear classifier and a gradient-x-input "method"."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.metrics import HIGHER_IS_BETTER, METRIC_KEYS, SaliencyScorer
from benchmark.metrics.functional import (
    average_drop,
    average_increase,
    coherency,
    curve_auc,
    insertion_deletion_curves,
    minmax_normalize,
)

KEYS = ["avg_drop", "avg_increase", "coherency", "insertion", "deletion"]


def _setup(seed=0, batch=4):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)).eval()
    weights = model[1].weight.detach().view(5, 3, 4, 4)
    grad_modes: list[bool] = []

    def explain_fn(images, classes):  # a method that knows nothing of the metrics
        grad_modes.append(torch.is_grad_enabled())
        return minmax_normalize((weights[classes] * images).sum(1))

    images = torch.rand(batch, 3, 4, 4)
    with torch.no_grad():
        probs = model(images).softmax(-1)
    classes = probs.argmax(-1)
    base = probs.gather(1, classes[:, None])[:, 0]
    maps = explain_fn(images, classes)
    maps[-1] = 0.0  # x * M = 0: the map of a black image is constant -> coherency undefined
    return model, explain_fn, images, maps, classes, base, grad_modes


def _score_fn(model):
    def score(x):
        with torch.no_grad():
            return model(x).softmax(-1)

    return score


OPTIONS = dict(n_steps=5, chunk_size=7, blur_kernel=3, blur_sigma=1.0)


def test_scorer_equals_the_functional_metrics():
    model, explain_fn, images, maps, classes, base, grad_modes = _setup()
    scorer = SaliencyScorer(**OPTIONS)
    out = scorer.update(model, explain_fn, torch.arange(4), images, maps, classes, base)
    assert list(out) == KEYS == list(METRIC_KEYS) == list(HIGHER_IS_BETTER)[: len(KEYS)]
    assert all(v.shape == (4,) and v.device.type == "cpu" for v in out.values())
    assert grad_modes == [True, True]  # explain_fn runs with grad mode as it is

    explanation = images * maps[:, None]
    with torch.no_grad():
        o = model(explanation).softmax(-1).gather(1, classes[:, None])[:, 0]
    torch.testing.assert_close(out["avg_drop"], average_drop(base, o))
    torch.testing.assert_close(out["avg_increase"], average_increase(base, o))
    expected_coherency = coherency(maps, explain_fn(explanation, classes)).float()
    torch.testing.assert_close(out["coherency"], expected_coherency, equal_nan=True)
    assert torch.isnan(out["coherency"][-1]) and torch.isfinite(out["coherency"][:-1]).all()
    ins, dele = insertion_deletion_curves(_score_fn(model), images, maps, classes, **OPTIONS)
    torch.testing.assert_close(out["insertion"], curve_auc(ins))
    torch.testing.assert_close(out["deletion"], curve_auc(dele))

    # the means, counts and curves
    values = scorer.compute()
    assert list(values) == KEYS and all(isinstance(v, float) for v in values.values())
    for key in KEYS:
        assert values[key] == pytest.approx(float(np.nanmean(out[key].numpy())), rel=1e-6)
    assert scorer.undefined_counts() == {key: int(key == "coherency") for key in KEYS}
    curves = scorer.mean_curves()
    assert list(curves) == ["insertion", "deletion"]
    torch.testing.assert_close(curves["insertion"], ins.mean(0))
    torch.testing.assert_close(curves["deletion"], dele.mean(0))
    per_sample = scorer.per_sample()
    assert list(per_sample) == KEYS
    assert per_sample["deletion"][0].tolist() == [0, 1, 2, 3]


def test_scorer_against_grad_cam_confidence_change():
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, explain_fn, images, maps, classes, base, _ = _setup(seed=2, batch=6)
    out = SaliencyScorer(**OPTIONS).update(model, explain_fn, range(6), images, maps, classes, base)
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes]
    their_drop = DropInConfidence()(images, maps.numpy(), targets, model)
    their_increase = IncreaseInConfidence()(images, maps.numpy(), targets, model)
    np.testing.assert_allclose(out["avg_drop"] * base / 100, their_drop, atol=1e-6)
    np.testing.assert_array_equal(out["avg_increase"].numpy() / 100, their_increase)
    assert their_drop.max() > 0.01


def test_scorer_accumulates_across_batches_and_resets():
    model, explain_fn, images, maps, classes, base, _ = _setup()
    scorer = SaliencyScorer(**OPTIONS)
    head, tail = slice(0, 2), slice(2, 4)
    first = scorer.update(model, explain_fn, [4, 5], images[head], maps[head], classes[head], base[head])
    second = scorer.update(model, explain_fn, [0, 1], images[tail], maps[tail], classes[tail], base[tail])
    whole = SaliencyScorer(**OPTIONS)
    expected = whole.update(model, explain_fn, [4, 5, 0, 1], images, maps, classes, base)
    for key in KEYS:
        joined = torch.cat([first[key], second[key]])
        torch.testing.assert_close(joined, expected[key], equal_nan=True)
    assert scorer.compute() == pytest.approx(whole.compute())
    ids, values = scorer.per_sample()["insertion"]
    assert ids.tolist() == [0, 1, 4, 5]
    torch.testing.assert_close(values, torch.cat([second["insertion"], first["insertion"]]))

    scorer.reset()
    assert scorer.per_sample()["avg_drop"][0].numel() == 0
    with pytest.warns(UserWarning):
        assert all(math.isnan(v) for v in scorer.compute().values())


def test_scorer_max_class_option():
    model, explain_fn, images, maps, classes, base, _ = _setup()
    out = SaliencyScorer(score="max_class", **OPTIONS).update(
        model, explain_fn, torch.arange(4), images, maps, classes, base
    )
    ins, dele = insertion_deletion_curves(_score_fn(model), images, maps, classes, score="max_class", **OPTIONS)
    torch.testing.assert_close(out["insertion"], curve_auc(ins))
    torch.testing.assert_close(out["deletion"], curve_auc(dele))
    original = SaliencyScorer(**OPTIONS).update(model, explain_fn, torch.arange(4), images, maps, classes, base)
    assert (out["insertion"] >= original["insertion"]).all()
    assert (out["insertion"] > original["insertion"] + 1e-3).any()


def test_scorer_option_checks():
    with pytest.raises(BenchmarkError):
        SaliencyScorer(score="top1")
    for bad in (dict(chunk_size=0), dict(n_steps=0), dict(blur_kernel=4), dict(blur_sigma=-1.0)):
        with pytest.raises(BenchmarkError):
            SaliencyScorer(**bad)
    scorer = SaliencyScorer()
    assert isinstance(scorer.metrics["avg_drop"], torch.nn.Module)
    assert len(list(scorer.children())) == 1 and len(scorer.metrics) == 5
