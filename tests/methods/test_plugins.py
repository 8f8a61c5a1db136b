"""Methods from outside the benchmark: the example plugin package (examples/) installed into a
test folder and found by its entry point, the same class by import string, a table mixing it
with Grad-CAM, and the refusals (a YAML file naming code, a plugin that does not load)."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli_runs import REPO, run_in_process

PLUGIN = REPO / "examples" / "saliency_plugin_example"
IMPORT_STRING = "saliency_plugin_example.methods:CentreGaussian"
FAST = ["--limit", "2", "--metrics.n_steps", "4", "--logger", "none", "--overlay-images", "0"]


@pytest.fixture(scope="module")
def plugin_installed(tmp_path_factory):
    """``pip install`` of the example plugin into a folder put on ``sys.path`` (as a site folder
    would be): its entry points are then those of an installed package."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("plugin-source") / PLUGIN.name  # the build leaves files beside it
    shutil.copytree(PLUGIN, source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("saliency_plugin_example")]:
        del sys.modules[name]


def _per_sample(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run_dir / "per_sample.csv").open()))


def _gaussian_mean(sigma: float, side: int = 224) -> float:
    """Mean of the min-max normalized centre Gaussian, computed here without torch."""
    coords = [i / (side - 1) for i in range(side)]
    values = [math.exp(-((y - 0.5) ** 2 + (x - 0.5) ** 2) / (2 * sigma**2)) for y in coords for x in coords]
    low, high = min(values), max(values)
    return sum((v - low) / (high - low) for v in values) / len(values)


@pytest.mark.slow
def test_a_plugin_method_runs_by_entry_point_name_and_by_import_string(plugin_installed, tmp_path):
    by_name = run_in_process(
        [
            "test",
            "--method",
            "centre_gaussian",
            "--method.sigma",
            "0.3",
            *FAST,
            "--metrics.extra",
            "complexity",
            "--output",
            str(tmp_path / "a"),
        ]
    )
    assert by_name.code == 0, by_name.err
    results = json.loads((by_name.run_dir / "results.json").read_text())
    assert results["method"] == "centre_gaussian" and results["config"]["method"]["sigma"] == 0.3
    rows = _per_sample(by_name.run_dir)
    assert len(rows) == 2
    for row in rows:
        # the map ignores the image, so the map of x * M is the same map: Pearson 1
        assert float(row["coherency"]) == pytest.approx(100.0, abs=1e-4)
        assert float(row["complexity"]) == pytest.approx(100 * _gaussian_mean(0.3), abs=1e-4)

    by_import = run_in_process(
        [
            "test",
            "--method",
            IMPORT_STRING,
            "--method.sigma",
            "0.3",
            *FAST,
            "--metrics.extra",
            "complexity",
            "--output",
            str(tmp_path / "b"),
        ]
    )
    assert by_import.code == 0, by_import.err
    assert by_import.run_dir.name.startswith("saliency_plugin_example.methods_CentreGaussian_")
    for a, b in zip(rows, _per_sample(by_import.run_dir)):
        for key in ("avg_drop", "avg_increase", "coherency", "insertion", "deletion", "complexity"):
            assert float(a[key]) == float(b[key]), key


@pytest.mark.slow
def test_a_table_mixes_a_plugin_with_a_built_in_method(plugin_installed, tmp_path):
    run = run_in_process(["table", "--methods", f"gradcam,{IMPORT_STRING}", *FAST, "--output", str(tmp_path)])
    assert run.code == 0, run.err
    table_dir = Path([line for line in run.out.splitlines() if line.startswith("table folder: ")][-1][14:])
    rows = list(csv.reader((table_dir / "table.csv").open()))
    assert [r[0] for r in rows[1:]] == ["gradcam", IMPORT_STRING]
    plugin = json.loads((table_dir / "saliency_plugin_example.methods_CentreGaussian" / "results.json").read_text())
    assert plugin["config"]["method"] == {"name": IMPORT_STRING, "sigma": 0.25}


def test_help_lists_the_plugin_and_its_options_and_marks_a_broken_one(plugin_installed, capsys):
    from benchmark.cli import main

    with pytest.raises(SystemExit):
        main(["test", "--help"])
    out = capsys.readouterr().out
    assert "centre_gaussian" in out and "Centre Gaussian" in out
    assert "--method.sigma" in out
    assert "broken_example" in out and "[plugin does not load:" in out
    assert "tiny_cnn" in out and "Tiny CNN" in out  # the plugin's model
    assert "sparseness" in out and "Sparseness (higher is better)" in out  # and its metric


def test_a_plugin_metric_declares_an_option_that_help_lists_and_the_metric_receives(plugin_installed, capsys):
    import torch

    from benchmark.cli import build_parser, config_from_args, main
    from benchmark.metrics import SaliencyScorer

    with pytest.raises(SystemExit):
        main(["test", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--metrics.sparseness_pool INT Sparseness: side of the blocks the map is averaged over first" in out
    namespace = build_parser().parse_args(["test", "--metrics.extra", "sparseness", "--metrics.sparseness_pool", "2"])
    config = config_from_args(namespace)
    assert config.metrics["sparseness_pool"] == 2
    scorer = SaliencyScorer(**config.metrics)
    assert scorer.metrics["sparseness"].pool == 2
    maps = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    scorer.metrics["sparseness"].update([0], maps)
    # the 2x2 block means are 1, 0, 0, 0: one bright value of four, (2*4 - 5) * 1 / (4 * 1) = 75%
    assert scorer.metrics["sparseness"].compute().item() == pytest.approx(75.0)
    assert main(["test", "--metrics.extra", "sparseness", "--metrics.sparseness_pool", "0", "--logger", "none"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: SparsenessOptions: --metrics.sparseness_pool must be >= 1, got 0"
    )


def test_a_plugin_that_does_not_resolve_is_one_line_naming_its_package(plugin_installed, capsys):
    from benchmark.cli import main

    assert main(["test", "--method", "broken_example", "--logger", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: method 'broken_example': the entry point")
    assert "saliency_plugin_example.not_there:Nothing" in err[0] and "package saliency-plugin-example" in err[0]


def test_a_plugin_options_own_check_is_one_error_line(plugin_installed, capsys):
    from benchmark.cli import main

    assert main(["test", "--method", "centre_gaussian", "--method.sigma", "-1", "--logger", "none"]) == 2
    assert capsys.readouterr().err.strip() == "error: --method centre_gaussian: --method.sigma must be > 0, got -1.0"


@pytest.mark.parametrize(
    "name,message",
    [
        ("no_such_package.methods:Thing", "cannot import no_such_package.methods"),
        ("tests.support.helpers:NoSuchClass", "tests.support.helpers has no attribute 'NoSuchClass'"),
        ("tests.support.helpers:LinearModel", "not a subclass of benchmark.methods.Explainer"),
    ],
)
def test_a_bad_import_string_is_one_error_line(name, message, capsys):
    from benchmark.cli import main

    assert main(["test", "--method", name, "--logger", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


@pytest.mark.parametrize(
    "content",
    [
        "method: planted_module:Thing\n",
        "method:\n  name: planted_module:Thing\n  sigma: 0.3\n",
        "methods: [gradcam, planted_module:Thing]\n",
        "methods: gradcam,planted_module:Thing:sigma=2\n",
    ],
)
def test_a_yaml_file_naming_code_to_import_is_refused_before_importing_it(content, tmp_path, monkeypatch, capsys):
    from benchmark.cli import main

    marker = tmp_path / "imported"
    (tmp_path / "planted_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nThing = object\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "downloaded.yaml"
    config.write_text(content)
    command = "table" if content.startswith("methods") else "test"
    assert main([command, "--config", str(config), "--logger", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: --config {config}: names code to import (planted_module:Thing); a settings file cannot run code, "
        "so give it on the command line: --method planted_module:Thing (or --methods ...,planted_module:Thing)"
    ]
    assert not marker.exists(), "the module named in the file was imported"


def test_a_yaml_file_may_repeat_what_the_command_line_names(plugin_installed):
    from benchmark.cli import build_parser, config_from_args
    from benchmark.config import Overrides, refuse_code_from_files

    stored = Overrides(source="--resume RUN", options={"method": IMPORT_STRING})
    typed = Overrides(source="command line", options={"method": IMPORT_STRING})
    refuse_code_from_files([stored, typed])  # the user typed it: allowed (a resumed run)
    namespace = build_parser([IMPORT_STRING]).parse_args(["test", "--method", IMPORT_STRING, "--method.sigma", "0.5"])
    assert config_from_args(namespace).method_config.sigma == 0.5


def test_the_extending_page_shows_the_example_plugin_the_tests_run():
    """docs/extending.md (where the README sends a method's author) shows the example plugin's
    method file whole, and the entry point line of its pyproject.toml."""
    page = (REPO / "docs" / "extending.md").read_text()
    example = (PLUGIN / "src" / "saliency_plugin_example" / "methods.py").read_text()
    assert f"```python\n{example}```" in page
    assert len(example.splitlines()) < 30
    pyproject = (PLUGIN / "pyproject.toml").read_text()
    assert 'centre_gaussian = "saliency_plugin_example.methods:CentreGaussian"' in pyproject
    assert 'centre_gaussian = "saliency_plugin_example.methods:CentreGaussian"' in page


def _gini(values: list[float]) -> float:
    ordered = sorted(abs(v) for v in values)
    n = len(ordered)
    return 100 * sum((2 * i - n - 1) * a for i, a in enumerate(ordered, start=1)) / (n * sum(ordered))


def test_the_plugin_metric_matches_the_gini_index_by_hand(plugin_installed):
    import torch
    from saliency_plugin_example.metrics import sparseness

    maps = torch.tensor([[[0.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]], [[0.1, 0.2], [0.3, 0.4]]])
    # one bright pixel of four: (2*4 - 5) * 1 / (4 * 1) = 0.75; constant: 0; by the formula for the third
    assert sparseness(maps).tolist() == pytest.approx([75.0, 0.0, _gini([0.1, 0.2, 0.3, 0.4])], abs=1e-5)


@pytest.mark.slow
def test_a_plugin_metric_and_a_plugin_model_run_by_their_entry_point_names(plugin_installed, tmp_path):
    run = run_in_process(
        [
            "test",
            "--method",
            "centre_gaussian",
            "--model",
            "tiny_cnn",
            "--model.mean",
            "0.5,0.5,0.5",
            "--model.std",
            "0.25,0.25,0.25",
            "--metrics.extra",
            "sparseness",
            *FAST,
            "--output",
            str(tmp_path),
        ]
    )
    assert run.code == 0, run.err
    header = run.out.splitlines()[0]
    assert "Sparseness ↑" in header
    results = json.loads((run.run_dir / "results.json").read_text())
    assert results["model"] == "tiny_cnn" and results["config"]["model"]["mean"] == [0.5, 0.5, 0.5]
    assert results["metric_info"]["sparseness"] == {"title": "Sparseness", "higher_is_better": True}
    side = 224
    coords = [i / (side - 1) for i in range(side)]
    gaussian = [math.exp(-((y - 0.5) ** 2 + (x - 0.5) ** 2) / (2 * 0.25**2)) for y in coords for x in coords]
    low, high = min(gaussian), max(gaussian)
    expected = _gini([(v - low) / (high - low) for v in gaussian])
    for row in _per_sample(run.run_dir):
        assert float(row["sparseness"]) == pytest.approx(expected, abs=1e-3)


def test_the_readme_metric_is_the_example_plugins():
    """The Sparseness (and its options) shown in the README and docs/extending.md is the example plugin's."""
    source = (PLUGIN / "src" / "saliency_plugin_example" / "metrics.py").read_text()
    readme = (REPO / "README.md").read_text()
    for page in (REPO / "README.md", REPO / "docs" / "extending.md"):
        text = page.read_text()
        block = text.split("```python\nclass Sparseness(PerSampleMetric):\n", 1)[1].split("```", 1)[0]
        assert all(line in source for line in block.splitlines()), page
    options = readme.split("```python\n@dataclass\nclass SparsenessOptions(MetricOptions):\n", 1)[1].split("```", 1)[0]
    assert all(line in source for line in options.splitlines())
    assert 'sparseness = "saliency_plugin_example.metrics:Sparseness"' in (PLUGIN / "pyproject.toml").read_text()
