"""Hostile files: pickles and YAML that try to run code are refused; no API key is written
anywhere a run writes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from benchmark.cli import main
from tests.support.cli_runs import run_in_process


class _TouchesAFile:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(path: Path, marker: Path) -> Path:
    with path.open("wb") as handle:
        pickle.dump({"targets": _TouchesAFile(marker)}, handle, protocol=2)
    return path


def test_a_targets_file_that_runs_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = _evil_pickle(tmp_path / "targets.pt", marker)
    code = main(
        ["test", "--method.target", "class", "--method.targets_file", str(evil), "--output", str(tmp_path / "o")]
    )
    assert code == 2 and "not a readable targets file" in capsys.readouterr().err
    assert not marker.exists()


def test_a_weights_file_that_runs_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = _evil_pickle(tmp_path / "weights.pth", marker)
    code = main(
        [
            "test",
            "--model",
            "resnet50",
            "--model.weights",
            str(evil),
            "--output",
            str(tmp_path / "o"),
            "--method",
            "gradcam",
            "--limit",
            "1",
        ]
    )
    assert code == 2 and "cannot be loaded safely" in capsys.readouterr().err
    assert not marker.exists()


def test_a_config_file_cannot_instantiate_anything(tmp_path, capsys):
    marker = tmp_path / "pwned"
    for text in (
        f"method: !!python/object/apply:os.system ['touch {marker}']\n",
        "model:\n  name: !!python/name:os.system\n",
        "method:\n  class_path: torch.nn.Identity\n",
    ):
        config = tmp_path / "evil.yaml"
        config.write_text(text)
        assert main(["test", "--config", str(config), "--output", str(tmp_path / "o")]) == 2
        assert capsys.readouterr().err.startswith(f"error: --config {config}")
    assert not marker.exists() and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_no_api_key_is_written_to_the_run_folder_logs_or_wandb(tmp_path, monkeypatch):
    key = "k3y" * 13 + "z"  # 40 characters, like a W&B key
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run = run_in_process(
        [
            "test",
            "--method",
            "gradcam",
            "--limit",
            "2",
            "--metrics.n_steps",
            "4",
            "--logger",
            "wandb",
            "--output",
            str(tmp_path / "runs"),
        ]
    )
    assert run.code == 0, run.err
    assert key not in run.out + run.err
    roots = [
        tmp_path / "runs",
        *(Path(os.environ[v]) for v in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR") if os.environ.get(v)),
    ]
    written = [p for root in roots if root.is_dir() for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in written), "the offline W&B run is in the run folder"
    for path in written:
        assert key.encode() not in path.read_bytes(), path
