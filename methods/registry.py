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
import importlib.metadata
from typing import TYPE_CHECKING, Callable

from benchmark.errors import BenchmarkError
from models.plugins import entry_points, import_object, is_import_string, load_entry_point

if TYPE_CHECKING:
    from methods.base import Explainer

#: The entry point group of method plugins.
ENTRY_POINT_GROUP = "saliency_benchmark.methods"

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


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return entry_points(ENTRY_POINT_GROUP)


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


def get_method(name: str) -> type["Explainer"]:
    """The method class of a built-in name, an entry point name or an import string."""
    if name in _METHODS:
        return _METHODS[name]
    if name in _RESOLVED:
        return _RESOLVED[name]
    plugins = _entry_points()
    if name in plugins:
        obj, where = load_entry_point("method", name, plugins[name])
        cls = _checked(obj, name, where)
    elif is_import_string(name):
        cls = _checked(import_object("--method", name), name, f"--method {name}")
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
