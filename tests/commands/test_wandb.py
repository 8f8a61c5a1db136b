"""Weights & Biases: what an offline run logged, read back from its files; the default mode;
a W&B failure is a warning and leaves the run folder complete."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from benchmark import loggers
from benchmark.cli import build_parser, config_from_args
from benchmark.loggers import wandb_mode
from benchmark.metrics.selection import METRIC_KEYS
from tests.support.cli_runs import run_in_process
from tests.support.wandb_records import read_offline_run


def _offline_run(run_dir: Path):
    (folder,) = (run_dir / "wandb").glob("offline-run-*")
    return read_offline_run(folder)


@pytest.mark.slow
def test_offline_run_holds_summary_config_table_images_and_curves(one_process_run):
    run_dir = one_process_run.run_dir
    results = json.loads((run_dir / "results.json").read_text())
    logged = _offline_run(run_dir)

    # one line tells how to upload it
    hints = [line for line in one_process_run.err.splitlines() if line.startswith("W&B:")]
    assert hints == [
        f"W&B: WANDB_MODE=offline, so the run was logged offline; upload later with: wandb sync {logged.folder}"
    ]

    # named, grouped and configured so that runs pivot into Table 5.2
    assert (logged.name, logged.group, logged.job_type) == ("gradcam-efficientnet_lite0", "efficientnet_lite0", "test")
    assert {"gradcam", "efficientnet_lite0"} <= set(logged.tags)
    assert logged.config["method"] == "gradcam" and logged.config["model"] == "efficientnet_lite0"
    assert logged.config["metrics_params"] == results["config"]["metrics"]
    assert logged.config["method_params"]["target_class"] == "top1"
    assert logged.config["limit"] == 7 and logged.config["processes"] == 1

    # the summary is results.json
    for key in METRIC_KEYS:
        assert logged.summary[key] == pytest.approx(results["metrics"][key], abs=1e-12), key
    assert logged.summary["ms_per_map"] == pytest.approx(results["ms_per_map"], abs=1e-12)
    assert logged.summary["images"] == results["images"] == 7

    # the per-sample table is per_sample.csv
    table = json.loads(logged.media(logged.summary["per_sample"]["path"]).read_text())
    rows = list(csv.reader((run_dir / "per_sample.csv").open()))
    assert table["columns"] == rows[0]
    assert len(table["data"]) == len(rows) - 1 == 7
    for logged_row, row in zip(table["data"], rows[1:]):
        for value, cell in zip(logged_row, row):
            assert (value is None and cell == "") or str(value) == cell or float(value) == pytest.approx(float(cell))

    # overlays of the first K = 3 maps, and the mean curves as a line plot
    overlays = logged.summary["overlays"]
    assert overlays["count"] == 3 and len(overlays["filenames"]) == 3
    assert all(logged.media(name).stat().st_size > 1000 for name in overlays["filenames"])
    assert [c.split(":")[0] for c in overlays["captions"]] == ["#0 astronaut", "#1 camera", "#2 chelsea"]
    curves = json.loads(logged.media(logged.summary["mean_curves_table"]["path"]).read_text())
    per_key = {key: [row for row in curves["data"] if key in row] for key in ("insertion", "deletion")}
    assert all(len(rows) == 7 for rows in per_key.values())  # n_steps 6 -> 7 points each


def test_mode_is_offline_without_a_key_and_online_with_one(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_mode() == ("offline", "no API key configured")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode()[0] == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    from wandb.sdk import wandb_setup

    host = wandb_setup.singleton().settings.base_url.split("://")[-1].split("/")[0]
    (tmp_path / "netrc").write_text(f"machine {host}\n  login user\n  password {'y' * 40}\n")
    assert wandb_mode()[0] == "online"  # what `wandb login` writes
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == (None, "WANDB_MODE=disabled")


@pytest.mark.slow
def test_a_wandb_failure_is_a_warning_and_the_run_folder_is_complete(monkeypatch, tmp_path):
    import wandb

    def broken_table(*args, **kwargs):
        raise RuntimeError("upload quota exceeded\nsecond line")

    monkeypatch.setattr(wandb, "Table", broken_table)
    run = run_in_process(
        ["test", "--method", "random", "--limit", "1", "--metrics.n_steps", "6", "--output", str(tmp_path)]
    )
    assert run.code == 0, run.err
    warnings = [line for line in run.err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: W&B logging failed (RuntimeError: upload quota exceeded); the run folder is complete: {run.run_dir}"
    ]
    for name in ("results.json", "per_sample.csv", "overlays.png", "curves.png", "config.yaml"):
        assert (run.run_dir / name).is_file(), name
    assert wandb.run is None  # the broken W&B run was closed


def test_table_logs_its_combined_table(tmp_path):
    config = config_from_args(build_parser().parse_args(["table", "--methods", "gradcam,random"]))
    contents = [
        {
            "method": method,
            "images": 2,
            "metrics": {k: float(i + j) for j, k in enumerate(METRIC_KEYS)},
            "ms_per_map": 10.0 * (i + 1),
            "skipped": 0,
            "extras": {},
            "undefined": {},
        }
        for i, method in enumerate(["gradcam", "random"])
    ]
    from benchmark.table import TABLE_HEADER, table_values

    header, rows = table_values(contents)
    assert header[: len(TABLE_HEADER)] == TABLE_HEADER
    agreement = {
        "pairs": [{"metric_a": "insertion", "metric_b": "deletion", "kendall_tau_b": -1.0, "ci95": [-1.0, 1.0]}],
        "ranks": {"insertion": {"gradcam": {"rank": 2, "stability": 0.75}}},
    }
    logged = loggers.log_table(config, tmp_path, header, rows, contents, agreement)
    assert logged.offline_dir is not None
    run = read_offline_run(logged.offline_dir)
    assert (run.name, run.job_type, run.config["methods"]) == (
        "table-efficientnet_lite0",
        "table",
        ["gradcam", "random"],
    )
    table = json.loads(run.media(run.summary["table"]["path"]).read_text())
    assert table["columns"] == header
    assert [row[: len(TABLE_HEADER)] for row in table["data"]] == [
        ["gradcam", 2, 0.0, 1.0, 2.0, 3.0, 4.0, 10.0],
        ["random", 2, 1.0, 2.0, 3.0, 4.0, 5.0, 20.0],
    ]
    assert all(v is None for row in table["data"] for v in row[len(TABLE_HEADER) :])  # no intervals given
    assert run.summary["random/coherency"] == 3.0 and run.summary["gradcam/ms_per_map"] == 10.0
    pairs = json.loads(run.media(run.summary["metric_agreement"]["path"]).read_text())
    assert pairs["columns"] == ["metric_a", "metric_b", "kendall_tau_b", "ci95_low", "ci95_high"]
    assert pairs["data"] == [["insertion", "deletion", -1.0, -1.0, 1.0]]
    stability = json.loads(run.media(run.summary["rank_stability"]["path"]).read_text())
    assert stability["data"] == [["insertion", "gradcam", 2, 0.75]]
