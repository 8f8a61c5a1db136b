"""``evaluate(...)``: the ``test`` command from Python (a notebook needs nothing else).

    from benchmark import evaluate

    results = evaluate(method="gradcam", limit=8, metrics={"n_steps": 56})
    results.metrics["deletion"], results.intervals["deletion"], results.per_sample[0]

Runs exactly the pipeline of ``python -m benchmark test`` (same defaults, checks, metrics and
run folder) on one process. ``method`` is a registered name, an entry point name, an import
string ``package.module:Class`` or an ``Explainer`` subclass; ``model`` a registered name or a
model string the command line accepts; the other keyword arguments are the command line's
options with underscores (``limit=8``, ``batch_size=4``, ``precision="64"``), plus
``method_options`` (``--method.<name>``) and ``metrics`` (``--metrics.<name>``). The run folder
is written under ``output`` when it is given, else in a temporary folder that is removed.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError


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


def _method_name(method: Any) -> str:
    from methods import Explainer

    if isinstance(method, str):
        return method
    if isinstance(method, type) and issubclass(method, Explainer):
        return f"{method.__module__}:{method.__qualname__}"
    raise BenchmarkError(
        f"evaluate(method=...): expected a method name, an import string or an Explainer subclass, "
        f"got {type(method).__name__}"
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
    model: str = "efficientnet_lite0",
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
    from benchmark.devices import apply_threads
    from benchmark.run import build_datamodule
    from benchmark.run import evaluate as evaluate_run

    known = {f.name for f in fields(RunOptions)} - {"method", "methods", "model", "data", "output", "resume"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BenchmarkError(f"evaluate(): unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    name = _method_name(method)
    with tempfile.TemporaryDirectory(prefix="saliency-benchmark-") as scratch:
        layer = Overrides(
            source="command line",
            options={"logger": "none", **options, "method": name, "model": model, "data": data,
                     "output": output if output is not None else scratch},
            method=dict(method_options or {}),
            metrics=dict(metrics or {}),
        )
        config = resolve([layer])
        apply_threads(config.options)
        evaluation = evaluate_run(config, name, build_datamodule(config))
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
