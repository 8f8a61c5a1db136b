"""The golden runs (tests/golden/): real runs of every method family and every metric, compared
per image with the numbers pinned when they were made (see tests/golden/runs.py)."""

from __future__ import annotations

import json
import math

import pytest

from benchmark.methods.cam import DEVICE_METHODS
from tests.golden.compare import differences, read_table
from tests.golden.regenerate import run_once
from tests.golden.runs import (
    FLOAT32_BOUNDS,
    FLOAT64_TOLERANCE,
    FLOAT_COLUMNS,
    GOLDEN_DIR,
    LOTS_FLOAT32_BOUNDS,
    RUNS,
    VARIANTS,
    GoldenRun,
)
from tests.support.helpers import shared_sample_dir


def _bounds(run: GoldenRun) -> dict[str, float]:
    if run.kind == "float64":
        return dict.fromkeys(FLOAT_COLUMNS, FLOAT64_TOLERANCE)
    return LOTS_FLOAT32_BOUNDS if run.kind == "twin" else FLOAT32_BOUNDS


@pytest.mark.slow
@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_a_golden_run_gives_its_pinned_numbers_per_image(run, tmp_path):
    rows = run_once(run, shared_sample_dir(), tmp_path)
    problems, spread = differences(read_table(run.file), rows)
    assert not problems, problems
    bounds = _bounds(run)
    over = {column: (value, bounds[column]) for column, value in spread.items() if value > bounds[column]}
    assert not over, f"{run.name}: column: (max |difference|, bound): {over}"


def test_every_method_family_and_metric_is_pinned():
    methods = {run.args[run.args.index("--method") + 1] for run in RUNS}
    assert {"lots", "gradcam", "gradcampp", "layercam", "gradcamelementwise", "smoothgradcampp", "random"} <= methods
    assert {"float64", "float32", "twin"} == {run.kind for run in RUNS}
    assert methods - set(DEVICE_METHODS) - {"lots", "smoothgradcampp"}  # one CAM through the grad-cam package
    pinned = {column for run in RUNS for column in read_table(run.file)[0]}
    assert set(FLOAT_COLUMNS) <= pinned  # every metric, the extras included
    for run in RUNS:
        rows = read_table(run.file)
        assert len(rows) == 4, run.name
        for column in FLOAT_COLUMNS:
            if column in rows[0]:
                assert any(r[column] != "" for r in rows), f"{run.name}: {column} is never defined"


def test_the_bounds_cover_the_measured_spread():
    measured = json.loads((GOLDEN_DIR / "measured.json").read_text())
    assert set(measured) == {run.name for run in RUNS}
    for run in RUNS:
        bounds = _bounds(run)
        assert set(measured[run.name]) == set(VARIANTS), run.name
        for variant, found in measured[run.name].items():
            assert found["exact_mismatches"] == [], (run.name, variant)
            for column, value in found["max_abs_difference"].items():
                assert isinstance(value, float) and value <= bounds[column], (run.name, variant, column, value)


def test_the_comparison_catches_a_moved_number_and_a_changed_class():
    golden = read_table(GOLDEN_DIR / "lots_float64_sample.csv")
    moved = [dict(row) for row in golden]
    moved[2]["deletion"] = repr(float(moved[2]["deletion"]) + 1e-8)
    moved[1]["pred_class"] = "999"
    moved[3]["coherency"] = ""  # undefined where the golden run had a value
    problems, spread = differences(golden, moved)
    assert problems == [f"sample {golden[1]['sample_id']} pred_class: '999' != {golden[1]['pred_class']!r}"]
    assert spread["deletion"] == pytest.approx(1e-8, rel=1e-3) and spread["deletion"] > FLOAT64_TOLERANCE
    assert math.isinf(spread["coherency"])
    assert spread["avg_drop"] == 0.0
