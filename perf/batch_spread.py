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

from metrics.scorer import METRIC_KEYS


def run_once(
    batch_size: int, precision: str, args: argparse.Namespace, output: Path, method: str = "lots"
) -> dict[str, float]:
    """The metric means of one quiet ``test`` run (LOTS iterations from ``args.iterations``)."""
    from benchmark.cli import main

    argv = [
        "test", "--method", method, "--limit", str(args.limit), "--batch-size", str(batch_size),
        "--metrics.n_steps", str(args.n_steps), "--precision", precision, "--logger", "none",
        "--overlay-images", "0", "--output", str(output),
        *(["--method.iterations", str(args.iterations)] if method == "lots" else []),
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
    args = parser.parse_args(argv)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(f"LOTS, {args.limit} built-in photos, {args.iterations} iterations, {args.n_steps} curve steps")
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precision.split(","):
            means = {b: run_once(b, precision, args, Path(tmp) / f"{precision}-{b}") for b in sizes}
            print(f"\nprecision {precision}")
            print("| metric | " + " | ".join(f"batch {b}" for b in sizes) + " | spread (max - min) |")
            print("|---" * (len(sizes) + 2) + "|")
            for key in METRIC_KEYS:
                values = [means[b][key] for b in sizes]
                spread = max(values) - min(values)
                print(f"| {key} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {spread:.2e} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
