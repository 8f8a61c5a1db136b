"""DDP: two CPU processes (gloo) on 7 images count every image once, finish on uneven shards
(4 and 3 batches), and write the same run folder as one process; only rank 0 writes and logs."""

from __future__ import annotations

import csv
import json
import time

import pytest
import torch

from benchmark.cli import build_parser, config_from_args
from benchmark.core.errors import BenchmarkError
from benchmark.devices import trainer_device_arguments, uses_ddp
from tests.support.cli_runs import SEVEN_IMAGES_GRADCAM, isolated_env, run_subprocess


def _rows(run_dir):
    return list(csv.DictReader((run_dir / "per_sample.csv").open()))


@pytest.mark.slow
def test_two_processes_give_the_one_process_results(one_process_run, tmp_path):
    output = tmp_path / "runs"
    started = time.perf_counter()
    ddp = run_subprocess(
        [
            *SEVEN_IMAGES_GRADCAM,
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
            str(output),
        ],
        env=isolated_env(tmp_path),
        timeout=400,
    )
    seconds = time.perf_counter() - started
    assert ddp.code == 0, ddp.err[-3000:]
    print(f"2-process DDP run: {seconds:.1f} s")

    # only rank 0 speaks, writes one run folder and logs one W&B run
    starts = [line for line in ddp.err.splitlines() if line.startswith("gradcam on efficientnet_lite0")]
    assert len(starts) == 1 and "x 2 process(es)" in starts[0], ddp.err
    # one progress bar (rank 0's) of images, its total every image across both processes
    bars = [line for line in ddp.err.replace("\r", "\n").splitlines() if line.startswith("gradcam: ")]
    assert bars and all("/7 [" in line for line in bars), bars
    assert "| 7/7 [" in bars[-1] and ("img/s" in bars[-1] or "s/img" in bars[-1]), bars[-1]
    assert [p.name for p in output.iterdir()] == [ddp.run_dir.name]
    assert len(list(output.glob("*/wandb/offline-run-*"))) == 1
    assert sum(line.startswith("W&B:") and "wandb sync" in line for line in ddp.err.splitlines()) == 1

    one_dir, ddp_dir = one_process_run.run_dir, ddp.run_dir
    assert sorted(p.name for p in ddp_dir.iterdir()) == sorted(p.name for p in one_dir.iterdir())

    one, two = (json.loads((d / "results.json").read_text()) for d in (one_dir, ddp_dir))
    assert (one["processes"], two["processes"]) == (1, 2)
    assert two["images"] == one["images"] == 7
    for key, value in one["metrics"].items():
        assert two["metrics"][key] == pytest.approx(value, abs=1e-6), key
    assert (two["undefined"], two["skipped"], two["extras"]) == (one["undefined"], one["skipped"], one["extras"])

    one_rows, two_rows = _rows(one_dir), _rows(ddp_dir)
    ids = [int(r["sample_id"]) for r in two_rows]
    assert ids == list(range(7)), "every image exactly once, in sample order"
    for a, b in zip(one_rows, two_rows):
        assert a.keys() == b.keys()
        for column in a:
            if column == "ms_per_map":
                continue
            if column in ("sample_id", "file", "label", "pred_class", "map_problem"):
                assert a[column] == b[column], column
            else:
                assert float(b[column]) == pytest.approx(float(a[column]), rel=1e-6, abs=1e-6), (a["sample_id"], column)

    one_maps, two_maps = (torch.load(d / "maps.pt", weights_only=True) for d in (one_dir, ddp_dir))
    assert two_maps["sample_ids"].tolist() == one_maps["sample_ids"].tolist() == list(range(7))
    torch.testing.assert_close(two_maps["maps"], one_maps["maps"], atol=1e-6, rtol=0)


def _options(*args: str):
    return config_from_args(build_parser().parse_args(["test", *args])).options


def test_several_devices_or_nodes_use_ddp_with_the_timeout():
    from pytorch_lightning.strategies import DDPStrategy

    assert not uses_ddp(_options())
    assert trainer_device_arguments(_options())["strategy"] == "auto"
    for args in (["--devices", "2"], ["--num-nodes", "2"], ["--strategy", "ddp"], ["--devices", "0,1"]):
        arguments = trainer_device_arguments(_options(*args, "--ddp-timeout", "42"))
        assert isinstance(arguments["strategy"], DDPStrategy), args
        assert arguments["strategy"]._timeout.total_seconds() == 42
    arguments = trainer_device_arguments(_options("--devices", "2", "--num-nodes", "3"))
    assert (arguments["devices"], arguments["num_nodes"]) == (2, 3)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--devices", "two"], "--devices 'two'"),
        (["--devices", "0"], "--devices must be >= 1"),
        (["--num-nodes", "0"], "--num-nodes must be >= 1"),
        (["--strategy", "fsdp"], "--strategy: 'fsdp' is not a valid auto|ddp"),
        (["--accelerator", "tpu"], "--accelerator 'tpu' is unknown"),
        (["--ddp-timeout", "0"], "--ddp-timeout must be >= 1"),
    ],
)
def test_bad_device_options_are_one_line_errors(args, expected):
    with pytest.raises(BenchmarkError, match=expected.replace("|", r"\|").replace("(", r"\(")):
        _options(*args)


def test_fewer_images_than_processes_fails_before_launching(tmp_path, capsys):
    from benchmark.cli import main

    code = main(["test", "--limit", "2", "--devices", "3", "--accelerator", "cpu", "--output", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert (
        err[0] == "error: only 2 images for 3 processes (--devices 3 x --num-nodes 1); use more images or fewer devices"
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "env,devices,expected",
    [
        (
            {"WORLD_SIZE": "2"},
            "1",
            "the launcher started 2 processes (WORLD_SIZE=2 (torchrun)), but --devices 1 x "
            "--num-nodes 1 is 1: pass --devices 2",
        ),
        (
            {"SLURM_NTASKS": "4", "SLURM_JOB_NAME": "eval"},
            "2",
            "the launcher started 4 processes (SLURM_NTASKS=4 (srun)), but --devices 2 x --num-nodes 1 is 2",
        ),
        ({"OMPI_COMM_WORLD_SIZE": "3"}, "1", "OMPI_COMM_WORLD_SIZE=3 (mpirun)"),
    ],
)
def test_a_launcher_with_more_processes_than_devices_is_refused(env, devices, expected, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BenchmarkError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        _options("--devices", devices, "--accelerator", "cpu")


def test_a_launcher_matching_the_devices_uses_ddp_and_an_interactive_allocation_is_one_process(monkeypatch):
    from pytorch_lightning.strategies import DDPStrategy

    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")  # salloc's shell: one process, as Lightning reads it
    assert not uses_ddp(_options("--accelerator", "cpu"))
    monkeypatch.setenv("SLURM_JOB_NAME", "eval")
    options = _options("--devices", "2", "--num-nodes", "2", "--accelerator", "cpu")
    assert uses_ddp(options) and isinstance(trainer_device_arguments(options)["strategy"], DDPStrategy)
    monkeypatch.delenv("SLURM_NTASKS")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert uses_ddp(_options("--devices", "2", "--accelerator", "cpu"))


def test_devices_auto_is_resolved_so_the_checks_apply(monkeypatch):
    from benchmark import devices

    monkeypatch.setattr(devices, "_cuda_count", lambda: 0)
    assert trainer_device_arguments(_options("--devices", "auto"))["devices"] == 1
    monkeypatch.setattr(devices, "_cuda_count", lambda: 4)
    arguments = trainer_device_arguments(_options("--devices", "auto", "--accelerator", "cpu"))
    assert arguments["devices"] == 1  # auto on the CPU is one process
    with pytest.raises(BenchmarkError, match="only 2 images for 4 processes"):
        devices.check_images_per_process(_options("--devices", "auto"), 2)


def test_more_gpus_than_visible_is_one_line(monkeypatch):
    from benchmark import devices

    monkeypatch.setattr(devices, "_cuda_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(
        BenchmarkError, match=r"--devices 4: only 2 GPU\(s\) are visible .*CUDA_VISIBLE_DEVICES=0,1.*at most 2"
    ):
        _options("--devices", "4")
    with pytest.raises(BenchmarkError, match="or use indices below it"):
        _options("--devices", "0,3")


def test_the_recorded_device_is_the_strategys_root_device(monkeypatch):
    """After trainer.test Lightning has moved the module back to the CPU: the record must come
    from the strategy (here a mocked CUDA root device)."""
    from types import SimpleNamespace

    from benchmark.devices import device_facts

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"Mock GPU {device.index}")
    trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device("cuda", 1)), world_size=8, num_devices=4
    )
    assert device_facts(trainer) == {"device": "cuda:1", "processes": 8, "gpu": "Mock GPU 1", "gpus_per_node": 4}
    cpu = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), world_size=1, num_devices=1)
    assert device_facts(cpu) == {"device": "cpu", "processes": 1}


@pytest.mark.slow
def test_torchrun_with_one_device_is_refused_and_with_two_equals_one_process(one_process_run, tmp_path):
    from tests.support.cli_runs import TORCHRUN_TWO

    refused = run_subprocess(
        [
            *SEVEN_IMAGES_GRADCAM,
            "--devices",
            "1",
            "--accelerator",
            "cpu",
            "--logger",
            "none",
            "--output",
            str(tmp_path / "refused"),
        ],
        env=isolated_env(tmp_path),
        timeout=200,
        launcher=TORCHRUN_TWO,
    )
    assert refused.code != 0
    assert "error: the launcher started 2 processes (WORLD_SIZE=2 (torchrun)), but --devices 1" in refused.err
    assert not (tmp_path / "refused").exists()

    launched = run_subprocess(
        [
            *SEVEN_IMAGES_GRADCAM,
            "--devices",
            "2",
            "--accelerator",
            "cpu",
            "--logger",
            "none",
            "--ddp-timeout",
            "60",
            "--output",
            str(tmp_path / "runs"),
        ],
        env=isolated_env(tmp_path),
        timeout=400,
        launcher=TORCHRUN_TWO,
    )
    assert launched.code == 0, launched.err[-3000:]
    two = json.loads((launched.run_dir / "results.json").read_text())
    one = json.loads((one_process_run.run_dir / "results.json").read_text())
    assert two["processes"] == 2 and two["images"] == one["images"] == 7
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [launched.run_dir.name]  # one folder, not two
    for a, b in zip(_rows(one_process_run.run_dir), _rows(launched.run_dir)):
        assert a["sample_id"] == b["sample_id"]
        for key in ("avg_drop", "avg_increase", "coherency", "insertion", "deletion"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-6, abs=1e-6), (a["sample_id"], key)


def test_batch_size_and_workers_default_per_device(monkeypatch):
    from benchmark import devices

    monkeypatch.setattr(devices, "_cuda_count", lambda: 0)
    cpu = _options()
    assert (cpu.batch_size, cpu.num_workers) == (16, 0)
    monkeypatch.setattr(devices, "_cuda_count", lambda: 2)
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 16)
    gpu = _options("--devices", "2")
    assert (gpu.batch_size, gpu.num_workers) == (32, 4)
    assert _options("--devices", "2", "--batch-size", "8", "--num-workers", "0").batch_size == 8
    assert _options("--accelerator", "cpu").batch_size == 16  # a GPU machine told to use its CPU
    from benchmark.run_data import datamodule_of

    assert datamodule_of(_options("--accelerator", "cpu", "--limit", "1")).pin_memory is False
    assert datamodule_of(_options("--devices", "2", "--limit", "2")).pin_memory is True
