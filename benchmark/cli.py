"""Command line: ``python -m benchmark test --method lots [options]``.

The commands are the modules of :mod:`benchmark.commands`, listed in :data:`COMMANDS`: each
adds its subcommand to the parser and runs it. Errors a user can fix (:class:`BenchmarkError`)
end in one ``error:`` line and status 2; a stop signal in what the run kept and the command
that finishes it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from benchmark.commands import explain, explanations, report, table, targets, test
from benchmark.commands.catalogue import catalogue
from benchmark.commands.run_arguments import named_import_strings, named_metric_import_strings
from benchmark.core.errors import BenchmarkError
from benchmark.interrupts import RunInterrupted, stop_on_signals

#: The commands in the order ``--help`` lists them.
COMMANDS = (test, table, explain, targets, explanations, report)
_BY_NAME = {command.NAME: command for command in COMMANDS}


def build_parser(extra_methods: Sequence[str] = (), extra_metrics: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser of every command; ``extra_methods`` and ``extra_metrics``: methods and metrics
    named by import string, whose parameters become ``--method.*`` and ``--metrics.*`` options."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Evaluate saliency methods (LOTS, the Grad-CAM family) on ImageNet classifiers.",
        epilog=catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in COMMANDS:
        command.add_parser(subparsers, extra_methods, extra_metrics)
    return parser


def config_from_args(namespace: argparse.Namespace):
    """The resolved run configuration of a parsed command line (a command with run options)."""
    return _BY_NAME[namespace.command].run_config(namespace)


def quiet_libraries() -> None:
    """Keep Lightning's banners and a known deprecation notice out of the benchmark's output
    (the run prints its own device and data lines); real warnings still show."""
    import pytorch_lightning  # noqa: F401  (it sets its loggers' levels when imported)

    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def interrupted_lines(stop: RunInterrupted) -> list[str]:
    """What a stopped run kept, and (last) the command that finishes it."""
    from benchmark.records import RESULTS, recorded_images

    lines = [f"interrupted by {stop.signal_name}"]
    if stop.table_dir is not None:
        lines.append(f"the methods finished so far and the records of the one running are in {stop.table_dir}")
        lines.append(f"resume with: python -m benchmark table --resume {stop.table_dir}")
    elif stop.run_dir is not None and (stop.run_dir / RESULTS).is_file():
        lines.append(f"the run had finished: its folder {stop.run_dir} is complete")
    elif stop.run_dir is not None:
        done, total = recorded_images(stop.run_dir)
        lines.append(f"{done} of {total} images are recorded in {stop.run_dir}")
        lines.append(f"resume with: python -m benchmark test --resume {stop.run_dir}")
    else:
        lines.append("nothing was recorded yet; run the command again")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    quiet_libraries()
    from benchmark.methods import get_method
    from benchmark.metrics import metric_class

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        extra = named_import_strings(argv)
        for name in extra:
            get_method(name)  # a bad import string: one error line, before parsing its options
        extra_metrics = named_metric_import_strings(argv)
        for name in extra_metrics:
            metric_class(name)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    parser = build_parser(extra, extra_metrics)
    namespace = parser.parse_args(argv)
    with stop_on_signals():
        return _run_command(namespace)


def _run_command(namespace: argparse.Namespace) -> int:
    try:
        return _BY_NAME[namespace.command].run(namespace)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunInterrupted as stop:
        for line in interrupted_lines(stop):
            print(line, file=sys.stderr, flush=True)
        return stop.exit_code


if __name__ == "__main__":
    sys.exit(main())
