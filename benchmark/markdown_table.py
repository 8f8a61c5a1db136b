"""The results table printed at the end of a run, in markdown: metric headers, ``mean [low, high]``
cells, rows (reused by ``table``, the estimate and the HTML report)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from benchmark.metrics.selection import METRIC_KEYS, metric_info


def metric_header(key: str, info: dict[str, Any] | None = None) -> str:
    """``Title ↑`` (higher is better) or ``Title ↓`` of a metric: from ``info`` (a results.json's
    ``metric_info`` entry) when given, else from the metric's own class."""
    info = info or metric_info(key)
    return f"{info['title']} {'↑' if info['higher_is_better'] else '↓'}"


def value_text(value: Any, digits: int = 2) -> str:
    """A table cell's number: ``-`` for none, ``nan``, or ``digits`` decimals."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


#: The cell of a metric that cannot be computed for a method (the reason is printed below the table).
NOT_COMPUTABLE = "n/a"


def metric_cell(results: dict[str, Any], key: str) -> str:
    """``mean [low, high]`` of metric ``key`` in a ``results.json`` dict, or n/a."""
    if key in results.get("not_computable", {}):
        return NOT_COMPUTABLE
    return interval_cell(results["metrics"][key], results.get("ci95", {}).get(key))


def interval_text(interval: Sequence[Any] | None, digits: int = 2) -> str:
    """``[low, high]``, or ``""`` when there is no interval."""
    if not interval or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in interval):
        return ""
    low, high = interval
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def interval_cell(value: Any, interval: Sequence[Any] | None, digits: int = 2) -> str:
    """``mean [low, high]``; just the mean when there is no interval."""
    return " ".join(part for part in (value_text(value, digits), interval_text(interval, digits)) if part)


def metric_keys(results: dict[str, Any]) -> list[str]:
    """The metric keys of a ``results.json`` dict, in its order."""
    return list(results["metrics"])


def table_extras(results: dict[str, Any]) -> dict[str, str]:
    """The method extras a ``results.json`` dict puts in the results table: name -> title (the
    method declares them, e.g. LOTS's ``iterations`` titled "LOTS iters")."""
    declared = results.get("extra_columns", {})
    return {name: spec.get("title", name) for name, spec in declared.items() if spec.get("in_table")}


def results_row(results: dict[str, Any], extras: Sequence[str] | None = None) -> list[str]:
    """One table row from a ``results.json`` dict: each metric's mean with its 95% interval,
    ms per map and the means of the method extras ``extras`` (default: its own table extras)."""
    extras = list(table_extras(results)) if extras is None else extras
    return [
        results["method"],
        results["model"],
        str(results["images"]),
        *(metric_cell(results, key) for key in metric_keys(results)),
        value_text(results["ms_per_map"], 1),
        *(value_text(results.get("extras", {}).get(name), 1) for name in extras),
    ]


def results_header(keys: Sequence[str] = METRIC_KEYS, extra_titles: Sequence[str] = ()) -> list[str]:
    return ["method", "model", "images", *(metric_header(k) for k in keys), "ms/map", *extra_titles]


#: Printed under a table whose cells hold intervals.
INTERVAL_NOTE = "Cells: mean [95% bootstrap interval over images]."


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-style markdown table with aligned columns (readable as plain text too)."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    right = [i > 1 for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
