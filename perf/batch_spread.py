"""``python -m perf.batch_spread``: how much LOTS's metric means move with the batch size.

Float32 LOTS is chaotic: each step is divided by the gradient's maximum, so rounding
differences between batch compositions grow over the iterations. This script runs
the same ``test`` (LOTS on the built-in photos) at several batch sizes and prints each
metric's mean per batch size and its spread (max - min), in float32 and, with
``--precision 64``, in float64, where the maps do not depend on the batch size.

Usage: ``python -m perf.batch_spread [--batch-sizes 1,2,4,8] [--iterations 20] [--n-steps 14]
[--limit 8] [--precision 32]``; the float64 check: ``--precision 64 --batch-sizes 1,8``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

from benchmark.metrics.selection import METRIC_KEYS


def run_once(
    batch_size: int,
    precision: str,
    args: argparse.Namespace,
    output: Path,
    method: str = "lots",
    execution: str | None = None,
) -> dict[str, float]:
    """The metric means of one quiet ``test`` run (LOTS iterations from ``args.iterations``;
    ``execution``: ``--execution``, else the device's default)."""
    from benchmark.cli import main

    argv = [
        "test",
        "--method",
        method,
        "--limit",
        str(args.limit),
        "--batch-size",
        str(batch_size),
        "--metrics.n_steps",
        str(args.n_steps),
        "--precision",
        precision,
        "--logger",
        "none",
        "--overlay-images",
        "0",
        "--output",
        str(output),
        *(["--method.iterations", str(args.iterations)] if method == "lots" else []),
        *(["--execution", execution] if execution else []),
    ]
    if getattr(args, "data", None):
        argv += ["--data", args.data]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"run failed: {' '.join(argv)}")
    folder = Path([line for line in out.getvalue().splitlines() if line.startswith("run folder: ")][-1][12:])
    return json.loads((folder / "results.json").read_text())["metrics"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.batch_spread", description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--n-steps", type=int, default=14)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--precision", default="32", help="comma-separated, e.g. 32,64 (float64 is slow)")
    parser.add_argument(
        "--executions",
        default="",
        help="comma-separated --execution values, e.g. eager,channels_last,compiled (default: the device's own)",
    )
    args = parser.parse_args(argv)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    executions = [e for e in args.executions.split(",") if e] or [None]
    columns = [(e, b) for e in executions for b in sizes]
    print(f"LOTS, {args.limit} built-in photos, {args.iterations} iterations, {args.n_steps} curve steps")
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precision.split(","):
            means = {
                (e, b): run_once(b, precision, args, Path(tmp) / f"{precision}-{e}-{b}", execution=e)
                for e, b in columns
            }
            print(f"\nprecision {precision}")
            print(
                "| metric | "
                + " | ".join(f"{e + ', ' if e else ''}batch {b}" for e, b in columns)
                + " | spread (max - min) |"
            )
            print("|---" * (len(columns) + 2) + "|")
            for key in METRIC_KEYS:
                values = [means[c][key] for c in columns]
                spread = max(values) - min(values)
                print(f"| {key} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {spread:.2e} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
