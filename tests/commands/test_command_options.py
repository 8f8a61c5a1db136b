"""test, table, explain and targets read their shared run options through one path
(benchmark.config.CommandOptions + resolve): the same checks and messages, each command's
own defaults, --config files for all; explain knows no method by its class."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest

from benchmark import models
from benchmark.cli import build_parser, config_from_args, main
from benchmark.core.errors import BenchmarkError
from tests.support.helpers import write_random_jpeg

WNIDS = ("n01440764", "n01443537")


@pytest.fixture
def labelled(tmp_path):
    root = tmp_path / "train"
    for c, wnid in enumerate(WNIDS):
        (root / wnid).mkdir(parents=True)
        write_random_jpeg(root / wnid / "img0.JPEG", c, size=(40, 32))
    return root


@pytest.fixture
def no_model_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a classifier was built before the bad option was reported")

    monkeypatch.setattr(models, "build_classifier", refuse)


def _error_line(argv) -> str:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    lines = err.getvalue().strip().splitlines()
    assert code == 2, err.getvalue()
    assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
    assert out.getvalue() == ""
    return lines[0]


SHARED_BAD = [
    ["--batch-size", "0"],
    ["--batch-size", "1.5"],
    ["--num-workers", "-1"],
    ["--per-class", "0"],
    ["--per-class", "x"],
    ["--seed", "-1"],
    ["--seed", "abc"],
    ["--threads", "0"],
    ["--accelerator", "tpu"],
    ["--devices", "0"],
    ["--devices", "x"],
    ["--model", "nosuch"],
    ["--model.weights", "/no/such/weights.pt"],
    ["--model.mean", "0.5,0.5"],
    ["--classes", "n99999999"],
    ["--ground-truth", "/no/such.csv"],
    ["--config", "/no/such.yaml"],
]


@pytest.mark.parametrize("args", SHARED_BAD, ids=[" ".join(a) for a in SHARED_BAD])
def test_targets_reports_a_bad_shared_option_with_the_line_test_gives(args, labelled, tmp_path, no_model_work):
    data = ["--data", str(labelled)]
    from_test = _error_line(["test", "--logger", "none", "--output", str(tmp_path / "runs"), *data, *args])
    from_targets = _error_line(["targets", "--kind", "mean", "--output", str(tmp_path / "t.pt"), *data, *args])
    assert from_targets == from_test
    assert not (tmp_path / "runs").exists() and not (tmp_path / "t.pt").exists()


def test_targets_refuses_code_named_in_a_settings_file_as_test_does(labelled, tmp_path, no_model_work):
    settings = tmp_path / "s.yaml"
    settings.write_text("model: some_package.some_module:build\n")
    tail = ["--data", str(labelled), "--config", str(settings)]
    from_test = _error_line(["test", "--output", str(tmp_path / "runs"), *tail])
    from_targets = _error_line(["targets", "--kind", "mean", "--output", str(tmp_path / "t.pt"), *tail])
    assert from_targets == from_test and "cannot run code" in from_targets


def test_targets_without_data_is_one_error_line(tmp_path, no_model_work):
    line = _error_line(["targets", "--kind", "mean", "--output", str(tmp_path / "t.pt")])
    assert line == "error: targets needs --data DIR: a folder of labelled images (any layout of --data)"


def _options(argv):
    return config_from_args(build_parser().parse_args(argv)).options


def test_each_command_keeps_its_defaults_and_config_files_layer_for_all(tmp_path):
    targets = ["targets", "--kind", "mean", "--output", "t.pt"]
    assert (_options(targets).batch_size, _options(targets).per_class) == (32, None)
    assert (_options(["test"]).batch_size, _options(["test"]).per_class) == (16, 1)
    assert _options(["explain", "x.jpg"]).batch_size == 16
    settings = tmp_path / "s.yaml"
    settings.write_text("batch_size: 4\nper_class: 2\nseed: 7\nmethod:\n  iterations: 20\n")
    for argv in (targets, ["test"]):
        options = _options([*argv, "--config", str(settings)])
        assert (options.batch_size, options.per_class, options.seed) == (4, 2, 7)
        assert (
            _options([*argv, "--config", str(settings), "--batch-size", "3"]).batch_size == 3
        )  # the command line wins


def test_targets_own_options_stay_its_own():
    namespace = build_parser().parse_args(
        ["targets", "--kind", "class", "--output", "t.pt", "--features", "penultimate"]
    )
    assert (namespace.kind, namespace.targets_output, namespace.features) == ("class", "t.pt", "penultimate")
    options = config_from_args(namespace).options
    assert options.output == "runs"  # the targets file is not the run folder option
    with pytest.raises(SystemExit):  # --features is no option of test
        build_parser().parse_args(["test", "--features", "logits"])


def test_help_of_every_command_lists_its_options(capsys):
    expected = {
        "targets": [
            "--kind",
            "--output FILE.pt",
            "--features",
            "--data",
            "--model.weights",
            "--model.mean",
            "--batch-size",
            "(default: 32)",
            "--seed",
            "--threads",
            "--devices",
            "--config FILE.yaml",
        ],
        "test": ["--method", "--data", "--batch-size", "(default: 8)", "--method.iterations", "--config FILE.yaml"],
        "explain": ["IMAGE", "--method", "--batch-size", "--method.kernel_size", "--config FILE.yaml"],
    }
    for command, flags in expected.items():
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        for flag in flags:
            assert flag in text, (command, flag)
    with pytest.raises(SystemExit):
        main(["targets", "--help"])
    text = capsys.readouterr().out
    for absent in ("--limit", "--method.iterations", "--metrics.n_steps", "--logger", "--resume", "--precision"):
        assert absent not in text, absent


def test_explain_decides_the_perturbation_pictures_by_what_the_method_declares():
    from pathlib import Path

    from benchmark.explain_images import perturbation_pictures
    from benchmark.methods import get_method

    assert perturbation_pictures(get_method("lots")) is True
    for name in ("gradcam", "random"):
        assert perturbation_pictures(get_method(name)) is False
    source = (Path(__file__).resolve().parents[2] / "benchmark" / "explain_images.py").read_text()
    assert "lots_explainer" not in source and "isinstance(method" not in source


def test_command_options_name_only_run_options():
    from benchmark.config import CommandOptions

    with pytest.raises(AssertionError, match="not run options"):
        CommandOptions("x", only=("batch_size", "kind"))
    with pytest.raises(BenchmarkError):
        config_from_args(
            build_parser().parse_args(["targets", "--kind", "mean", "--output", "t.pt", "--batch-size", "0"])
        )
