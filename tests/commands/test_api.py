"""``from benchmark import evaluate``: the ``test`` pipeline from Python gives the command line's
numbers, takes a method class, keeps the run folder only when asked, and refuses bad options."""

from __future__ import annotations

import json

import pytest

from benchmark import evaluate
from benchmark.core.errors import BenchmarkError
from benchmark.methods import Explainer, MethodConfig
from tests.support.cli_runs import run_in_process


class Flat(Explainer):
    """Flat: M = 1 everywhere except a brighter top-left quarter (Smith 2026, a test baseline)."""

    config_class = MethodConfig

    def explain(self, images, classes):
        maps = images.new_zeros(images.shape[0], *images.shape[-2:])
        maps[:, : images.shape[-2] // 2, : images.shape[-1] // 2] = 1.0
        return maps


@pytest.mark.slow
def test_evaluate_gives_the_command_lines_means(tmp_path):
    cli = run_in_process(
        [
            "test",
            "--method",
            "gradcam",
            "--limit",
            "2",
            "--metrics.n_steps",
            "4",
            "--logger",
            "none",
            "--overlay-images",
            "0",
            "--output",
            str(tmp_path / "cli"),
        ]
    )
    assert cli.code == 0, cli.err
    expected = json.loads((cli.run_dir / "results.json").read_text())
    results = evaluate(method="gradcam", limit=2, metrics={"n_steps": 4}, overlay_images=0, output=str(tmp_path / "py"))
    assert results.metrics == expected["metrics"]
    assert results.intervals == {k: tuple(v) for k, v in expected["ci95"].items()}
    assert [row["sample_id"] for row in results.per_sample] == [0, 1]
    assert results.per_sample[1]["deletion"] == pytest.approx(
        expected["metrics"]["deletion"] * 2 - results.per_sample[0]["deletion"], abs=1e-9
    )
    assert results.run_dir is not None and (results.run_dir / "results.json").is_file()
    assert results.results["config"]["metrics"]["n_steps"] == 4


@pytest.mark.slow
def test_evaluate_takes_a_method_class_and_leaves_no_folder_without_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = evaluate(method=Flat, limit=1, metrics={"n_steps": 4, "extra": ["complexity"]})
    assert results.method.endswith("test_api:Flat") and results.run_dir is None
    assert results.metrics["complexity"] == pytest.approx(25.0)  # a quarter of the pixels are 1
    assert results.metrics["coherency"] == pytest.approx(100.0)  # the map ignores the image
    assert list(tmp_path.iterdir()) == []


def test_evaluate_refuses_a_bad_option_like_the_command_line():
    with pytest.raises(BenchmarkError, match="unknown option.*no_such_option"):
        evaluate(method="gradcam", no_such_option=1)
    with pytest.raises(BenchmarkError, match="--limit must be >= 1"):
        evaluate(method="gradcam", limit=0)
    with pytest.raises(BenchmarkError, match="expected a method name"):
        evaluate(method=3)


@pytest.mark.slow
def test_the_readme_python_example_runs(capsys):
    from tests.support.cli_runs import REPO

    readme = (REPO / "README.md").read_text()
    block = readme.split("```python\nfrom benchmark import evaluate\n", 1)[1].split("```", 1)[0]
    exec("from benchmark import evaluate\n" + block, {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and printed[1].startswith("skimage:astronaut ")
