"""``--estimate``: the passes each method needs (counted on one image; LOTS at its worst case)
times the measured pass times, printed before anything runs; nothing is written."""

from __future__ import annotations

import pytest
import torch

from benchmark import estimate as estimate_module
from benchmark.cli import build_parser, config_from_args
from benchmark.run_data import build_datamodule
from tests.support.cli_runs import run_in_process


def _config(*args):
    return config_from_args(build_parser().parse_args(["table", *args]))


def test_the_counts_and_the_time_follow_the_settings(monkeypatch):
    monkeypatch.setattr(estimate_module, "pass_times", lambda classifier, images: (10.0, 20.0))
    counted = estimate_module.explain_passes  # the real counts; the method's own time: none
    monkeypatch.setattr(estimate_module, "explain_passes", lambda method, image: (*counted(method, image)[:2], 0.0))
    config = _config("--methods", "gradcam,lots", "--method.iterations", "3", "--limit", "2", "--metrics.n_steps", "4")
    results = {r.method: r for r in estimate_module.estimate(config, build_datamodule(config), ["gradcam", "lots"])}
    # Grad-CAM: one forward and one backward per explanation, twice (the map of x, then of x * M for
    # Coherency), + the top-1 prediction + the forward of x * M + 2 x (4 + 1) curve forwards
    assert (results["gradcam"].forwards_per_image, results["gradcam"].backwards_per_image) == (2 + 1 + 1 + 10, 2)
    # LOTS, worst case: 3 updates (forward + backward) and a last forward, twice
    assert (results["lots"].forwards_per_image, results["lots"].backwards_per_image) == (2 * 4 + 1 + 1 + 10, 6)
    assert results["gradcam"].seconds == pytest.approx(2 * (14 * 10 + 2 * 20) / 1000)
    assert results["lots"].seconds == pytest.approx(2 * (20 * 10 + 6 * 20) / 1000)
    # ROAD declares one forward per percentage, for MoRF and for LeRF
    config = _config(
        "--methods",
        "gradcam",
        "--limit",
        "2",
        "--metrics.n_steps",
        "4",
        "--metrics.extra",
        "road_morf,road_lerf",
        "--metrics.road_percentages",
        "25,50,75",
    )
    from benchmark.metrics.road import RoadLeastRelevantFirst, RoadMostRelevantFirst

    imputation = {RoadMostRelevantFirst: 0.5, RoadLeastRelevantFirst: 0.25}  # seconds per image, as if timed
    monkeypatch.setattr(RoadMostRelevantFirst, "seconds_per_image", lambda self, images: imputation[type(self)])
    monkeypatch.setattr(RoadLeastRelevantFirst, "seconds_per_image", lambda self, images: imputation[type(self)])
    (road,) = estimate_module.estimate(config, build_datamodule(config), ["gradcam"])
    assert (road.forwards_per_image, road.backwards_per_image) == (14 + 2 * 3, 2)
    # and the imputation's own time, per image
    assert road.seconds == pytest.approx(2 * ((20 * 10 + 2 * 20) / 1000 + 0.5 + 0.25))
    # the sanity checks call the method again: once for the other class, once per perturbation
    # (random logit does not apply to LOTS towards the zero target)
    config = _config(
        "--methods",
        "gradcam,lots",
        "--method.iterations",
        "3",
        "--limit",
        "2",
        "--metrics.n_steps",
        "4",
        "--metrics.extra",
        "random_logit,max_sensitivity",
        "--metrics.sensitivity_samples",
        "3",
    )
    sanity = {r.method: r for r in estimate_module.estimate(config, build_datamodule(config), ["gradcam", "lots"])}
    assert (sanity["gradcam"].forwards_per_image, sanity["gradcam"].backwards_per_image) == (6 + 1 + 1 + 10, 6)
    assert (sanity["lots"].forwards_per_image, sanity["lots"].backwards_per_image) == (5 * 4 + 1 + 1 + 10, 5 * 3)


def test_roads_imputation_is_timed_at_the_middle_percentage_times_the_percentages(monkeypatch):
    from benchmark.metrics.functional import road as road_functional
    from benchmark.metrics.road import RoadMostRelevantFirst

    solved = []
    monkeypatch.setattr(road_functional, "linear_imputation", lambda images, removed: solved.append(removed))
    clock = iter([10.0, 10.2])
    monkeypatch.setattr("time.perf_counter", lambda: next(clock))
    metric = RoadMostRelevantFirst(road_percentages=[10, 50, 90])
    seconds = metric.seconds_per_image(torch.rand(4, 3, 16, 16))
    assert seconds == pytest.approx(3 * 0.2)
    assert len(solved) == 1 and solved[0].shape[0] == 1  # one image
    assert int(solved[0].sum()) == round(0.5 * 16 * 16)  # the middle percentage, 50


def test_saved_maps_pass_nothing_and_coherency_is_not_counted_for_them(monkeypatch, tmp_path):
    import numpy as np

    monkeypatch.setattr(estimate_module, "pass_times", lambda classifier, images: (10.0, 20.0))
    folder = tmp_path / "maps"
    folder.mkdir()
    config0 = _config("--methods", "gradcam", "--limit", "2")
    for sample in build_datamodule(config0).samples:
        np.save(folder / f"{sample.file}.npy", np.random.default_rng(0).random((224, 224)))
    config = _config("--methods", "maps", "--method.path", str(folder), "--limit", "2", "--metrics.n_steps", "4")
    (result,) = estimate_module.estimate(config, build_datamodule(config), ["maps"])
    assert (result.forwards_per_image, result.backwards_per_image) == (0 + 1 + 1 + 10, 0)


@pytest.mark.slow
def test_estimate_prints_the_table_and_writes_nothing(tmp_path):
    run = run_in_process(
        [
            "test",
            "--method",
            "gradcam",
            "--limit",
            "2",
            "--metrics.n_steps",
            "4",
            "--estimate",
            "--logger",
            "none",
            "--output",
            str(tmp_path / "runs"),
        ]
    )
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].split("|")[1:6] == [
        " method  ",
        " images ",
        " forwards/image ",
        " backwards/image ",
        " expected time ",
    ]
    assert lines[2].split("|")[1].strip() == "gradcam" and lines[2].split("|")[3].strip() == "14"
    assert lines[-1].startswith("expected: ") and "nothing was run" in lines[-1]
    assert not (tmp_path / "runs").exists()


def test_under_the_compiled_execution_the_method_is_counted_uncompiled(monkeypatch):
    """An estimate compiles nothing (a compile costs 10-40 s on a CPU): the method whose passes
    are counted runs channels_last, and the run's settings keep their execution."""
    seen = []

    def passes(method, image):
        seen.append(method.classifier.execution)
        return 1, 0, 0.0

    monkeypatch.setattr(estimate_module, "pass_times", lambda classifier, images: (10.0, 20.0))
    monkeypatch.setattr(estimate_module, "explain_passes", passes)
    config = _config("--methods", "scorecam", "--limit", "2", "--metrics.n_steps", "4", "--execution", "compiled")
    assert config.options.execution == "compiled"
    (result,) = estimate_module.estimate(config, build_datamodule(config), ["scorecam"])
    assert seen == ["channels_last"] and config.options.execution == "compiled"
    assert result.forwards_per_image == 2 + 1 + 1 + 10  # the map of x and of x * M, top-1, x * M, curves


def test_the_methods_own_work_beyond_its_passes_is_added_once_per_call(monkeypatch):
    """Time an explanation takes beyond its counted passes (Ablation-CAM's copies after its
    layer are not passes through the whole model) counts once per call of the method."""
    # ms per image of a forward and of a backward: at the run's batch, and at one image
    monkeypatch.setattr(
        estimate_module, "pass_times", lambda classifier, images: (10.0, 20.0) if images.shape[0] > 1 else (15.0, 35.0)
    )
    # one explanation of one image: 3 forwards, 1 backward = 80 ms of passes at one image's
    # times, taking 0.55 s: 0.47 s of its own
    monkeypatch.setattr(estimate_module, "explain_passes", lambda method, image: (3, 1, 0.55))
    config = _config("--methods", "gradcam", "--limit", "2", "--metrics.n_steps", "4")
    (result,) = estimate_module.estimate(config, build_datamodule(config), ["gradcam"])
    # two calls (the map, Coherency's map of x * M): 2 x (3 fwd + 1 bwd) + top-1 + x * M + 10 curve forwards
    assert (result.forwards_per_image, result.backwards_per_image) == (6 + 1 + 1 + 10, 2)
    assert result.seconds == pytest.approx(2 * ((18 * 10 + 2 * 20) / 1000 + 2 * 0.47))
    monkeypatch.setattr(estimate_module, "explain_passes", lambda method, image: (3, 1, 0.01))  # faster than timed
    (result,) = estimate_module.estimate(config, build_datamodule(config), ["gradcam"])
    assert result.seconds == pytest.approx(2 * (18 * 10 + 2 * 20) / 1000)  # nothing taken off
