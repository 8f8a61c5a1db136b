"""``python -m perf.precision``: what ``--precision bf16`` (and 64) does to the metric means.

Runs the same ``test`` per method at each precision and prints the means and their
differences from float32. bf16 is opt-in because it changes the numbers; this is how much.

Usage: ``python -m perf.precision [--methods gradcam,lots] [--precisions 32,bf16]
[--limit 8] [--data DIR] [--iterations 20] [--n-steps 14] [--batch-size 8]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmark.metrics.selection import METRIC_KEYS
from perf.batch_spread import run_once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.precision", description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="gradcam,lots")
    parser.add_argument("--precisions", default="32,bf16")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--data", default=None, help="image folder (default: the built-in photos)")
    parser.add_argument("--iterations", type=int, default=20, help="LOTS iterations")
    parser.add_argument("--n-steps", type=int, default=14)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    precisions = args.precisions.split(",")
    print(
        f"{args.limit} images ({args.data or 'built-in photos'}), LOTS {args.iterations} iterations, "
        f"{args.n_steps} curve steps, batch {args.batch_size}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            means, seconds = {}, {}
            for precision in precisions:
                start = time.perf_counter()
                means[precision] = run_once(
                    args.batch_size, precision, args, Path(tmp) / f"{method}-{precision}", method
                )
                seconds[precision] = time.perf_counter() - start
            print(f"\n{method}")
            print(
                "| metric | " + " | ".join(precisions) + " | " + " | ".join(f"{p} - 32" for p in precisions[1:]) + " |"
            )
            print("|---" * (2 * len(precisions)) + "|")
            for key in METRIC_KEYS:
                values = [means[p][key] for p in precisions]
                diffs = [means[p][key] - means[precisions[0]][key] for p in precisions[1:]]
                print(
                    f"| {key} | "
                    + " | ".join(f"{v:.3f}" for v in values)
                    + " | "
                    + " | ".join(f"{d:+.3f}" for d in diffs)
                    + " |"
                )
            print(
                "| run seconds | "
                + " | ".join(f"{seconds[p]:.1f}" for p in precisions)
                + " |"
                + " |" * (len(precisions) - 1)
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
