"""``targets``: per-class LOTS target features from a folder of labelled images (:mod:`benchmark.targets`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmark.commands.run_arguments import add_run_options, resolve_run_options
from benchmark.config import RunConfig
from benchmark.targets import TARGETS_OPTIONS

NAME = "targets"


def add_parser(
    subparsers, extra_methods: Sequence[str] = (), extra_metrics: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """The ``targets`` subcommand: its own options, then the shared run options
    (:data:`benchmark.targets.TARGETS_OPTIONS`)."""
    parser = subparsers.add_parser(
        NAME,
        help="per-class LOTS target features (class, mean) from a folder of labelled images",
        description=(
            "Compute LOTS feature targets for --method.target class|mean: per ImageNet class the "
            "features of one image chosen with --seed (class) and/or the mean features of all its "
            "images (mean), in one batched pass (multi-GPU with --devices N)."
        ),
    )
    parser.add_argument("--kind", required=True, metavar="KINDS", help="class, mean, or class,mean (both in one pass)")
    parser.add_argument(
        "--output", dest="targets_output", required=True, metavar="FILE.pt", help="targets file to write"
    )
    parser.add_argument(
        "--features",
        default="logits",
        help="features: logits (default), penultimate or a module name; must match --method.features",
    )
    add_run_options(parser, TARGETS_OPTIONS)
    return parser


def run_config(args: argparse.Namespace) -> RunConfig:
    return resolve_run_options(args, TARGETS_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from benchmark.targets import run_targets

    run_targets(args, run_config)
    return 0
