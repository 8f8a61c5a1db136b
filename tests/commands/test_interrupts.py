"""Ctrl-C and SIGTERM stop a run in the middle of a batch, keep its records usable, and the
last line says how to resume; a torn record line never blocks a later resumption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmark.records import RecordWriter, SampleRecord, drop_torn_last_line, read_records
from tests.support.cli_runs import REPO, isolated_env, run_subprocess

#: Two batches of two images; a batch takes seconds (56 curve steps), so a run that waited for
#: the end of the batch would write the second batch's records before it stopped.
ARGS = [
    "test",
    "--method",
    "gradcam",
    "--limit",
    "4",
    "--batch-size",
    "2",
    "--metrics.n_steps",
    "56",
    "--logger",
    "none",
    "--overlay-images",
    "0",
]


#: The child imports torch and compiles the model before its first batch, and at exit shuts
#: down inductor's compile workers: on 2 busy cores both take far longer than unloaded, so the
#: deadlines on them are generous. How fast the run stops is timed to the line that reports the
#: stop (REPORT_S), and that it stopped mid-batch is proven by the count of records.
STARTUP_S, EXIT_S, REPORT_S = 600, 180, 20


def _lines(path: Path) -> int:
    """Complete lines only (a read can catch a write half done)."""
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def _wait_for_first_batch(process: subprocess.Popen, output: Path, err: list[str]) -> Path:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        for records in output.glob("*/records/rank0.jsonl"):
            if _lines(records) >= 2:
                return records
        if process.poll() is not None:
            time.sleep(1)  # the reader thread takes the last lines
            pytest.fail(f"the run ended before its first batch: {''.join(err)[-3000:]}")
        time.sleep(0.05)
    pytest.fail("no batch was recorded in time")


def _wait_until_stopped(pid: int, timeout: float = 10) -> None:
    """SIGSTOP is asynchronous: wait until the process's state is T (stopped)."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() < deadline:
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "T":
            return
        time.sleep(0.01)
    pytest.fail(f"the run did not stop within {timeout} s of SIGSTOP")


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, execution", [(signal.SIGINT, "channels_last"), (signal.SIGTERM, "compiled")], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_stops_the_run_mid_batch_and_the_run_resumes(tmp_path, signum, execution):
    """SIGTERM under the CPU's default execution (its processes load the compiled forward, about
    13 s each on this project's VM), Ctrl-C under channels_last."""
    output = tmp_path / "runs"
    env = isolated_env(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmark", *ARGS, "--execution", execution, "--output", str(output)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reported: dict[str, float] = {}

    def read_stderr() -> None:  # all along (a full pipe would block the run), noting when the stop is reported
        for line in process.stderr:
            lines.append(line)
            if line.startswith("interrupted by "):
                reported.setdefault("at", time.monotonic())

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        records = _wait_for_first_batch(process, output, lines)
        # frozen while the records are counted again, so the signal lands where they were counted
        process.send_signal(signal.SIGSTOP)
        _wait_until_stopped(process.pid)
        recorded = _lines(records)
        sent = time.monotonic()
        process.send_signal(signum)
        process.send_signal(signal.SIGCONT)
        assert recorded == 2, f"the test looked only after the second batch ({recorded} records): it was starved"
        try:
            process.wait(timeout=EXIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {EXIT_S} s after {signal.Signals(signum).name}: {''.join(lines)[-3000:]}")
        reader.join(timeout=30)
    finally:
        if process.poll() is None:
            try:  # the run's own session: inductor's compile workers go with it
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=60)
    err = "".join(lines)
    run_dir = records.parent.parent
    assert process.returncode == 128 + signum, err[-3000:]
    assert "at" in reported, err[-3000:]
    assert reported["at"] - sent < REPORT_S, f"took {reported['at'] - sent:.1f} s to stop"
    assert _lines(records) == 2, "the second batch was finished: the run did not stop mid-batch"
    assert not (run_dir / "results.json").exists()
    last = err.strip().splitlines()
    assert last[-3] == f"interrupted by {signal.Signals(signum).name}"
    assert last[-2] == f"2 of 4 images are recorded in {run_dir}"
    assert last[-1] == f"resume with: python -m benchmark test --resume {run_dir}"

    resumed = run_subprocess(["test", "--resume", str(run_dir)], env, timeout=STARTUP_S)
    assert resumed.code == 0, resumed.err[-3000:]
    assert f"resuming {run_dir}: 2 of 4 images done, 2 to go" in resumed.err
    results = json.loads((run_dir / "results.json").read_text())
    assert results["images"] == 4 and results["resumed_with"] == 2
    assert sorted(read_records(run_dir)) == [0, 1, 2, 3]


def _record(sample_id: int) -> SampleRecord:
    return SampleRecord(sample_id, columns={"label": -1.0}, metrics={"avg_drop": 12.5}, curves={"insertion": [0.5]})


def test_a_torn_last_line_is_dropped_before_the_next_records_are_appended(tmp_path):
    writer = RecordWriter(tmp_path, 0)
    writer.write([_record(0), _record(1)])
    writer.close()
    with writer.path.open("a") as handle:
        handle.write(_record(2).to_json()[:25])  # a kill in the middle of a line
    assert sorted(read_records(tmp_path)) == [0, 1]  # the torn line is ignored on reading
    again = RecordWriter(tmp_path, 0)  # the resumption appends
    again.write([_record(2), _record(3)])
    again.close()
    assert sorted(read_records(tmp_path)) == [0, 1, 2, 3]  # no record glued onto the torn line
    assert writer.path.read_text().count("\n") == 4


def test_dropping_a_torn_line_keeps_complete_files_as_they_are(tmp_path):
    path = tmp_path / "rank0.jsonl"
    path.write_text('{"id": 0}\n{"id": 1}\n')
    drop_torn_last_line(path)
    assert path.read_text() == '{"id": 0}\n{"id": 1}\n'
    path.write_text('{"id": 0')
    drop_torn_last_line(path)
    assert path.read_text() == ""
