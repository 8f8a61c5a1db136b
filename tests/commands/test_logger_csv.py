"""``--logger csv``: Lightning's CSVLogger writes ``<run folder>/logs/metrics.csv`` and
``logs/hparams.yaml`` (benchmark/loggers.py ``_log_csv_run``). Their content is checked
against ``results.json`` and against the per-sample table it summarizes."""

from __future__ import annotations

import csv
import json
import math

import pytest
import yaml

from tests.support.cli_runs import run_in_process

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")]

METRICS = ("avg_drop", "avg_increase", "coherency", "insertion", "deletion")


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("csv-logger")
    run = run_in_process(
        [
            "test",
            "--method",
            "gradcam",
            "--limit",
            "2",
            "--metrics.n_steps",
            "4",
            "--logger",
            "csv",
            "--output",
            str(output),
        ]
    )
    assert run.code == 0, run.err
    assert "CSV logging failed" not in run.err, run.err
    return run, run.run_dir


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_logger_writes_results_json_metrics(csv_run):
    _, run_dir = csv_run
    results = json.loads((run_dir / "results.json").read_text())
    logs = run_dir / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["hparams.yaml", "metrics.csv"]
    rows = _rows(logs / "metrics.csv")
    assert len(rows) == 1, rows  # one log_metrics call, at step 0
    row = rows[0]
    assert int(row["step"]) == 0
    assert set(results["metrics"]) == set(METRICS)
    for key, value in results["metrics"].items():
        assert math.isfinite(value), key
        assert abs(float(row[key]) - value) <= 1e-9, (key, row[key], value)
    for key, (low, high) in results["ci95"].items():
        assert abs(float(row[f"{key}_ci95_low"]) - low) <= 1e-9, key
        assert abs(float(row[f"{key}_ci95_high"]) - high) <= 1e-9, key
    assert abs(float(row["ms_per_map"]) - results["ms_per_map"]) <= 1e-9
    assert int(float(row["images"])) == results["images"] == 2
    assert int(float(row["skipped"])) == results["skipped"] == 0


def test_csv_logger_metrics_are_the_means_of_the_per_sample_table(csv_run):
    # an independent check of the numbers logged: per_sample.csv's columns averaged here
    _, run_dir = csv_run
    logged = _rows(run_dir / "logs" / "metrics.csv")[0]
    samples = _rows(run_dir / "per_sample.csv")
    assert [int(s["sample_id"]) for s in samples] == [0, 1]
    for key in METRICS:
        mean = sum(float(s[key]) for s in samples) / len(samples)
        assert abs(float(logged[key]) - mean) <= 1e-6 * max(1.0, abs(mean)), key


def test_csv_logger_hparams_hold_the_resolved_config(csv_run):
    _, run_dir = csv_run
    hparams = yaml.safe_load((run_dir / "logs" / "hparams.yaml").read_text())
    assert hparams["method"] == "gradcam" and hparams["model"] == "efficientnet_lite0"
    assert hparams["logger"] == "csv" and hparams["limit"] == 2
    assert hparams["metrics_params"]["n_steps"] == 4
    assert str(hparams["precision"]) == "32"
    assert hparams["method_info"] == json.loads((run_dir / "results.json").read_text())["method_info"]
