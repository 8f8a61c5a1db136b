"""``table``: several methods on the same images, or a table assembled from finished runs (``--from``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmark.commands.catalogue import catalogue
from benchmark.commands.run_arguments import add_method_options, add_run_options, flag, resolve_run_options
from benchmark.config import CommandOptions, RunConfig
from benchmark.core.errors import BenchmarkError

NAME = "table"
#: The run options of ``table``: all but the single method (that is ``test``'s).
OPTIONS = CommandOptions(NAME, exclude=("method",))
#: The options ``table --from`` takes besides the run folders.
TABLE_FROM_OPTIONS = ("output", "quiet")


def add_parser(
    subparsers, extra_methods: Sequence[str] = (), extra_metrics: Sequence[str] = ()
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        NAME,
        help="compare several methods on the same images (the thesis's Table 5.2)",
        description=(
            "Run several methods one after another on the same images and write one table "
            "(markdown and CSV) plus a comparison figure. A --method.<name> option applies to "
            "every listed method that has that parameter."
        ),
        epilog=catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(parser, OPTIONS)
    add_method_options(parser, extra_methods, extra_metrics)
    parser.add_argument(
        "--from",
        dest="from_runs",
        nargs="+",
        metavar="RUN_DIR",
        default=argparse.SUPPRESS,
        help="assemble the table from finished run folders (made by `test` anywhere, or table folders) "
        "instead of running the methods: the same files, one table per model; takes --output only",
    )
    return parser


def run_config(args: argparse.Namespace) -> RunConfig:
    return resolve_run_options(args, OPTIONS, several=True)


def run(args: argparse.Namespace) -> int:
    if hasattr(args, "from_runs"):
        return _table_from(args)
    from benchmark.devices import apply_run_settings
    from benchmark.table import run_table

    config = run_config(args)
    apply_run_settings(config.options)
    run_table(config)
    return 0


def _table_from(namespace: argparse.Namespace) -> int:
    from benchmark.table_from import run_table_from

    given = sorted(k for k in vars(namespace) if k not in ("command", "config", "from_runs", *TABLE_FROM_OPTIONS))
    if given or namespace.config:
        names = [flag(k) if not k.startswith(("method.", "metrics.")) else "--" + k for k in given]
        names += ["--config"] if namespace.config else []
        raise BenchmarkError(
            f"table --from assembles finished runs, so {', '.join(names)} cannot apply (the runs' own settings "
            "made them); leave them out, or run `table --methods ...` to compute a new table"
        )
    run_table_from(list(namespace.from_runs), getattr(namespace, "output", "runs"))
    return 0
