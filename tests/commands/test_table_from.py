"""``table --from``: a table assembled from three ``test`` runs equals ``table`` on the same
methods (table.csv and significance.csv identical, ms per map aside); mismatched runs are
refused with the difference named; runs of two models make two tables; table folders expand
to their methods."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from benchmark.cli import main

COMMON = [
    "--limit",
    "2",
    "--batch-size",
    "2",
    "--metrics.n_steps",
    "4",
    "--execution",
    "channels_last",
    "--logger",
    "none",
    "--overlay-images",
    "2",
    "--metrics.bootstrap",
    "500",
    "--quiet",
]
METHODS = ["random", "gradcam", "layercam"]


def _folder(out: str, prefix: str) -> Path:
    return Path([line for line in out.splitlines() if line.startswith(prefix)][-1][len(prefix) :])


def _without_ms(path: Path) -> list[list[str]]:
    rows = list(csv.reader(path.open()))
    drop = rows[0].index("ms/map ↓")
    return [[cell for i, cell in enumerate(row) if i != drop] for row in rows]


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("table-from")
    runs = []
    for method in METHODS:
        code = main(["test", "--method", method, *COMMON, "--output", str(root / "runs")])
        assert code == 0
        runs.append(sorted((root / "runs").glob(f"{method}_*"))[-1])
    return root, runs


@pytest.mark.slow
def test_a_table_from_three_test_runs_equals_the_table_run(three_runs, capsys):
    root, runs = three_runs
    assert main(["table", "--methods", ",".join(METHODS), *COMMON, "--output", str(root / "table")]) == 0
    table_dir = _folder(capsys.readouterr().out, "table folder: ")
    assert main(["table", "--from", *map(str, runs), "--output", str(root / "from")]) == 0
    out = capsys.readouterr().out
    assembled = _folder(out, "table folder: ")
    for name in ("table.md", "table.csv", "significance.csv", "table.json", "comparison.png", "agreement.png"):
        assert (assembled / name).is_file(), name
    assert _without_ms(assembled / "table.csv") == _without_ms(table_dir / "table.csv")
    assert (assembled / "significance.csv").read_text() == (table_dir / "significance.csv").read_text()
    ours, theirs = (json.loads((d / "table.json").read_text()) for d in (assembled, table_dir))
    assert ours["agreement"] == theirs["agreement"] and ours["pairs"] == theirs["pairs"]
    sources = json.loads((assembled / "sources.json").read_text())
    assert [r["method"] for r in sources["runs"]] == METHODS
    # a table folder stands for its method folders
    assert main(["table", "--from", str(table_dir), "--output", str(root / "again")]) == 0
    again = _folder(capsys.readouterr().out, "table folder: ")
    assert (again / "significance.csv").read_text() == (table_dir / "significance.csv").read_text()


@pytest.mark.slow
def test_mismatched_runs_are_refused_naming_the_difference(three_runs, capsys):
    root, runs = three_runs
    assert (
        main(["test", "--method", "gradcam", *COMMON, "--metrics.n_steps", "6", "--output", str(root / "other")]) == 0
    )
    other = sorted((root / "other").glob("gradcam_*"))[-1]
    capsys.readouterr()
    assert main(["table", "--from", str(runs[0]), str(other), "--output", str(root / "refused")]) == 2
    err = capsys.readouterr().err
    assert "differ in: metrics.n_steps: 4" in err and "vs 6" in err and str(other) in err
    assert not (root / "refused").exists()
    assert main(["table", "--from", str(runs[1]), str(runs[1]), "--output", str(root / "refused")]) == 2
    assert "gradcam on efficientnet_lite0 is given twice" in capsys.readouterr().err
    killed = root / "killed"
    shutil.copytree(runs[0], killed)
    (killed / "results.json").unlink()
    assert main(["table", "--from", str(runs[1]), str(killed), "--output", str(root / "refused")]) == 2
    assert f"test --resume {killed}" in capsys.readouterr().err


@pytest.mark.slow
def test_runs_of_two_models_make_one_table_per_model(three_runs, tmp_path, capsys):
    _, runs = three_runs
    copies = []
    for run in runs[:2]:  # the same runs, as if made with another model
        copy = tmp_path / f"{run.name}-other"
        shutil.copytree(run, copy)
        content = json.loads((copy / "results.json").read_text())
        content["model"] = "resnet50"
        (copy / "results.json").write_text(json.dumps(content))
        copies.append(copy)
    assert main(["table", "--from", *map(str, runs), *map(str, copies), "--output", str(tmp_path / "tables")]) == 0
    folders = sorted(p.name.rsplit("_", 1)[0] for p in (tmp_path / "tables").iterdir())
    assert folders == ["table_efficientnet_lite0", "table_resnet50"]
    resnet = next((tmp_path / "tables").glob("table_resnet50_*"))
    assert [row[0] for row in list(csv.reader((resnet / "table.csv").open()))[1:]] == ["random", "gradcam"]


@pytest.mark.slow
def test_the_report_of_an_assembled_table_folder_follows_its_sources(three_runs, capsys):
    """``report`` on a folder written by ``table --from`` (which holds no run folders, only
    ``sources.json`` naming them) reports the runs it names, in its order; a run folder that
    has moved since is named in one error line."""
    root, runs = three_runs
    assert main(["table", "--from", *map(str, runs), "--output", str(root / "assembled")]) == 0
    assembled = _folder(capsys.readouterr().out, "table folder: ")
    page = root / "assembled.html"
    assert main(["report", str(assembled), "--output", str(page), "--images", "1"]) == 0
    html = page.read_text()
    assert all(f"<td>{method}</td>" in html or f">{method}<" in html for method in METHODS)
    for run in runs:
        assert str(run.resolve()) in html  # the sources list and each method's settings
    moved = root / "moved"
    shutil.copytree(assembled, moved)
    sources = json.loads((moved / "sources.json").read_text())
    sources["runs"][1]["folder"] = str(root / "gone")
    (moved / "sources.json").write_text(json.dumps(sources))
    capsys.readouterr()
    assert main(["report", str(moved), "--output", str(root / "moved.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(root / "gone") in err[0]
