"""``test``: evaluate one method on one model and write a run folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark.commands.catalogue import catalogue
from benchmark.commands.run_arguments import add_method_options, add_run_options, resolve_run_options
from benchmark.config import CommandOptions, RunConfig

NAME = "test"
#: The run options of ``test``: all but the list of methods (that is ``table``'s).
OPTIONS = CommandOptions(NAME, exclude=("methods",))


def add_parser(
    subparsers, extra_methods: Sequence[str] = (), extra_metrics: Sequence[str] = ()
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        NAME,
        help="evaluate one method on one model and write a run folder",
        description="Evaluate one method on one model: maps, the five metrics, ms per map, figures.",
        epilog=catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(parser, OPTIONS)
    add_method_options(parser, extra_methods, extra_metrics)
    return parser


def run_config(args: argparse.Namespace) -> RunConfig:
    return resolve_run_options(args, OPTIONS)


def run(args: argparse.Namespace) -> int:
    from benchmark.devices import apply_run_settings

    config = run_config(args)
    apply_run_settings(config.options)
    run_test(config)
    return 0


def run_test(config: RunConfig) -> Path | None:
    """``test``: one method end to end; prints its results row and returns the run folder (on
    rank 0). With ``--estimate`` only the estimate of its time."""
    from benchmark.estimate import print_estimate
    from benchmark.evaluation import evaluate_method, print_notes
    from benchmark.loggers import sync_hint
    from benchmark.markdown_table import (
        INTERVAL_NOTE,
        markdown_table,
        metric_keys,
        results_header,
        results_row,
        table_extras,
    )
    from benchmark.run_data import build_datamodule

    datamodule = build_datamodule(config)  # bad folders fail here, before any model work
    if config.options.estimate:
        print_estimate(config, datamodule, [config.options.method])
        return None
    resume = Path(config.options.resume) if config.options.resume else None
    evaluation = evaluate_method(config, config.options.method, datamodule, resume=resume)
    if evaluation is None:
        return None
    content = evaluation.content
    header = results_header(metric_keys(content), list(table_extras(content).values()))
    print(markdown_table(header, [results_row(content)]))
    print(INTERVAL_NOTE)
    print_notes(evaluation)
    print(f"run folder: {evaluation.run_dir}")
    hint = sync_hint([evaluation.logged])
    if hint:
        print(hint, file=sys.stderr, flush=True)
    return evaluation.run_dir
