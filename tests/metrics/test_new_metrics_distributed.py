"""The metrics added in 2026-12 (ROAD, random logit, max-sensitivity, model randomization)
under DDP and W&B: two CPU processes give every image once and the one-process values, and the
offline W&B run holds them (summary, per-stage means, the figures)."""

from __future__ import annotations

import csv
import json

import pytest

from tests.support.cli_runs import isolated_env, run_subprocess
from tests.support.wandb_records import read_offline_run

NEW_METRICS = ("road_morf", "road_lerf", "random_logit", "max_sensitivity", "randomization")

ARGS = [
    "test",
    "--method",
    "gradcam",
    "--limit",
    "3",
    "--batch-size",
    "1",
    "--metrics.n_steps",
    "4",
    "--execution",
    "channels_last",
    "--overlay-images",
    "0",
    "--threads",
    "1",
    "--metrics.extra",
    ",".join(NEW_METRICS),
    "--metrics.road_percentages",
    "50",
    "--metrics.sensitivity_samples",
    "2",
    "--metrics.randomization_steps",
    "3",
]


@pytest.mark.slow
def test_the_new_metrics_under_two_processes_equal_one_and_reach_wandb(tmp_path):
    env = isolated_env(tmp_path)
    one = run_subprocess([*ARGS, "--logger", "none", "--output", str(tmp_path / "one")], env, timeout=400)
    assert one.code == 0, one.err[-3000:]
    two = run_subprocess(
        [
            *ARGS,
            "--devices",
            "2",
            "--accelerator",
            "cpu",
            "--strategy",
            "ddp",
            "--ddp-timeout",
            "60",
            "--logger",
            "wandb",
            "--output",
            str(tmp_path / "two"),
        ],
        env,
        timeout=400,
    )
    assert two.code == 0, two.err[-3000:]
    a, b = (json.loads((run.run_dir / "results.json").read_text()) for run in (one, two))
    assert (a["processes"], b["processes"], a["images"], b["images"]) == (1, 2, 3, 3)
    for key in NEW_METRICS:
        assert a["metrics"][key] is not None, key
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], abs=1e-5), key
    details = b["metric_details"]["randomization"]
    assert len(details["spearman_per_stage"]) == len(details["ssim_per_stage"]) == len(details["stages"]) == 3
    assert details["spearman_per_stage"] == pytest.approx(
        a["metric_details"]["randomization"]["spearman_per_stage"], abs=1e-5
    )
    assert details["spearman_per_stage"][-1] == pytest.approx(b["metrics"]["randomization"], abs=1e-4)
    rows = list(csv.DictReader((two.run_dir / "per_sample.csv").open()))
    assert [int(r["sample_id"]) for r in rows] == list(range(3))  # each image once (2 on one process, 1 on the other)
    assert (two.run_dir / "randomization.png").stat().st_size > 0 and (two.run_dir / "road.png").stat().st_size > 0

    (folder,) = (two.run_dir / "wandb").glob("offline-run-*")
    logged = read_offline_run(folder)
    for key in NEW_METRICS:
        assert logged.summary[key] == pytest.approx(b["metrics"][key], abs=1e-9), key
    for stage, value in enumerate(details["spearman_per_stage"], start=1):
        assert logged.summary[f"randomization_spearman_per_stage_{stage}"] == pytest.approx(value, abs=1e-9)
    assert logged.summary["randomization_figure"]["_type"] == "image-file"
    assert logged.media(logged.summary["randomization_figure"]["path"]).stat().st_size > 0
