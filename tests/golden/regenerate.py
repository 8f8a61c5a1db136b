"""Rewrite the golden files, and measure the float32 spread behind their bounds.

    python -m tests.golden.regenerate             # <name>.csv for every float64 and float32 run
    python -m tests.golden.regenerate --measure   # also measured.json: each run at batch 1/4 x
                                                  # threads 1/2 against its golden file

Run it alone on the machine (it takes minutes) and commit the files in a commit that says why
the numbers moved. ``--sample DIR`` names the ImageNet sample folder (default: the one the
tests use).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
from pathlib import Path

import torch

from tests.golden.compare import differences, read_table
from tests.golden.runs import EXECUTION, GOLDEN_DIR, RUNS, VARIANTS, GoldenRun
from tests.support.cli_runs import run_in_process
from tests.support.helpers import SHARED_SAMPLE


def run_once(run: GoldenRun, sample: Path, output: Path, execution: list[str] = EXECUTION) -> list[dict[str, str]]:
    """Run ``run`` (with torch's thread count restored afterwards) and return its table."""
    threads = torch.get_num_threads()
    try:
        result = run_in_process([*run.command(sample, execution), "--output", str(output)])
    finally:
        torch.set_num_threads(threads)
    if result.code != 0:
        raise RuntimeError(f"{run.name} failed:\n{result.err[-3000:]}")
    return read_table(result.run_dir / "per_sample.csv")


def write_golden(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _finite(spread: dict[str, float]) -> dict[str, float | str]:
    return {k: (v if math.isfinite(v) else "undefined in one run only") for k, v in spread.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden.regenerate", description=__doc__.split("\n")[0])
    parser.add_argument("--measure", action="store_true", help="also measure the spread over batch sizes and threads")
    parser.add_argument("--sample", type=Path, default=SHARED_SAMPLE, help="the ImageNet sample folder")
    parser.add_argument("--only", help="comma-separated run names (default: every run)")
    args = parser.parse_args(argv)
    runs = [r for r in RUNS if args.only is None or r.name in args.only.split(",")]
    measured_file = GOLDEN_DIR / "measured.json"
    measured: dict[str, dict] = json.loads(measured_file.read_text()) if args.only and measured_file.is_file() else {}
    measured = {name: value for name, value in measured.items() if name in {r.name for r in RUNS}}
    with tempfile.TemporaryDirectory() as scratch:
        for run in runs:
            if run.kind != "twin":
                rows = run_once(run, args.sample, Path(scratch) / run.name)
                write_golden(run.file, rows)
                print(f"wrote {run.file.name}: {len(rows)} images", file=sys.stderr)
            if not args.measure:
                continue
            golden = read_table(run.file)
            measured[run.name] = {}
            for label, execution in VARIANTS.items():
                rows = run_once(run, args.sample, Path(scratch) / f"{run.name}-{len(measured[run.name])}", execution)
                problems, spread = differences(golden, rows)
                measured[run.name][label] = {"exact_mismatches": problems, "max_abs_difference": _finite(spread)}
                print(f"{run.name} [{label}]: {problems or 'exact columns equal'}; {_finite(spread)}", file=sys.stderr)
    if args.measure:
        ordered = {r.name: measured[r.name] for r in RUNS if r.name in measured}
        measured_file.write_text(json.dumps(ordered, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
