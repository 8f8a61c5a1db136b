"""The import contract (``.importlinter``, checked by import-linter): ``benchmark`` over
``methods`` over ``models`` and ``datamodules`` (independent of each other) over ``metrics``,
so no lower package imports ``benchmark``. Run it yourself with ``lint-imports``."""

from __future__ import annotations

import os

from importlinter.cli import lint_imports

from tests.cli_runs import REPO


def _lint(config: str) -> int:
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return lint_imports(config_filename=config, no_cache=True)
    finally:
        os.chdir(cwd)


def test_no_lower_package_imports_a_higher_one():
    assert _lint(str(REPO / ".importlinter")) == 0


def test_the_check_sees_the_real_imports(tmp_path):
    """The same check with the layers upside down must break (so the one above can fail)."""
    reversed_layers = (REPO / ".importlinter").read_text().replace(
        "    benchmark\n    methods\n    models | datamodules\n    metrics\n",
        "    metrics\n    models | datamodules\n    methods\n    benchmark\n",
    )
    assert "    metrics\n    models | datamodules" in reversed_layers
    config = tmp_path / "reversed.ini"
    config.write_text(reversed_layers)
    assert _lint(str(config)) == 1
