"""The import contract (``.importlinter``, checked by import-linter) on the installed layout.

The repository's top-level folders are installed under the one import package ``benchmark``
(``pyproject.toml``'s ``package-dir``): ``methods/`` is ``benchmark.methods``. import-linter
reads packages from the file system, so the check runs on that layout, made of links in a
temporary folder: the commands and the run over ``methods``, over ``models`` and
``datamodules`` (independent of each other), over ``metrics``, over ``core``; no import
cycle between the modules of a package; the product never imports ``perf``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

from tests.support.cli_runs import REPO


def installed_layout(root: Path) -> Path:
    """``root`` laid out as the wheel installs the repository (links to its files), plus ``perf``."""
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = settings["package-dir"]
    package = root / "benchmark"
    package.mkdir()
    for entry in (REPO / folders["benchmark"]).iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in folders.items():
        parts = name.split(".")
        if len(parts) == 2 and Path(folder).parent == Path(folders["benchmark"]):
            assert Path(folder).name == parts[1], name  # a subpackage of benchmark/, linked with it
        elif len(parts) == 2:
            (package / parts[1]).symlink_to(REPO / folder, target_is_directory=True)
        elif len(parts) > 2:  # a subpackage must sit in its parent's folder, as on disk
            assert Path(folder) == Path(folders[".".join(parts[:-1])]) / parts[-1], name
    assert sorted(settings["packages"]) == sorted(folders), "every installed package needs a package-dir entry"
    (root / "perf").symlink_to(REPO / "perf", target_is_directory=True)
    return root


def _lint(config: Path, layout: Path) -> int:
    """``lint-imports`` run in ``layout`` (a fresh process: this one has imported the repository's
    ``benchmark``, which import-linter would read instead)."""
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]
    command += ["--config", str(config), "--no-cache"]
    run = subprocess.run(command, cwd=layout, capture_output=True, text=True, timeout=300)
    print(run.stdout, run.stderr)
    return run.returncode


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    return installed_layout(tmp_path_factory.mktemp("installed"))


def test_dependencies_point_down_and_no_module_imports_in_a_cycle(layout):
    assert _lint(REPO / ".importlinter", layout) == 0


def _broken(text: str, old: str, new: str, tmp_path: Path) -> Path:
    assert old in text, old
    config = tmp_path / "broken.ini"
    config.write_text(text.replace(old, new))
    return config


def test_the_layers_check_sees_the_real_imports(layout, tmp_path):
    """The layers upside down must break (so the check above can fail)."""
    text = (REPO / ".importlinter").read_text()
    upside_down = _broken(
        text,
        "    methods\n    models | datamodules\n    metrics\n    core\n",
        "    core\n    metrics\n    models | datamodules\n    methods\n",
        tmp_path,
    )
    assert _lint(upside_down, layout) == 1


def test_a_new_module_must_be_given_a_layer(layout, tmp_path):
    """The contract is exhaustive: a module of ``benchmark/`` left out of the layers breaks it."""
    text = (REPO / ".importlinter").read_text()
    assert _lint(_broken(text, " : table : ", " : ", tmp_path), layout) == 1
