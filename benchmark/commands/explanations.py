"""``explanations``: the x * M images of saved maps, for another tool to explain (:mod:`benchmark.masked_images`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

NAME = "explanations"


def add_parser(
    subparsers, extra_methods: Sequence[str] = (), extra_metrics: Sequence[str] = ()
) -> argparse.ArgumentParser:
    from benchmark import masked_images

    parser = subparsers.add_parser(
        NAME,
        help="write the x * M images of saved maps (to compute the maps Coherency needs)",
        description=masked_images.__doc__.split("\n\n")[0],
    )
    parser.add_argument("--data", default=None, help="the images (default: the built-in photos)")
    parser.add_argument("--maps", required=True, help="the maps: maps.pt, a .pt/.npz with files and maps, or a folder")
    parser.add_argument("--output", required=True, help="folder for the <image stem>.png files")
    parser.add_argument("--channels", default=None, help="multi-channel maps: sum_abs, mean or max")
    parser.add_argument("--per-class", type=int, default=1, dest="per_class")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        dest="allow_missing",
        help="write the images that have a map when some have none",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from benchmark.masked_images import run_explanations

    run_explanations(args)
    return 0
