"""DDP: two CPU processes (gloo) on 7 images count every image once, finish on uneven shards
(4 and 3 batches), and write the same run folder as one process; only rank 0 writes and logs."""

from __future__ import annotations

import csv
import json
import time

import pytest
import torch

from benchmark.cli import build_parser, config_from_args
from benchmark.devices import trainer_device_arguments, uses_ddp
from metrics.errors import BenchmarkError
from tests.cli_runs import SEVEN_IMAGES_GRADCAM, isolated_env, run_subprocess


def _rows(run_dir):
    return list(csv.DictReader((run_dir / "per_sample.csv").open()))


@pytest.mark.slow
def test_two_processes_give_the_one_process_results(one_process_run, tmp_path):
    output = tmp_path / "runs"
    started = time.perf_counter()
    ddp = run_subprocess(
        [*SEVEN_IMAGES_GRADCAM, "--devices", "2", "--accelerator", "cpu", "--strategy", "ddp",
         "--ddp-timeout", "60", "--logger", "wandb", "--output", str(output)],
        env=isolated_env(tmp_path),
        timeout=400,
    )
    seconds = time.perf_counter() - started
    assert ddp.code == 0, ddp.err[-3000:]
    print(f"2-process DDP run: {seconds:.1f} s")

    # only rank 0 speaks, writes one run folder and logs one W&B run
    starts = [line for line in ddp.err.splitlines() if line.startswith("gradcam on efficientnet_lite0")]
    assert len(starts) == 1 and "x 2 process(es)" in starts[0], ddp.err
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
    assert err[0] == "error: only 2 images for 3 processes (--devices 3 x --num-nodes 1); use more images or fewer devices"
    assert not any(tmp_path.iterdir())
