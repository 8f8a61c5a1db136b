"""Reading per-image tables and measuring how far two of them are apart, column by column."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from tests.golden.runs import EXACT_COLUMNS, FLOAT_COLUMNS


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of a per_sample.csv (or golden file), ``file`` reduced to its name."""
    rows = list(csv.DictReader(Path(path).open()))
    for row in rows:
        row["file"] = Path(row["file"]).name
        row.pop("ms_per_map", None)
    return rows


def _value(text: str) -> float:
    return math.nan if text == "" else float(text)


def differences(expected: list[dict[str, str]], got: list[dict[str, str]]) -> tuple[list[str], dict[str, float]]:
    """``(mismatches of the exact columns, max |difference| of each float column)``; a value
    undefined in one table and not in the other counts as an infinite difference."""
    problems: list[str] = []
    if [r["sample_id"] for r in expected] != [r["sample_id"] for r in got]:
        return [f"sample ids {[r['sample_id'] for r in got]} != {[r['sample_id'] for r in expected]}"], {}
    columns = [c for c in FLOAT_COLUMNS if c in expected[0]]
    if set(expected[0]) != set(got[0]):
        problems.append(f"columns {sorted(got[0])} != {sorted(expected[0])}")
    spread = {c: 0.0 for c in columns}
    for want, have in zip(expected, got):
        for column in EXACT_COLUMNS:
            if column in want and want[column] != have.get(column):
                problems.append(f"sample {want['sample_id']} {column}: {have.get(column)!r} != {want[column]!r}")
        for column in columns:
            a, b = _value(want[column]), _value(have.get(column, ""))
            if math.isnan(a) and math.isnan(b):
                continue
            difference = abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf
            spread[column] = max(spread[column], difference)
    return problems, spread
