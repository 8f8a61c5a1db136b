"""The code follows the project's ruff settings (``pyproject.toml``): lint and format.

Run them yourself with ``ruff check .`` and ``ruff format .``; the banned-import rule (TID251)
keeps every import under the one import package ``benchmark``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.cli_runs import REPO


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff_passes(command):
    run = _ruff(*command)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_bare_import_of_a_folder_is_refused(tmp_path):
    """``import metrics`` would reach a user's own package: ruff must refuse it (so the test
    above can fail)."""
    source = tmp_path / "bare.py"
    source.write_text("from metrics import SaliencyScorer\n\nprint(SaliencyScorer)\n")
    run = _ruff("check", "--config", str(REPO / "pyproject.toml"), str(source))
    assert run.returncode == 1 and "TID251" in run.stdout, run.stdout
