"""``evaluate(...)``: the ``test`` command from Python (a notebook needs nothing else).

    from benchmark import evaluate

    results = evaluate(method="gradcam", limit=8, metrics={"n_steps": 56})
    results.metrics["deletion"], results.intervals["deletion"], results.per_sample[0]

Runs exactly the pipeline of ``python -m benchmark test`` (same defaults, checks, metrics and
run folder) on one process. ``method`` is a registered name, an entry point name, an import
string ``package.module:Class``, an ``Explainer`` subclass or instance (its class and config are
used), or a function / object / class with ``explain(images, classes)`` (see
:mod:`benchmark.methods.wrapped`); ``model`` a registered name, a model string the command line accepts,
or an ``nn.Module`` mapping normalized images to logits (with ``model_mean`` and
``model_std``, its normalization); the other keyword arguments are the command line's
options with underscores (``limit=8``, ``batch_size=4``, ``precision="64"``), plus
``method_options`` (``--method.<name>``) and ``metrics`` (``--metrics.<name>``). The run folder
is written under ``output`` when it is given, else in a temporary folder that is removed.
"""

from __future__ import annotations

import csv
import dataclasses
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchmarkError


@dataclass
class Evaluated:
    """What an evaluation produced: the means and 95% intervals of every metric (``None`` where
    undefined or not computable), one dict per image, the whole ``results.json`` content and the
    run folder (``None`` when ``output`` was not given)."""

    method: str
    model: str
    metrics: dict[str, float | None]
    intervals: dict[str, tuple[float | None, float | None]]
    per_sample: list[dict[str, Any]]
    results: dict[str, Any] = field(repr=False)
    run_dir: Path | None = None


def _code_name(obj: Any) -> str:
    """``module:qualname`` of a class or function (of an instance: of its class)."""
    target = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    return f"{target.__module__}:{target.__qualname__}"


def _method_name(method: Any, method_options: dict[str, Any]) -> str:
    """The registry name of ``method``; an object given from Python is added to the registry
    (never imported again); an Explainer instance adds its config to ``method_options``."""
    from benchmark.methods import Explainer
    from benchmark.methods.registry import METHODS
    from benchmark.methods.wrapped import can_wrap

    if isinstance(method, str):
        return method
    if isinstance(method, Explainer):
        for name, value in dataclasses.asdict(method.config).items():
            method_options.setdefault(name, value)
        method = type(method)
    if isinstance(method, type) and issubclass(method, Explainer) or can_wrap(method):
        name = (
            method.method_name
            if isinstance(method, type) and getattr(method, "method_name", "")
            else _code_name(method)
        )
        if name not in METHODS.builtin():
            METHODS.add(name, method)  # again on each call: a notebook may have redefined it
        return name
    raise BenchmarkError(
        "evaluate(method=...): expected a method name, an import string, an Explainer subclass or instance, or a "
        f"function or object with explain(images, classes), got {type(method).__name__}"
    )


def _model_name(model: Any, options: dict[str, Any]) -> str:
    from torch import nn

    from benchmark.models import add_model

    if isinstance(model, str):
        return model
    if isinstance(model, nn.Module):
        return add_model(model, options.get("model_mean"), options.get("model_std"), name=_code_name(model))
    raise BenchmarkError(
        f"evaluate(model=...): expected a model name, an import string or an nn.Module, got {type(model).__name__}"
    )


def _typed(value: str) -> Any:
    if value == "":
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def _read_per_sample(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [{key: _typed(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def evaluate(
    method: Any = "lots",
    model: Any = "efficientnet_lite0",
    data: str | None = None,
    *,
    output: str | None = None,
    method_options: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    **options: Any,
) -> Evaluated:
    """Evaluate ``method`` on ``model`` over ``data`` (default: the built-in photos); see the
    module docstring. Raises :class:`BenchmarkError` for a bad option, as the command line does."""
    from benchmark.config import Overrides, RunOptions, resolve
    from benchmark.devices import apply_run_settings
    from benchmark.evaluation import evaluate_method
    from benchmark.run_data import build_datamodule

    known = {f.name for f in fields(RunOptions)} - {"method", "methods", "model", "data", "output", "resume"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BenchmarkError(f"evaluate(): unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    method_options = dict(method_options or {})
    name = _method_name(method, method_options)
    model = _model_name(model, options)
    with tempfile.TemporaryDirectory(prefix="saliency-benchmark-") as scratch:
        layer = Overrides(
            source="command line",
            options={
                "logger": "none",
                **options,
                "method": name,
                "model": model,
                "data": data,
                "output": output if output is not None else scratch,
            },
            method=method_options,
            metrics=dict(metrics or {}),
        )
        config = resolve([layer])
        apply_run_settings(config.options)
        evaluation = evaluate_method(config, name, build_datamodule(config))
        content = evaluation.content
        per_sample = _read_per_sample(evaluation.run_dir / "per_sample.csv")
    return Evaluated(
        method=name,
        model=model,
        metrics=dict(content["metrics"]),
        intervals={key: tuple(bounds) for key, bounds in content["ci95"].items()},
        per_sample=per_sample,
        results=content,
        run_dir=evaluation.run_dir if output is not None else None,
    )
