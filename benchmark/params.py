"""Typed option values: turn strings from the command line or YAML values into the types a
config declares, with errors that name the option and what it accepts."""

from __future__ import annotations

import dataclasses
import types
import typing
from fractions import Fraction
from typing import Any, Literal

from benchmark.core.errors import BenchmarkError

_NONE_WORDS = {"none", "null", "~", ""}
_TRUE_WORDS = {"true", "yes", "1", "on"}
_FALSE_WORDS = {"false", "no", "0", "off"}


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One option: its name, declared type, default and help."""

    name: str
    annotation: Any
    default: Any
    help: str = ""


def dataclass_parameters(cls: type) -> list[Parameter]:
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        params.append(Parameter(f.name, hints[f.name], default, f.metadata.get("help", "")))
    return params


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is list:
        return f"comma-separated {type_name(typing.get_args(annotation)[0])}s"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    return float(Fraction(text)) if "/" in text else float(text)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(str(value).strip())


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise ValueError


def coerce(value: Any, annotation: Any, option: str) -> Any:
    """Convert ``value`` to ``annotation`` or raise BenchmarkError naming ``option``."""
    try:
        return _coerce(value, annotation)
    except (ValueError, TypeError, ZeroDivisionError):
        raise BenchmarkError(f"{option}: {value!r} is not a valid {type_name(annotation)}") from None


def _coerce(value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if type(None) in args and (value is None or str(value).strip().lower() in _NONE_WORDS):
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg)
            except (ValueError, TypeError, ZeroDivisionError):
                continue
        raise ValueError
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value in choices:
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and str(value) in choices:
            return str(value)  # YAML reads `precision: 64` as a number
        raise ValueError
    if origin is list:
        (item,) = typing.get_args(annotation)
        items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
        return [_coerce(v.strip() if isinstance(v, str) else v, item) for v in items]
    if annotation is bool:
        return _to_bool(value)
    if annotation is int:
        return _to_int(value)
    if annotation is float:
        return _to_float(value)
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise TypeError
        return str(value)
    if annotation is Any:
        return value
    raise TypeError(f"unsupported option type {annotation!r}")
