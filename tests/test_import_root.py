"""The benchmark installs as one import package, ``benchmark``, so it works inside a research
project that has its own ``models/``, ``metrics/``, ``methods/``, ``datamodules/`` and ``perf/``.

From such a folder, (a) the command line runs a method, (b) a script there that imports its own
``models`` first runs ``evaluate()``, and (c) a plugin method defined there runs; each against
the editable install the tests run in and against a wheel built from a clean clone of the
repository and installed into a fresh virtual environment. The fresh environment borrows the
already installed dependencies (torch, Lightning, ...) through a ``.pth`` line instead of
installing gigabytes again; ``pip`` resolves the wheel's requirements against them offline, and
the product itself comes only from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.support.cli_runs import REPO, isolated_env

pytestmark = pytest.mark.slow

#: The user's own packages, named like the benchmark's folders; each says whose it is.
USER_PACKAGES = ("models", "metrics", "methods", "datamodules", "perf", "core")

PLUGIN = '''
import torch

from benchmark.methods import Explainer


class Ramp(Explainer):
    """A left-to-right ramp, the same for every image: a plugin defined in the user's project."""

    def explain(self, images, classes):
        batch, _, height, width = images.shape
        ramp = torch.linspace(0, 1, width, dtype=images.dtype, device=images.device)
        return ramp.expand(batch, height, width).clone()
'''

SCRIPT = """
import models  # the project's own, imported before the benchmark
import metrics

from benchmark import evaluate

results = evaluate(method="random", limit=1, execution="channels_last", metrics={"n_steps": 4})
assert models.OWNER == metrics.OWNER == "the user's project", (models, metrics)
print("deletion", results.metrics["deletion"])
"""

#: Options that keep each run to seconds: one photo, 4 curve steps, no compile, no W&B.
QUICK = ["--limit", "1", "--metrics.n_steps", "4", "--execution", "channels_last", "--logger", "none"]


def user_project(root: Path) -> Path:
    """A research project's folder with its own packages named like the benchmark's folders."""
    root.mkdir()
    for name in USER_PACKAGES:
        (root / name).mkdir()
        # A package whose names the benchmark would fail on if it imported it by mistake.
        (root / name / "__init__.py").write_text('OWNER = "the user\'s project"\n')
    (root / "my_methods.py").write_text(PLUGIN)
    (root / "evaluate_here.py").write_text(SCRIPT)
    return root


def _run(python: Path | str, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, f"{args}\n{run.stdout}\n{run.stderr}"
    return run


def _run_folder(out: str) -> Path:
    return Path([line for line in out.splitlines() if line.startswith("run folder: ")][-1].removeprefix("run folder: "))


def wheel_environment(root: Path) -> Path:
    """A fresh virtual environment holding the wheel of a clean clone; its python."""
    clone = root / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=300)
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(clone)],
        check=True,
        timeout=600,
    )
    (wheel,) = dist.glob("*.whl")
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"benchmark"}, top_level

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --force-reinstall: the borrowed folder holds the editable install's metadata of the same version
    install = ["install", "--quiet", "--no-index", "--no-deps", "--force-reinstall", str(wheel)]
    subprocess.run([str(python), "-m", "pip", *install], check=True, timeout=600)
    return python


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory) -> Path:
    return wheel_environment(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(params=["editable", "wheel"])
def installed(request, tmp_path) -> tuple[Path | str, Path, dict[str, str]]:
    """(python, the user's project folder, environment) for each kind of install."""
    python = sys.executable if request.param == "editable" else request.getfixturevalue("wheel_python")
    env = {**os.environ, **isolated_env(tmp_path / "home")}
    env.pop("PYTHONPATH", None)
    return python, user_project(tmp_path / "project"), env


def test_the_product_is_imported_from_its_install_not_the_users_folders(installed):
    python, project, env = installed
    where = _run(
        python,
        [
            "-c",
            "import benchmark.metrics, benchmark.methods, metrics; print(benchmark.metrics.__file__, metrics.OWNER)",
        ],
        project,
        env,
    ).stdout.split()
    assert Path(where[0]).parent.name == "metrics" and not Path(where[0]).is_relative_to(project)
    if python != sys.executable:  # the wheel's copy, not the repository's folders
        assert Path(where[0]).is_relative_to(Path(python).parents[1]), where[0]
    assert " ".join(where[1:]) == "the user's project"


def test_the_command_line_runs_a_method_in_a_project_with_its_own_packages(installed):
    python, project, env = installed
    run = _run(python, ["-m", "benchmark", "test", "--method", "random", *QUICK, "--output", "runs"], project, env)
    assert (project / _run_folder(run.stdout) / "results.json").is_file()


def test_evaluate_runs_from_a_script_that_imports_its_own_models_first(installed):
    python, project, env = installed
    run = _run(python, ["evaluate_here.py"], project, env)
    assert run.stdout.startswith("deletion "), run.stdout
    assert 0 <= float(run.stdout.split()[1]) <= 100


def test_a_plugin_method_defined_in_the_project_runs(installed):
    python, project, env = installed
    run = _run(
        python, ["-m", "benchmark", "test", "--method", "my_methods:Ramp", *QUICK, "--output", "runs"], project, env
    )
    results = (project / _run_folder(run.stdout) / "results.json").read_text()
    assert "my_methods:Ramp" in results
