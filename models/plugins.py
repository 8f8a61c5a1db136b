"""Loading code from outside the benchmark, for the model and the method registries alike:
installed packages' entry points and import strings ``package.module:attribute``.

It lives here because ``models`` is the lowest package both registries may import; each
registry checks what it loaded (a model factory, an ``Explainer`` subclass) itself.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
from typing import Any

from benchmark.errors import BenchmarkError

#: ``package.module:attribute`` (dotted module path, one attribute).
IMPORT_STRING = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


def is_import_string(name: str) -> bool:
    """Whether ``name`` has the form ``package.module:attribute``."""
    return bool(IMPORT_STRING.match(name))


def entry_points(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    """The installed packages' entry points of ``group``, by name."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=group)}


def load_entry_point(kind: str, name: str, ep: importlib.metadata.EntryPoint) -> tuple[Any, str]:
    """``(object, where)`` of entry point ``ep`` (``where`` names it for the caller's checks);
    a failing import is one BenchmarkError naming the package."""
    package = ep.dist.name if ep.dist is not None else "an installed package"
    try:
        obj = ep.load()
    except Exception as error:  # noqa: BLE001 - any failure of the plugin's import is reported
        raise BenchmarkError(
            f"{kind} {name!r}: the entry point {ep.value!r} of package {package} ({ep.group}) does not "
            f"resolve: {type(error).__name__}: {error}; reinstall or fix {package}"
        ) from None
    return obj, f"{kind} {name!r} (entry point {ep.value!r} of package {package})"


def import_object(option: str, name: str) -> Any:
    """The attribute named by the import string ``name`` (given as ``option``, e.g. ``--model``),
    from an installed package or the current folder."""
    module_name, _, attribute = name.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # `python -m benchmark` has the current folder; a console script does not
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BenchmarkError(
            f"{option} {name}: cannot import {module_name} ({error}); install the package or run from the folder "
            "that holds it"
        ) from None
    if not hasattr(module, attribute):
        raise BenchmarkError(f"{option} {name}: {module_name} has no attribute {attribute!r}")
    return getattr(module, attribute)
