"""Numerics a user must be able to trust: NaN/Inf and constant maps are counted and reported,
never averaged in silently; a model that outputs NaN stops the run; the same settings give
the same numbers; ``--precision 64`` makes LOTS independent of the batch size."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmark.core.errors import BenchmarkError
from benchmark.methods.base import Explainer
from benchmark.metrics import SaliencyScorer
from benchmark.metrics.functional import map_problems, minmax_normalize
from benchmark.outputs import map_problem_counts
from tests.support.cli_runs import SEVEN_IMAGES_GRADCAM, run_in_process


def test_map_problems_by_hand():
    maps = torch.tensor(
        [
            [[0.0, 0.5], [1.0, 0.2]],  # usable
            [[0.3, 0.3], [0.3, 0.3]],  # constant
            [[0.0, float("nan")], [1.0, 0.2]],  # NaN
            [[0.0, float("inf")], [1.0, 0.2]],  # Inf
            [[float("nan")] * 2] * 2,  # all NaN (also "constant" by nothing: non-finite wins)
        ]
    )
    assert map_problems(maps).tolist() == [0, 1, 2, 2, 2]
    assert map_problem_counts([0.0, 1.0, 2.0, 2.0, 0.0]) == {"constant": 1, "non-finite": 2}
    assert map_problem_counts([0.0]) == {}


def _tiny_model(classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, classes)
    ).eval()


def test_a_non_finite_map_makes_every_metric_of_its_image_undefined_and_nothing_else():
    model = _tiny_model()
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        probs = model(images).softmax(-1)
    prob, classes = probs.max(-1)
    maps = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(2))

    def explain(x, c):
        return minmax_normalize(x.mean(1))

    options = dict(n_steps=4, chunk_size=4, blur_kernel=3, blur_sigma=1.0, extra=["complexity", "adcc"])
    alone = SaliencyScorer(**options)
    expected = alone.update(
        model, explain, torch.tensor([0, 2]), images[[0, 2]], maps[[0, 2]], classes[[0, 2]], prob[[0, 2]]
    )
    broken = maps.clone()
    broken[1, 3, 4] = float("nan")
    scorer = SaliencyScorer(**options)
    got = scorer.update(model, explain, torch.arange(3), images, broken, classes, prob)
    for key, values in got.items():
        assert math.isnan(values[1]), key
        assert torch.allclose(values[[0, 2]], expected[key], atol=1e-6, equal_nan=True), key
    assert scorer.undefined_counts()["insertion"] == 1
    means = scorer.compute()
    assert means["insertion"] == pytest.approx(float(expected["insertion"].double().mean()), abs=1e-5)
    curve = scorer.mean_curves()["insertion"]
    assert torch.isfinite(curve).all()


class _Scripted(Explainer):
    """A method whose maps are scripted per sample id: 0 constant, 1 NaN, others a ramp."""

    method_name = "scripted"

    def explain(self, images, classes):
        ramp = torch.linspace(0, 1, images.shape[-1] * images.shape[-2]).view(images.shape[-2:])
        maps = ramp.expand(images.shape[0], *ramp.shape).clone()
        for row, sample_id in enumerate(self.current_sample_ids.tolist()):
            if sample_id == 0:
                maps[row] = 0.5
            elif sample_id == 1:
                maps[row, 0, 0] = float("nan")
        return maps


def _batches(images: torch.Tensor, batch_size: int):
    items = [{"image": images[i], "sample_id": i, "label": -1} for i in range(len(images))]

    def collate(group):
        return {
            "image": torch.stack([g["image"] for g in group]),
            "sample_id": torch.tensor([g["sample_id"] for g in group]),
            "label": torch.tensor([g["label"] for g in group]),
            "failures": [],
        }

    return DataLoader(items, batch_size=batch_size, collate_fn=collate)


def _trainer():
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        inference_mode=False,
    )


def test_constant_and_nan_maps_are_counted_through_the_pipeline():
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    method = _Scripted(
        _tiny_model(), scorer=SaliencyScorer(n_steps=4, blur_kernel=3, blur_sigma=1.0), keep_maps=0, show_progress=False
    )
    _trainer().test(method, dataloaders=_batches(images, 2), verbose=False)
    results = method.results
    assert results.columns["map_problem"] == [1.0, 2.0, 0.0, 0.0]
    assert map_problem_counts(results.columns["map_problem"]) == {"constant": 1, "non-finite": 1}
    # The NaN map's image is left out of every mean; the constant map is scored as it is.
    assert all(results.undefined[key] >= 1 for key in results.metrics)
    assert results.undefined["avg_drop"] == 1 and results.undefined["coherency"] == 2
    assert not math.isnan(results.metrics["insertion"])


def test_a_model_that_outputs_nan_stops_the_run_with_the_sample_id():
    model = _tiny_model()
    model[0].bias.data[:] = float("nan")
    method = _Scripted(model, keep_maps=0, show_progress=False)
    with pytest.raises(BenchmarkError, match=r"the model output NaN/Inf for sample id\(s\) \[5, 6\]"):
        method.predict_top1(torch.rand(2, 3, 8, 8), torch.tensor([5, 6]))


def _per_sample(run_dir: Path, drop=("ms_per_map",)) -> list[dict[str, str]]:
    rows = list(csv.DictReader((run_dir / "per_sample.csv").open()))
    for row in rows:
        for name in drop:
            row.pop(name)
    return rows


@pytest.mark.slow
def test_same_settings_give_identical_per_sample_tables_and_cams_ignore_the_batch_size(one_process_run, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the reference run
    try:
        again = run_in_process([*SEVEN_IMAGES_GRADCAM, "--logger", "none", "--output", str(tmp_path / "a")])
        batched = run_in_process(
            [*SEVEN_IMAGES_GRADCAM, "--batch-size", "8", "--logger", "none", "--output", str(tmp_path / "b")]
        )
    finally:
        torch.set_num_threads(threads)
    assert again.code == 0 and batched.code == 0, again.err + batched.err
    assert _per_sample(again.run_dir) == _per_sample(one_process_run.run_dir)
    one, eight = _per_sample(one_process_run.run_dir), _per_sample(batched.run_dir)
    assert [r["sample_id"] for r in one] == [r["sample_id"] for r in eight]
    # The metrics are percentages of probabilities: 1e-5 on the probability scale is 1e-3 here.
    # (A float32 forward of a batch of 8 differs from 8 forwards of 1 by ~1e-6 in probability:
    # Avg Drop moved by 1.2e-4 percentage points.)
    for a, b in zip(one, eight):
        for key in ("avg_drop", "avg_increase", "coherency", "insertion", "deletion"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-3), key
    maps = [torch.load(d / "maps.pt", weights_only=True)["maps"] for d in (one_process_run.run_dir, batched.run_dir)]
    assert torch.allclose(maps[0], maps[1], atol=1e-5)


@pytest.mark.slow
def test_precision_64_makes_lots_maps_independent_of_the_batch_size(tmp_path):
    # 2 images, 4 iterations (4 and 6 before 2026-12-04: the CI's time; the same property)
    args = [
        "test",
        "--method",
        "lots",
        "--limit",
        "2",
        "--method.iterations",
        "4",
        "--metrics.n_steps",
        "4",
        "--precision",
        "64",
        "--save-maps",
        "--logger",
        "none",
        "--overlay-images",
        "0",
    ]
    runs = [run_in_process([*args, "--batch-size", str(b), "--output", str(tmp_path / str(b))]) for b in (1, 2)]
    assert all(r.code == 0 for r in runs), runs[0].err + runs[1].err
    maps = [torch.load(r.run_dir / "maps.pt", weights_only=True)["maps"] for r in runs]
    assert maps[0].shape == (2, 224, 224) and maps[0].std() > 0
    assert (
        maps[0] - maps[1]
    ).abs().max() < 1e-6  # float32 LOTS: up to 4.7e-2 (batch 4 vs 1, 20 iterations, 4 ImageNet images)
    contents = [json.loads((r.run_dir / "results.json").read_text()) for r in runs]
    assert contents[0]["precision"] == "64"
    for key, value in contents[0]["metrics"].items():
        assert contents[1]["metrics"][key] == pytest.approx(value, abs=1e-6), key


def test_the_first_batch_on_a_gpu_is_timed_after_an_untimed_warm_up(monkeypatch):
    """CUDA's first backward pays a one-time start-up: one untimed forward and backward comes
    before the first timed explain, once per run (simulated on the CPU)."""
    from benchmark.methods import base

    calls = []

    class Recorder(base.Explainer):
        def explain(self, images, classes):
            calls.append(("explain", images.shape[0]))
            return images.mean(1)

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    model.register_forward_hook(lambda m, a, out: calls.append(("forward", a[0].shape[0], a[0].requires_grad)))
    method = Recorder(model, keep_maps=0, show_progress=False)
    images = torch.rand(2, 3, 4, 4)
    method._timed_explain(images, torch.tensor([0, 1]))
    assert calls == [("explain", 2)]  # on the CPU: no warm-up
    monkeypatch.setattr(base, "WARM_UP_DEVICES", ("cpu",))
    calls.clear()
    method._timed_explain(images, torch.tensor([0, 1]))
    method._timed_explain(images, torch.tensor([0, 1]))
    assert calls == [("forward", 1, True), ("explain", 2), ("explain", 2)]


def test_a_methods_one_time_work_comes_before_the_first_map_is_timed():
    """``prepare`` (building a kernel, compiling a graph) runs once, before the first timed
    explain and outside its time: a prepare of 0.4 s leaves the maps' 0.01 s."""
    import time

    from benchmark.methods import base

    calls = []

    class Slow(base.Explainer):
        def prepare(self, images):
            calls.append(("prepare", images.shape[0]))
            time.sleep(0.4)

        def explain(self, images, classes):
            calls.append(("explain", images.shape[0]))
            time.sleep(0.01)
            return images.mean(1)

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    method = Slow(model, keep_maps=0, show_progress=False)
    images = torch.rand(2, 3, 4, 4)
    timings = [method._timed_explain(images, torch.tensor([0, 1]))[1] for _ in range(2)]
    assert calls == [("prepare", 2), ("explain", 2), ("explain", 2)]
    assert all(10 <= ms < 300 for ms in timings), timings
