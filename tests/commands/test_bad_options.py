"""Every option with a bad value gets one ``error:`` line naming it, before any model work."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from benchmark import models
from benchmark.cli import main


class _ModelWork(Exception):
    pass


@pytest.fixture
def no_model_work(monkeypatch):
    """Building a classifier fails the test: the error must come before it."""

    def refuse(*args, **kwargs):
        raise _ModelWork("a classifier was built before the bad option was reported")

    monkeypatch.setattr(models, "build_classifier", refuse)


BASE = ["test", "--logger", "none", "--limit", "2"]

CASES = [
    (["--method", "nosuch"], "unknown method 'nosuch'"),
    (["--model", "nosuch"], "unknown model 'nosuch'"),
    (["--model.weights", "/no/such/weights.pt"], "--model.weights /no/such/weights.pt: file does not exist"),
    (["--data", "/no/such/folder"], "--data /no/such/folder: folder does not exist"),
    (["--per-class", "0"], "--per-class must be >= 1"),
    (["--per-class", "x"], "--per-class: 'x' is not a valid int"),
    (["--limit", "-2"], "--limit must be >= 1"),
    (["--classes", "n99999999"], "--classes: unknown classes n99999999"),
    (["--classes", "5000"], "--classes: unknown classes 5000"),
    (["--ground-truth", "/no/such.csv"], "--ground-truth /no/such.csv: file does not exist"),
    (["--boxes", "/no/such.csv"], "--boxes /no/such.csv: file does not exist"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--batch-size", "1.5"], "--batch-size: '1.5' is not a valid int"),
    (["--num-workers", "-1"], "--num-workers must be >= 0"),
    (["--output", "/etc/hostname/runs"], "--output /etc/hostname/runs: /etc/hostname is a file, not a folder"),
    (["--seed", "-1"], "--seed must be between 0 and 2**32 - 1"),
    (["--seed", "99999999999"], "--seed must be between 0 and 2**32 - 1"),
    (["--seed", "abc"], "--seed: 'abc' is not a valid int"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--overlay-images", "-1"], "--overlay-images must be >= 0"),
    (["--accelerator", "tpu"], "--accelerator 'tpu' is unknown"),
    (["--devices", "0"], "--devices must be >= 1"),
    (["--devices", "x"], "--devices 'x': expected auto"),
    (["--devices", "4"], "only 2 images for 4 processes"),
    (["--num-nodes", "0"], "--num-nodes must be >= 1"),
    (["--strategy", "fsdp"], "--strategy: 'fsdp' is not a valid auto|ddp"),
    (["--ddp-timeout", "0"], "--ddp-timeout must be >= 1 second"),
    (["--logger", "tensorboard"], "--logger: 'tensorboard' is not a valid wandb|csv|none"),
    (["--log-images", "-1"], "--log-images must be >= 0"),
    (["--wandb.project", ""], "--wandb.project must not be empty"),
    (["--precision", "16"], "--precision: '16' is not a valid 32|64|bf16"),
    (["--resume", "/no/such/run"], "--resume /no/such/run: no config.yaml there"),
    (["--config", "/no/such.yaml"], "--config /no/such.yaml: file does not exist"),
    (["--method.iterations", "0"], "--method.iterations must be >= 1"),
    (["--method.iterations", "1e9"], "--method.iterations: '1e9' is not a valid int"),
    (["--method.tau", "-1"], "--method.tau must be a finite number >= 0"),
    (["--method.tau", "nan"], "--method.tau must be a finite number >= 0"),
    (["--method.alpha", "0"], "--method.alpha must be a finite number > 0"),
    (["--method.alpha", "inf"], "--method.alpha must be a finite number > 0"),
    (["--method.alpha", "1/0"], "--method.alpha: '1/0' is not a valid float"),
    (["--method.kernel_size", "4"], "--method.kernel_size must be an odd number >= 1"),
    (["--method.kernel_size", "48"], "--method.kernel_size must be an odd number >= 1 (thesis: 49), got 48"),
    (["--method.kernel_size", "0"], "--method.kernel_size must be an odd number >= 1"),
    (["--method.target", "class"], "--method.target class needs --method.targets_file"),
    (["--method.target", "class", "--method.targets_file", "/no/targets.pt"], "--method.targets_file /no/targets.pt"),
    (["--method.target", "x"], "--method.target 'x' is not available"),
    (["--method.targets_file", "/no/such.pt"], "--method.targets_file /no/such.pt: file does not exist"),
    (["--method.target_image", "/no/such.png"], "--method.target_image /no/such.png: file does not exist"),
    (["--method.distance", "l1"], "--method.distance 'l1' is unknown"),
    (["--method.threshold", "2"], "--method.threshold must be in [0, 1]"),
    (["--method.threshold", "nan"], "--method.threshold must be in [0, 1]"),
    (["--metrics.n_steps", "0"], "--metrics.n_steps: insertion/deletion steps must be an integer >= 1"),
    (["--metrics.n_steps", "-5"], "--metrics.n_steps: insertion/deletion steps must be an integer >= 1"),
    (["--metrics.n_steps", "60000"], "--metrics.n_steps 60000: more steps than the 50176 pixels"),
    (["--metrics.score", "x"], "--metrics.score: unknown curve score 'x'"),
    (["--metrics.chunk_size", "0"], "--metrics.chunk_size: chunk size must be an integer >= 1"),
    (["--metrics.blur_kernel", "10"], "blur kernel must be an odd integer >= 1"),
    (["--metrics.blur_sigma", "-1"], "blur sigma must be > 0"),
    (["--metrics.blur_sigma", "nan"], "blur sigma must be > 0"),
    (["--metrics.extra", "nosuch"], "--metrics.extra: unknown metric 'nosuch'"),
    (["--metrics.extra", "pointing_game"], "--metrics.extra pointing_game needs bounding boxes"),
    (["--metrics.tolerance", "-1"], "--metrics.tolerance must be a number of pixels >= 0"),
    (["--metrics.tolerance", "nan"], "--metrics.tolerance must be a number of pixels >= 0"),
    (["--metrics.bootstrap", "0"], "--metrics.bootstrap must be a number of resamples >= 1"),
    (["--method", "gradcam", "--method.target_class", "x"], "--method.target_class 'x' is unknown"),
    (["--method", "gradcam", "--method.backend", "x"], "--method.backend 'x' is unknown"),
    (["--method", "scorecam", "--method.chunk_size", "0"], "--method.chunk_size must be an integer >= 1"),
    (["--method", "smoothgradcampp", "--method.n_samples", "0"], "--method.n_samples must be an integer >= 1"),
    (["--method", "smoothgradcampp", "--method.noise_std", "nan"], "--method.noise_std must be a number >= 0"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_a_bad_option_is_one_error_line_before_any_model_work(args, message, no_model_work, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*BASE, "--output", str(tmp_path / "runs"), *args])
    lines = err.getvalue().strip().splitlines()
    assert code == 2, err.getvalue()
    assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
    assert message in lines[0]
    assert out.getvalue() == ""
    assert not (tmp_path / "runs").exists()  # nothing was written


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_folder_under_proc_is_one_error_line(no_model_work):
    """/proc lets root pass ``os.access``, yet no folder can be made there (mkdir: ENOENT); any
    other user is told it is not writable."""
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main([*BASE, "--output", "/proc/nope"])
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1, err.getvalue()
    assert lines[0].startswith("error: --output /proc/nope: ")
    assert (
        "no folder can be made in /proc (No such file or directory)" in lines[0] or "/proc is not writable" in lines[0]
    )


def test_threads_sets_torchs_thread_count_and_reports_it():
    import torch

    from benchmark.config import RunOptions
    from benchmark.devices import apply_threads

    before = torch.get_num_threads()
    try:
        assert apply_threads(RunOptions(threads=1)) == torch.get_num_threads() == 1
        assert apply_threads(RunOptions(threads=None)) == 1  # left out: unchanged
        assert apply_threads(RunOptions(threads=2)) == torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
