"""The progress bar: images (not batches) of the run's total, each process's batch counted for
all processes under DDP and capped at the total, a resumed run starting at its done images,
and --quiet drawing nothing."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from benchmark import progress as progress_module
from benchmark.methods.base import BatchOutcome
from benchmark.progress import ImageProgressBar


def _bar(monkeypatch, total, done=0, world_size=1):
    stream = io.StringIO()
    monkeypatch.setattr(progress_module.sys, "stderr", stream)
    bar = ImageProgressBar(total, done=done, label="gradcam (method 2 of 3)")
    trainer = SimpleNamespace(is_global_zero=True, world_size=world_size)
    bar.on_test_start(trainer, None)
    return bar, trainer, stream


def test_two_processes_count_each_batch_twice_up_to_the_total(monkeypatch):
    bar, trainer, stream = _bar(monkeypatch, total=7, world_size=2)
    for ids in ([0, 2], [4], [6]):  # rank 0's shard of 7 images (the sampler pads rank 1's to 4)
        bar.on_test_batch_end(trainer, None, BatchOutcome(sample_ids=ids), None, 0)
    assert bar.bar.n == 7 and bar.bar.total == 7
    bar.on_test_end(trainer, None)
    last = stream.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("gradcam (method 2 of 3): 100%") and "7/7" in last


def test_skipped_images_count_and_a_resumed_run_starts_at_its_done_images(monkeypatch):
    bar, trainer, _ = _bar(monkeypatch, total=10, done=4)
    assert bar.bar.n == 4
    bar.on_test_batch_end(trainer, None, BatchOutcome(sample_ids=[5], failures=[(6, "unreadable")]), None, 0)
    assert bar.bar.n == 6


def test_other_ranks_draw_nothing(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(progress_module.sys, "stderr", stream)
    bar = ImageProgressBar(5)
    bar.on_test_start(SimpleNamespace(is_global_zero=False, world_size=2), None)
    assert bar.bar is None and stream.getvalue() == ""


@pytest.mark.slow
def test_quiet_draws_no_bar_and_a_run_draws_one_of_images(tmp_path):
    from tests.support.cli_runs import run_in_process

    args = [
        "test",
        "--method",
        "gradcam",
        "--limit",
        "3",
        "--batch-size",
        "2",
        "--metrics.n_steps",
        "4",
        "--execution",
        "channels_last",
        "--logger",
        "none",
        "--overlay-images",
        "0",
        "--output",
        str(tmp_path),
    ]
    loud = run_in_process(args)
    assert loud.code == 0, loud.err
    bars = [line for line in loud.err.replace("\r", "\n").splitlines() if line.startswith("gradcam: ")]
    assert bars and "3/3" in bars[-1] and "batches" not in loud.err
    quiet = run_in_process([*args, "--quiet"])
    assert quiet.code == 0, quiet.err
    assert "gradcam: " not in quiet.err and "%|" not in quiet.err
    assert "| gradcam " in quiet.out  # the results are still printed
