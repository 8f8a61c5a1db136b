"""A run killed at any point keeps its per-sample records; ``--resume`` finishes it with the
results of an uninterrupted run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.core.errors import BenchmarkError
from benchmark.records import SampleRecord, read_records, settings_differences
from tests.support.cli_runs import REPO, isolated_env, run_in_process, run_subprocess

#: Six built-in photos, one per batch, LOTS slow enough (about 0.5-1 s a batch) to be killed
#: half-way. One thread everywhere: float32 LOTS depends on the summation order. channels_last:
#: each of the test's processes would spend about 13 s loading the compiled forward (resuming
#: a compiled run: tests/commands/test_interrupts.py).
SLOW_LOTS = [
    "test",
    "--method",
    "lots",
    "--limit",
    "6",
    "--batch-size",
    "1",
    "--method.iterations",
    "6",
    "--execution",
    "channels_last",
    "--metrics.n_steps",
    "4",
    "--logger",
    "none",
    "--overlay-images",
    "2",
    "--save-maps",
]


def _folder(out: str) -> Path:
    return Path([line for line in out.splitlines() if line.startswith("run folder: ")][-1][len("run folder: ") :])


def _scores(run_dir: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader((run_dir / "per_sample.csv").open()))
    for row in rows:
        row.pop("ms_per_map")
    return rows


def _kill_after_records(args: list[str], env: dict[str, str], output: Path, lines: int) -> Path:
    """Start a run, SIGKILL its process group once ``lines`` records are on disk; the run folder."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmark", *args],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            found = list(output.glob("*/records/rank0.jsonl"))
            if found and found[0].read_text().count("\n") >= lines:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return found[0].parents[1]
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        pytest.fail("no records appeared")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_results(tmp_path):
    env = isolated_env(tmp_path)
    reference = run_subprocess([*SLOW_LOTS, "--output", str(tmp_path / "whole")], env, timeout=300)
    assert reference.code == 0, reference.err
    killed = _kill_after_records(SLOW_LOTS + ["--output", str(tmp_path / "killed")], env, tmp_path / "killed", lines=2)
    assert not (killed / "results.json").exists()
    done = read_records(killed)
    assert 2 <= len(done) < 6

    resumed = run_subprocess(["test", "--resume", str(killed)], env, timeout=300)
    assert resumed.code == 0, resumed.err
    assert f"resuming {killed}: {len(done)} of 6 images done, {6 - len(done)} to go" in resumed.err
    assert _folder(resumed.out) == killed
    whole, finished = (json.loads((d / "results.json").read_text()) for d in (reference.run_dir, killed))
    assert finished["resumed_with"] == len(done) and finished["images"] == whole["images"] == 6
    for key, value in whole["metrics"].items():
        assert finished["metrics"][key] == pytest.approx(value, abs=1e-6), key
    # the killed part's time is kept: its seconds up to the last record, plus the resumed part's
    assert 0 < finished["duration_s_before_resume"] < finished["duration_s"]
    assert json.loads((killed / "records" / "elapsed.json").read_text())["seconds"] <= finished["duration_s"]
    for key, bounds in whole["ci95"].items():
        assert finished["ci95"][key] == pytest.approx(bounds, abs=1e-6), key
    assert _scores(killed) == _scores(reference.run_dir)
    import torch

    maps = [torch.load(d / "maps.pt", weights_only=True) for d in (reference.run_dir, killed)]
    assert maps[0]["sample_ids"].tolist() == maps[1]["sample_ids"].tolist() == list(range(6))
    assert torch.equal(maps[0]["maps"], maps[1]["maps"])
    assert (killed / "overlays.png").is_file() and (killed / "curves.png").is_file()

    again = run_subprocess(["test", "--resume", str(killed)], env, timeout=120)
    assert again.code == 2 and "this run is complete" in again.err


def test_resuming_with_other_settings_is_refused_naming_them(tmp_path, capsys):
    from benchmark.cli import main
    from benchmark.records import start_run_folder

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    from benchmark.cli import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(["test", "--method.iterations", "12", "--limit", "6"]))
    from benchmark.datamodules import ImageNetDataModule
    from benchmark.records import samples_fingerprint

    start_run_folder(run_dir, config.to_dict(), samples_fingerprint(ImageNetDataModule(limit=6).samples))
    code = main(
        ["test", "--resume", str(run_dir), "--method.iterations", "10", "--metrics.n_steps", "8", "--logger", "csv"]
    )
    message = capsys.readouterr().err
    assert code == 2
    assert "the settings differ from the run's" in message
    assert "method.iterations: 12 -> 10" in message and "metrics.n_steps: None -> 8" in message
    assert "logger" not in message  # how a run is logged may change
    code = main(["test", "--resume", str(run_dir), "--limit", "5"])
    assert code == 2 and "limit: 6 -> 5" in capsys.readouterr().err


def test_settings_differences_ignore_only_where_and_how_a_run_is_logged():
    stored = {"method": {"name": "lots", "iterations": 5}, "batch_size": 8, "devices": "1", "wandb": {"tags": None}}
    current = {"method": {"name": "lots", "iterations": 5}, "batch_size": 4, "devices": "2", "wandb": {"tags": ["x"]}}
    assert settings_differences(stored, current) == ["batch_size: 8 -> 4"]


@pytest.mark.parametrize(
    "option,message",
    [
        (["--accelerator", "cpu"], "accelerator: 'auto' -> 'cpu'"),
        (["--precision", "64"], "precision: '32' -> '64'"),
        (["--allow-tf32"], "allow_tf32: False -> True"),
        (["--threads", "1"], "threads: None -> 1"),
        (["--execution", "eager"], "execution: 'channels_last' -> 'eager'"),
    ],
)
def test_resuming_on_another_accelerator_precision_or_tf32_is_refused(option, message, tmp_path, capsys):
    """One run must not mix CPU float32 with GPU (or TF32, or float64) results; only the number of
    processes may change (each record says how many computed it)."""
    from benchmark.cli import build_parser, config_from_args, main
    from benchmark.datamodules import ImageNetDataModule
    from benchmark.records import samples_fingerprint, start_run_folder

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = config_from_args(build_parser().parse_args(["test", "--method", "gradcam", "--limit", "2"]))
    start_run_folder(run_dir, config.to_dict(), samples_fingerprint(ImageNetDataModule(limit=2).samples))
    assert main(["test", "--resume", str(run_dir), *option, "--logger", "none"]) == 2
    err = capsys.readouterr().err
    assert "the settings differ from the run's" in err and message in err, err
    stored = config.to_dict()
    assert settings_differences(stored, {**stored, "devices": "2", "num_nodes": 2, "strategy": "ddp"}) == []


def test_each_record_says_how_many_processes_computed_it(tmp_path):
    from benchmark.records import RecordWriter, images_by_processes

    writer = RecordWriter(tmp_path, 0)
    writer.write(
        [
            SampleRecord(0, {"a": 1.0}, {"m": 2.0}, {}, processes=2),
            SampleRecord(1, {"a": 1.0}, {"m": 2.0}, {}, processes=1),
            SampleRecord(2, failed="unreadable"),
            SampleRecord(3, {"a": 1.0}, {"m": 2.0}, {}),
        ]
    )
    writer.close()
    records = read_records(tmp_path)
    assert [records[i].processes for i in range(4)] == [2, 1, None, None]
    assert images_by_processes(tmp_path) == {"2": 1, "1": 1, "unrecorded": 1}


def test_a_torn_last_line_is_ignored_and_a_torn_middle_line_is_an_error(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    good = SampleRecord(3, columns={"label": 1.0}, metrics={"avg_drop": float("nan")}, curves={"insertion": [0.5, 1.0]})
    failed = SampleRecord(4, failed="empty file")
    text = good.to_json() + "\n" + failed.to_json() + "\n"
    (folder / "rank0.jsonl").write_text(text + good.to_json()[:17])
    records = read_records(tmp_path)
    assert sorted(records) == [3, 4] and records[4].failed == "empty file"
    assert (
        records[3].curves == {"insertion": [0.5, 1.0]}
        and records[3].metrics["avg_drop"] != records[3].metrics["avg_drop"]
    )
    (folder / "rank1.jsonl").write_text(good.to_json()[:17] + "\n" + failed.to_json() + "\n")
    with pytest.raises(BenchmarkError, match="rank1.jsonl line 1 is not a record"):
        read_records(tmp_path)


@pytest.mark.slow
def test_a_table_resumes_its_unfinished_method(tmp_path):
    args = [
        "table",
        "--methods",
        "gradcam,random",
        "--limit",
        "3",
        "--batch-size",
        "1",
        "--metrics.n_steps",
        "4",
        "--logger",
        "none",
        "--overlay-images",
        "2",
        "--output",
        str(tmp_path),
    ]
    first = run_in_process(args)
    assert first.code == 0, first.err
    table_dir = Path(
        [line for line in first.out.splitlines() if line.startswith("table folder: ")][0][len("table folder: ") :]
    )
    expected = (table_dir / "table.csv").read_text()
    # What a kill during the second method leaves: its first record only, no results.
    unfinished = table_dir / "random"
    (unfinished / "results.json").unlink()
    records = unfinished / "records" / "rank0.jsonl"
    records.write_text(records.read_text().splitlines()[0] + "\n")
    (table_dir / "table.csv").unlink()
    finished = json.loads((table_dir / "gradcam" / "results.json").read_text())["duration_s"]
    recorded = json.loads((table_dir / "gradcam" / "records" / "elapsed.json").read_text())["seconds"]
    assert 0 < recorded <= finished
    resumed = run_in_process(["table", "--resume", str(table_dir)])
    assert resumed.code == 0, resumed.err
    # a finished method read back keeps its time (it was the time of reading it back)
    assert json.loads((table_dir / "gradcam" / "results.json").read_text())["duration_s"] >= recorded
    assert f"resuming {unfinished}: 1 of 3 images done, 2 to go" in resumed.err
    assert f"resuming {table_dir / 'gradcam'}: 3 of 3 images done, 0 to go" in resumed.err
    assert _without_timing((table_dir / "table.csv").read_text()) == _without_timing(expected)


def _without_timing(table_csv: str) -> list[dict[str, str]]:
    """table.csv without ms/map (the resumed images were timed again)."""
    rows = list(csv.DictReader(table_csv.splitlines()))
    for row in rows:
        row.pop("ms/map ↓")
    return rows
