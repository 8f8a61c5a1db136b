"""The table printed at the end of a run (and reused by ``table``)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from metrics.scorer import HIGHER_IS_BETTER, METRIC_KEYS

METRIC_TITLES = {
    "avg_drop": "Avg Drop",
    "avg_increase": "Avg Increase",
    "coherency": "Coherency",
    "insertion": "Insertion",
    "deletion": "Deletion",
}


def metric_header(key: str) -> str:
    return f"{METRIC_TITLES[key]} {'↑' if HIGHER_IS_BETTER[key] else '↓'}"


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def results_row(results: dict[str, Any]) -> list[str]:
    """One table row from a ``results.json`` dict."""
    iterations = results.get("extras", {}).get("iterations")
    return [
        results["method"],
        results["model"],
        str(results["images"]),
        *(_cell(results["metrics"][key]) for key in METRIC_KEYS),
        _cell(results["ms_per_map"], 1),
        _cell(iterations, 1),
    ]


RESULTS_HEADER = ["method", "model", "images", *(metric_header(k) for k in METRIC_KEYS), "ms/map", "LOTS iters"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-style markdown table with aligned columns (readable as plain text too)."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    right = [i > 1 for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
