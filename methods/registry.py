"""Saliency methods resolved by name (``--method lots``), as timm resolves models.

A name is looked up, in this order, among

1. the built-in methods (``register_method``);
2. the entry points of the group ``saliency_benchmark.methods`` of the installed packages
   (``centre_gaussian = "my_package.methods:CentreGaussian"`` in a plugin's ``pyproject.toml``);
3. an import string ``package.module:Class`` naming an :class:`~methods.base.Explainer`
   subclass in the current environment (an installed package or the current folder).

Import strings come from the command line or from Python only: a config file may not name code
to import (``benchmark.config`` refuses it), so a downloaded YAML file cannot run anything.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import re
import sys
from typing import TYPE_CHECKING, Callable

from benchmark.errors import BenchmarkError

if TYPE_CHECKING:
    from methods.base import Explainer

#: The entry point group of method plugins.
ENTRY_POINT_GROUP = "saliency_benchmark.methods"
#: ``package.module:Attribute`` (dotted module path, one attribute).
IMPORT_STRING = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")

_METHODS: dict[str, type["Explainer"]] = {}
_RESOLVED: dict[str, type["Explainer"]] = {}


def register_method(name: str) -> Callable[[type["Explainer"]], type["Explainer"]]:
    """Class decorator: make an :class:`~methods.base.Explainer` available as ``name``."""

    def add(cls: type["Explainer"]) -> type["Explainer"]:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        cls.method_name = name
        _METHODS[name] = cls
        return cls

    return add


def is_import_string(name: str) -> bool:
    """Whether ``name`` is ``package.module:Class`` (code to import) rather than a registry name."""
    return bool(IMPORT_STRING.match(name))


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def method_names() -> list[str]:
    """The built-in methods, then the installed plugins' entry point names."""
    return [*_METHODS, *(name for name in _entry_points() if name not in _METHODS)]


def _checked(obj: object, name: str, where: str) -> type["Explainer"]:
    from methods.base import Explainer

    if not (isinstance(obj, type) and issubclass(obj, Explainer)):
        raise BenchmarkError(
            f"{where} is {obj!r}, not a subclass of methods.Explainer: a method is a class with a config "
            "dataclass (config_class) and explain(images, classes) -> maps (see the README, 'Evaluate your own "
            "method')"
        )
    if not getattr(obj, "method_name", ""):
        obj.method_name = name
    return obj


def _load_entry_point(name: str, ep: importlib.metadata.EntryPoint) -> type["Explainer"]:
    package = ep.dist.name if ep.dist is not None else "an installed package"
    try:
        obj = ep.load()
    except Exception as error:  # noqa: BLE001 - any failure of the plugin's import is reported
        raise BenchmarkError(
            f"method {name!r}: the entry point {ep.value!r} of package {package} ({ENTRY_POINT_GROUP}) does not "
            f"resolve: {type(error).__name__}: {error}; reinstall or fix {package}"
        ) from None
    return _checked(obj, name, f"method {name!r} (entry point {ep.value!r} of package {package})")


def _import(name: str) -> type["Explainer"]:
    module_name, _, attribute = name.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # `python -m benchmark` has the current folder; a console script does not
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BenchmarkError(
            f"--method {name}: cannot import {module_name} ({error}); install the package or run from the folder "
            "that holds it"
        ) from None
    if not hasattr(module, attribute):
        raise BenchmarkError(f"--method {name}: {module_name} has no attribute {attribute!r}")
    return _checked(getattr(module, attribute), name, f"--method {name}")


def get_method(name: str) -> type["Explainer"]:
    """The method class of a built-in name, an entry point name or an import string."""
    if name in _METHODS:
        return _METHODS[name]
    if name in _RESOLVED:
        return _RESOLVED[name]
    plugins = _entry_points()
    if name in plugins:
        cls = _load_entry_point(name, plugins[name])
    elif is_import_string(name):
        cls = _import(name)
    else:
        known = [*_METHODS, *plugins]
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise BenchmarkError(
            f"unknown method {name!r}{hint}; choose one of: {', '.join(known)}, or name your own as "
            "package.module:Class"
        ) from None
    _RESOLVED[name] = cls
    return cls
