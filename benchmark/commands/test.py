"""``test``: evaluate one method on one model and write a run folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmark.commands.catalogue import catalogue
from benchmark.commands.run_options import add_method_options, add_run_options, resolve_run_options
from benchmark.config import CommandOptions, RunConfig

NAME = "test"
#: The run options of ``test``: all but the list of methods (that is ``table``'s).
OPTIONS = CommandOptions(NAME, exclude=("methods",))


def add_parser(subparsers, extra_methods: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        NAME,
        help="evaluate one method on one model and write a run folder",
        description="Evaluate one method on one model: maps, the five metrics, ms per map, figures.",
        epilog=catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(parser, OPTIONS)
    add_method_options(parser, extra_methods)
    return parser


def run_config(args: argparse.Namespace) -> RunConfig:
    return resolve_run_options(args, OPTIONS)


def run(args: argparse.Namespace) -> int:
    from benchmark.devices import apply_run_settings
    from benchmark.run import run_test

    config = run_config(args)
    apply_run_settings(config.options)
    run_test(config)
    return 0
