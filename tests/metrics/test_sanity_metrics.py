"""The random logit test and max-sensitivity: by hand on tiny cases, max-sensitivity against
Captum's ``sensitivity_max`` on the same inputs and perturbations, the per-sample seeding, the
methods for which the random logit test does not apply, and the options' one-line errors."""

from __future__ import annotations

import pytest
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.metrics import SaliencyScorer
from benchmark.metrics.functional.similarity import spearman
from benchmark.metrics.max_sensitivity import MaxSensitivity, perturbations
from benchmark.metrics.random_logit import RandomLogit, other_classes


def _maps_of(images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
    """A toy explainer: a smooth function of the image (and of the class, when given)."""
    maps = images.mean(dim=1).pow(2)
    if classes is not None:
        maps = maps + 0.1 * classes.float()[:, None, None] * images[:, 0]
    return maps


def test_other_classes_are_never_the_class_and_are_seeded_per_sample():
    classes = torch.tensor([3, 0, 9, 9])
    drawn = other_classes([5, 6, 7, 8], classes, 10)
    assert (drawn != classes).all() and ((drawn >= 0) & (drawn < 10)).all()
    assert other_classes([7], classes[2:3], 10).tolist() == drawn[2:3].tolist()  # batch-independent
    many = other_classes(list(range(2000)), torch.zeros(2000, dtype=torch.long), 4)
    assert set(many.tolist()) == {1, 2, 3}  # uniform over the others, never class 0


def test_random_logit_is_the_spearman_correlation_with_the_other_class_map():
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    classes = torch.tensor([1, 2, 3])
    maps = _maps_of(images, classes)
    metric = RandomLogit()
    metric.update([0, 1, 2], maps=maps, images=images, classes=classes, method=_maps_of, class_count=10)
    other = other_classes([0, 1, 2], classes, 10)
    expected = 100 * spearman(maps, _maps_of(images, other))
    torch.testing.assert_close(metric.values[-1], expected.float())
    # a map that ignores the class: the same map for every class, correlation 100
    same = RandomLogit()
    same.update(
        [0, 1, 2],
        maps=_maps_of(images),
        images=images,
        classes=classes,
        method=lambda x, c: _maps_of(x),
        class_count=10,
    )
    torch.testing.assert_close(same.values[-1], torch.full((3,), 100.0))


def test_max_sensitivity_by_hand_on_a_linear_explainer():
    """E(x) = 2 x (one channel): the change is 2 ||d'|| where d' is the clamped perturbation."""
    images = torch.full((1, 1, 2, 2), 0.5)
    metric = MaxSensitivity(sensitivity_samples=3, sensitivity_radius=0.1)
    metric.update([4], maps=2 * images[:, 0], images=images, method=lambda x, c: 2 * x[:, 0])
    perturbed = perturbations([4], images, 3, 0.1)  # [3, 1, 1, 2, 2]
    by_hand = max(float((2 * (p - images)).norm() / (2 * images).norm()) for p in perturbed)
    assert metric.values[-1].item() == pytest.approx(100 * by_hand, rel=1e-5)
    assert (perturbed - images).abs().max() <= 0.1 and (perturbed - images).abs().max() > 0.05


def test_max_sensitivity_equals_captums_sensitivity_max_on_the_same_perturbations():
    from captum.metrics import sensitivity_max

    images = torch.rand(4, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    ids = [10, 11, 12, 13]
    samples, radius = 5, 0.05
    ours = MaxSensitivity(sensitivity_samples=samples, sensitivity_radius=radius)
    ours.update(ids, maps=_maps_of(images), images=images, method=lambda x, c: _maps_of(x))
    drawn = perturbations(ids, images, samples, radius)  # [N, B, ...] -> Captum's order [B * N]

    def explanation(x):  # Captum hands the inputs over as a tuple and wants a tuple back
        return (_maps_of(x[0] if isinstance(x, tuple) else x),)

    theirs = sensitivity_max(
        explanation, images, perturb_func=lambda x: drawn.transpose(0, 1).flatten(0, 1), n_perturb_samples=samples
    )
    torch.testing.assert_close(ours.values[-1], 100 * theirs.float(), rtol=1e-5, atol=1e-5)


def test_the_random_logit_test_is_not_applicable_to_class_independent_methods():
    from benchmark.methods import get_method
    from tests.methods.test_cam import _tiny

    for name in ("random", "eigencam"):
        method = get_method(name)(_tiny(), scorer=SaliencyScorer(extra=["random_logit"]))
        assert (
            method.scorer.not_computable["random_logit"] == f"not applicable: {name}'s maps do not depend on the class"
        )
    lots = get_method("lots")(_tiny(), scorer=SaliencyScorer(extra=["random_logit", "max_sensitivity"]))
    assert "random_logit" in lots.scorer.not_computable and "max_sensitivity" not in lots.scorer.not_computable
    gradcam = get_method("gradcam")(_tiny(), scorer=SaliencyScorer(extra=["random_logit", "max_sensitivity"]))
    assert not gradcam.scorer.not_computable


@pytest.mark.parametrize(
    "options, message",
    [
        ({"sensitivity_samples": 0}, "--metrics.sensitivity_samples must be an integer >= 1"),
        ({"sensitivity_radius": 0}, "--metrics.sensitivity_radius must be a number > 0"),
    ],
)
def test_bad_sensitivity_options_are_one_line_errors(options, message):
    with pytest.raises(BenchmarkError, match=message):
        SaliencyScorer(**options)


@pytest.mark.slow
def test_the_sanity_metrics_through_test_and_not_computable_for_saved_maps(tmp_path):
    import json

    import numpy as np

    from tests.support.cli_runs import run_in_process

    common = [
        "--limit",
        "2",
        "--metrics.n_steps",
        "4",
        "--logger",
        "none",
        "--metrics.sensitivity_samples",
        "2",
        "--metrics.extra",
        "random_logit,max_sensitivity,randomization",
        "--metrics.randomization_steps",
        "2",
        "--output",
        str(tmp_path / "runs"),
    ]
    run = run_in_process(["test", "--method", "gradcam", *common])
    assert run.code == 0, run.err
    results = json.loads((run.run_dir / "results.json").read_text())
    assert all(np.isfinite(results["metrics"][key]) for key in ("random_logit", "max_sensitivity", "randomization"))
    assert "Random Logit" in run.out and "Max-Sensitivity" in run.out and "Model Randomization" in run.out

    from benchmark.cli import build_parser, config_from_args
    from benchmark.run_data import build_datamodule

    folder = tmp_path / "maps"
    folder.mkdir()
    config = config_from_args(build_parser().parse_args(["test", "--method", "gradcam", "--limit", "2"]))
    for sample in build_datamodule(config).samples:
        np.save(folder / f"{sample.file}.npy", np.random.default_rng(0).random((224, 224)))
    again = run_in_process(["test", "--method", "maps", "--method.path", str(folder), *common])
    assert again.code == 0, again.err
    reasons = json.loads((again.run_dir / "results.json").read_text())["not_computable"]
    assert reasons["max_sensitivity"].startswith("maps computed elsewhere")
    assert reasons["random_logit"].startswith("maps computed elsewhere")
    assert reasons["randomization"].startswith("maps computed elsewhere")
    assert not (again.run_dir / "randomization.png").exists()
