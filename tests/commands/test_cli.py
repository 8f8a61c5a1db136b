"""The command line end to end: the run folder, options, config files, bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from benchmark.cli import main
from benchmark.metrics.selection import METRIC_KEYS
from tests.support.helpers import write_random_jpeg

FAST = ["--method.iterations", "2", "--method.kernel_size", "9", "--metrics.n_steps", "6"]


def _run_folder(capsys) -> Path:
    out = capsys.readouterr().out
    line = [line for line in out.splitlines() if line.startswith("run folder: ")][-1]
    return Path(line.removeprefix("run folder: "))


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One small run on the built-in photos, shared by the checks below."""
    output = tmp_path_factory.mktemp("runs")
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["test", "--method", "lots", "--limit", "3", "--save-maps", "--output", str(output), *FAST])
    assert code == 0, err.getvalue()
    line = [line for line in out.getvalue().splitlines() if line.startswith("run folder: ")][-1]
    return Path(line.removeprefix("run folder: ")), out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_run_folder_has_every_file(default_run):
    run_dir, out, _ = default_run
    for name in ("results.json", "per_sample.csv", "overlays.png", "curves.png", "maps.pt", "config.yaml"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "overlays.png").stat().st_size > 10_000
    header = out.splitlines()[0]
    for title in (
        "method",
        "model",
        "images",
        "Avg Drop",
        "Avg Increase",
        "Coherency",
        "Insertion",
        "Deletion",
        "ms/map",
        "LOTS iters",
    ):
        assert title in header


@pytest.mark.slow
def test_results_means_equal_the_per_sample_means(default_run):
    run_dir, _, _ = default_run
    results = json.loads((run_dir / "results.json").read_text())
    rows = list(csv.DictReader((run_dir / "per_sample.csv").open()))
    assert results["images"] == len(rows) == 3
    assert [int(r["sample_id"]) for r in rows] == [0, 1, 2]
    assert list(rows[0])[:10] == ["sample_id", "file", "label", "pred_class", "pred_prob", *METRIC_KEYS]
    assert {"iterations", "final_distance"} <= set(rows[0])
    for key in METRIC_KEYS:
        values = [float(r[key]) for r in rows if r[key] != ""]
        assert results["metrics"][key] == pytest.approx(sum(values) / len(values), abs=1e-9)
    assert results["extras"]["iterations"] == pytest.approx(2.0)
    for key in METRIC_KEYS:  # every mean has its 95% bootstrap interval
        low, high = results["ci95"][key]
        values = [float(r[key]) for r in rows if r[key] != ""]
        assert min(values) - 1e-9 <= low <= results["metrics"][key] <= high <= max(values) + 1e-9
    assert all(r["label"] == "" for r in rows)  # the built-in photos have no label
    assert results["ms_per_map"] > 0
    config = results["config"]
    assert config["method"]["iterations"] == 2 and config["metrics"]["n_steps"] == 6
    assert {"torch", "torchvision", "python"} <= set(results["versions"])
    assert results["seed"] == 0
    assert results["threads"] == torch.get_num_threads() >= 1  # float32 numbers depend on it


@pytest.mark.slow
def test_saved_maps_are_the_scored_maps(default_run):
    run_dir, _, _ = default_run
    saved = torch.load(run_dir / "maps.pt", weights_only=True)
    assert saved["sample_ids"].tolist() == [0, 1, 2]
    assert saved["sample_ids"].dtype == torch.long
    maps = saved["maps"]
    assert maps.shape == (3, 224, 224) and maps.dtype == torch.float32
    # Average Drop recomputed from the saved maps equals the one the run scored
    from benchmark.datamodules import ImageNetDataModule
    from benchmark.models import build_classifier

    images = next(iter(ImageNetDataModule(limit=3, batch_size=3).test_dataloader()))["image"]
    classifier = build_classifier("efficientnet_lite0")
    with torch.no_grad():
        base = classifier(images).softmax(1)
        top1 = base.argmax(1)
        explained = classifier(images * maps[:, None]).softmax(1)
    y = base.gather(1, top1[:, None])[:, 0]
    o = explained.gather(1, top1[:, None])[:, 0]
    recomputed = ((y - o).clamp(min=0) / y * 100).tolist()
    rows = list(csv.DictReader((run_dir / "per_sample.csv").open()))
    assert [int(r["pred_class"]) for r in rows] == top1.tolist()
    assert [float(r["avg_drop"]) for r in rows] == pytest.approx(recomputed, abs=1e-3)
    assert max(recomputed) > 1  # the maps changed the prediction: not a vacuous comparison


@pytest.mark.slow
def test_saved_config_reproduces_the_run_settings(default_run, tmp_path):
    run_dir, _, _ = default_run
    from benchmark.cli import build_parser, config_from_args

    namespace = build_parser().parse_args(["test", "--config", str(run_dir / "config.yaml")])
    config = config_from_args(namespace)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config.to_dict() == saved


@pytest.mark.slow
def test_a_corrupt_image_is_named_counted_and_skipped(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_random_jpeg(data / "n01440764_tench.JPEG", 1)
    write_random_jpeg(data / "n01443537_goldfish.JPEG", 2)
    (data / "n01484850_shark.JPEG").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    code = main(["test", "--data", str(data), "--output", str(tmp_path / "runs"), *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "n01484850_shark.JPEG" in captured.err
    run_dir = Path([line for line in captured.out.splitlines() if line.startswith("run folder: ")][-1][12:])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["images"] == 2 and results["skipped"] == 1
    assert results["skipped_files"][0]["file"].endswith("n01484850_shark.JPEG")
    rows = list(csv.DictReader((run_dir / "per_sample.csv").open()))
    assert [r["label"] for r in rows] == ["0", "1"]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--method", "lotz"], "unknown method 'lotz' (did you mean lots?)"),
        (["--model", "resnet5"], "unknown model 'resnet5'"),
        (["--data", "/no/such/folder"], "does not exist"),
        (["--method.iterations", "0"], "--method.iterations must be >= 1"),
        (["--method.kernel_size", "4"], "odd"),
        (["--method.tau", "abc"], "--method.tau: 'abc' is not a valid float"),
        (["--metrics.score", "best"], "score"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--metrics.extra", "pointing"], "unknown metric 'pointing' (did you mean pointing_game"),
        (["--metrics.extra", "complexity,pointing_game"], "needs bounding boxes"),
        (
            ["--boxes", "/no/boxes.csv", "--metrics.extra", "pointing_game"],
            "--boxes /no/boxes.csv: file does not exist",
        ),
    ],
)
def test_bad_options_fail_in_one_line_before_model_work(args, expected, capsys, tmp_path):
    code = main(["test", "--output", str(tmp_path), *args])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert not any(tmp_path.iterdir()), "nothing may be written for a rejected run"


def test_empty_folder_and_folder_without_images(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["test", "--data", str(empty)]) == 2
    assert "empty" in _error(capsys)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    assert main(["test", "--data", str(other)]) == 2
    message = _error(capsys)
    assert "no image" in message.lower() and ".jpeg" in message.lower()


def test_help_lists_methods_and_models(capsys):
    with pytest.raises(SystemExit):
        main(["test", "--help"])
    out = capsys.readouterr().out
    for name in (
        "lots",
        "efficientnet_lite0",
        "resnet50",
        "densenet121",
        "--method.iterations",
        "--metrics.n_steps",
        "--per-class",
        "--save-maps",
        "configs/thesis.yaml",
    ):
        assert name in out


def test_config_files_merge_and_the_command_line_wins(tmp_path):
    from benchmark.cli import build_parser, config_from_args

    first = tmp_path / "a.yaml"
    first.write_text("method:\n  iterations: 7\n  tau: 0.5\nmetrics:\n  score: max_class\nbatch_size: 3\n")
    second = tmp_path / "b.yaml"
    second.write_text("method: {iterations: 9}\n")
    namespace = build_parser().parse_args(
        ["test", "--config", str(first), "--config", str(second), "--method.tau", "1/4"]
    )
    config = config_from_args(namespace)
    assert config.method_config.iterations == 9
    assert config.method_config.tau == 0.25
    assert config.metrics["score"] == "max_class"
    assert config.options.batch_size == 3


def test_thesis_config_holds_the_thesis_settings():
    from benchmark.cli import build_parser, config_from_args

    root = Path(__file__).resolve().parents[2]
    config = config_from_args(build_parser().parse_args(["test", "--config", str(root / "configs/thesis.yaml")]))
    lots = config.method_config
    assert (lots.iterations, lots.tau, lots.kernel_size, lots.target) == (500, 0.1, 49, "zero")
    assert math.isclose(lots.alpha, 1 / 255)
    assert config.metrics["n_steps"] == 224 and config.metrics["score"] == "max_class"


def test_defaults_are_the_spec_defaults():
    from benchmark.cli import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(["test"]))
    lots = config.method_config
    assert (lots.iterations, lots.tau, lots.kernel_size, lots.target, lots.features) == (500, 0.1, 49, "zero", "logits")
    assert math.isclose(lots.alpha, 1 / 255)
    assert config.metrics["n_steps"] is None and config.metrics["score"] == "original_class"
    assert config.options.model == "efficientnet_lite0" and config.options.data is None


def test_unknown_config_key_is_rejected(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_sise: 4\n")
    assert main(["test", "--config", str(bad)]) == 2
    assert "unknown key 'batch_sise'" in _error(capsys)
    bad.write_text("method:\n  iteratoins: 4\n")
    assert main(["test", "--config", str(bad)]) == 2
    assert "iteratoins" in _error(capsys)


def test_every_command_is_a_module_that_adds_its_parser_and_runs():
    """The parser is built from the command modules (benchmark/commands/), one per command."""
    import argparse

    from benchmark.cli import COMMANDS, build_parser

    parser = build_parser()
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert list(choices) == [command.NAME for command in COMMANDS]
    for command in COMMANDS:
        assert command.__name__ == f"benchmark.commands.{command.NAME}"
        assert callable(command.add_parser) and callable(command.run)


def test_the_run_files_are_written_by_lightning_callbacks():
    import pytorch_lightning as pl

    from benchmark.run_writers import EvaluationLogger, FiguresWriter, ResultsWriter

    for writer in (FiguresWriter, ResultsWriter, EvaluationLogger):
        assert issubclass(writer, pl.Callback)
