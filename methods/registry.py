"""Saliency methods resolved by name (``--method lots``), as timm resolves models."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Callable

from benchmark.errors import BenchmarkError

if TYPE_CHECKING:
    from methods.base import Explainer

_METHODS: dict[str, type["Explainer"]] = {}


def register_method(name: str) -> Callable[[type["Explainer"]], type["Explainer"]]:
    """Class decorator: make an :class:`~methods.base.Explainer` available as ``name``."""

    def add(cls: type["Explainer"]) -> type["Explainer"]:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        cls.method_name = name
        _METHODS[name] = cls
        return cls

    return add


def method_names() -> list[str]:
    return list(_METHODS)


def get_method(name: str) -> type["Explainer"]:
    try:
        return _METHODS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _METHODS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise BenchmarkError(
            f"unknown method {name!r}{hint}; choose one of: {', '.join(_METHODS)}"
        ) from None
