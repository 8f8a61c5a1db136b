"""``explain``: explain single image files and write pictures per image (:mod:`benchmark.explain_images`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmark.commands.catalogue import catalogue
from benchmark.commands.run_arguments import add_method_options, add_run_options, resolve_run_options
from benchmark.config import RunConfig
from benchmark.explain_images import EXPLAIN_OPTIONS

NAME = "explain"


def add_parser(
    subparsers, extra_methods: Sequence[str] = (), extra_metrics: Sequence[str] = ()
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        NAME,
        help="explain single image files: map, overlay, adversarial image, top-5 (any image)",
        description=(
            "Explain image files one by one and write pictures per image: the crop, the map, its "
            "overlay, the top-5 predictions; for LOTS also the adversarial image and the x10 "
            "perturbation. --method.kernel_size 3,7,15,31,49 writes LOTS maps from fine to coarse."
        ),
        epilog=catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format PIL reads)")
    add_run_options(parser, EXPLAIN_OPTIONS)
    add_method_options(parser, extra_methods, extra_metrics)
    return parser


def run_config(args: argparse.Namespace) -> RunConfig:
    return resolve_run_options(args, EXPLAIN_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from benchmark.explain_images import run_explain

    run_explain(args, run_config)
    return 0
