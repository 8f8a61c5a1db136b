"""The run options every command with a run shares: their flags, their ``--method.*`` and
``--metrics.*`` parameters, and their resolution (settings files, a resumed run's settings,
then the command line) into one :class:`benchmark.config.RunConfig`."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Sequence
from pathlib import Path

from benchmark.config import CommandOptions, RunConfig, loadable_methods, method_parameters, metric_parameters, resolve
from benchmark.config_files import WANDB_KEYS, Overrides, read_config_file
from benchmark.core.errors import BenchmarkError
from benchmark.params import type_name
from benchmark.variants import base_method

#: Run options whose flag is not ``--`` + the name with dashes.
_FLAGS = {
    "model_weights": "--model.weights",
    "model_mean": "--model.mean",
    "model_std": "--model.std",
    **{f"wandb_{key}": f"--wandb.{key}" for key in WANDB_KEYS},
}


def flag(name: str) -> str:
    """The command-line flag of the run option ``name``."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def add_run_options(parser: argparse.ArgumentParser, command: CommandOptions) -> None:
    group = parser.add_argument_group("run")
    for p in command.parameters():
        default = f" (default: {p.default})" if p.default not in (None, False) else ""
        if p.annotation is bool:
            group.add_argument(
                flag(p.name),
                dest=p.name,
                action="store_const",
                const=True,
                default=argparse.SUPPRESS,
                help=p.help + default,
            )
        else:
            metavar = type_name(p.annotation).upper().replace(" ", "_")
            if typing.get_origin(p.annotation) is not typing.Literal:  # choices are shown whole
                metavar = metavar[:12]
            group.add_argument(
                flag(p.name), dest=p.name, default=argparse.SUPPRESS, metavar=metavar, help=p.help + default
            )
    group.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE.yaml",
        help="settings file; several merge in order, later wins; the command line wins over all",
    )


def _values_of(argv: Sequence[str], options: Sequence[str]) -> list[str]:
    """The comma-separated entries given after any of ``options`` in ``argv``."""
    values = []
    for i, token in enumerate(argv):
        for option in options:
            if token == option and i + 1 < len(argv):
                values.append(argv[i + 1])
            elif token.startswith(option + "="):
                values.append(token.split("=", 1)[1])
    return [entry.strip() for value in values for entry in value.split(",") if entry.strip()]


def named_import_strings(argv: Sequence[str]) -> list[str]:
    """The methods given as ``package.module:Class`` after ``--method``/``--methods`` in ``argv``
    (their options must be known before the command line is parsed)."""
    from benchmark.core.registry import is_import_string

    names = [base_method(entry) for entry in _values_of(argv, ("--method", "--methods"))]
    return [name for name in dict.fromkeys(names) if is_import_string(name)]


def named_metric_import_strings(argv: Sequence[str]) -> list[str]:
    """The metrics given as ``package.module:Class`` after ``--metrics.extra`` in ``argv`` (their
    options, ``--metrics.<option>``, must be known before the command line is parsed)."""
    from benchmark.core.registry import is_import_string

    names = _values_of(argv, ("--metrics.extra",))
    return [name for name in dict.fromkeys(names) if is_import_string(name)]


def add_method_options(
    parser: argparse.ArgumentParser, extra: Sequence[str] = (), extra_metrics: Sequence[str] = ()
) -> None:
    """The ``--method.*`` options of the loadable methods and ``extra`` (import strings), and the
    ``--metrics.*`` options of the scorer, the loadable metrics and ``extra_metrics``."""
    seen: set[str] = set()
    for method in loadable_methods(extra):
        params = [p for p in method_parameters(method) if p.name not in seen]
        if not params:
            continue
        group = parser.add_argument_group(f"--method {method} parameters")
        for p in params:
            seen.add(p.name)
            group.add_argument(
                f"--method.{p.name}",
                dest=f"method.{p.name}",
                default=argparse.SUPPRESS,
                metavar=type_name(p.annotation).upper()[:12],
                help=f"{p.help} (default: {p.default})",
            )
    group = parser.add_argument_group("metrics parameters (each metric declares its own)")
    for p in metric_parameters(extra_metrics):
        group.add_argument(
            f"--metrics.{p.name}",
            dest=f"metrics.{p.name}",
            default=argparse.SUPPRESS,
            metavar=type_name(p.annotation).upper()[:12],
            help=f"{p.help} (default: {p.default})".replace("%", "%%"),  # argparse formats help with %
        )


def command_line_layer(namespace: argparse.Namespace, command: CommandOptions) -> Overrides:
    """The settings given on the command line (the command's own options left out)."""
    own = set(command.own)
    layer = Overrides(source="command line")
    for key, value in vars(namespace).items():
        if key in ("command", "config") or key in own:
            continue
        if key.startswith("method."):
            layer.method[key[len("method.") :]] = value
        elif key.startswith("metrics."):
            layer.metrics[key[len("metrics.") :]] = value
        else:
            layer.options[key] = value
    return layer


def resumed_run_layer(folder: str) -> Overrides:
    """The settings stored in a killed run's folder: the defaults of its resumption."""
    from benchmark.records import CONFIG

    stored = Path(folder) / CONFIG
    if not stored.is_file():
        raise BenchmarkError(
            f"--resume {folder}: no {CONFIG} there; pass the run (or table) folder a killed run printed"
        )
    layer = read_config_file(str(stored))
    layer.source = f"--resume {folder}"
    return layer


def resolve_run_options(namespace: argparse.Namespace, command: CommandOptions, several: bool = False) -> RunConfig:
    """The run configuration of a parsed command line: its ``--config`` files (over a resumed
    run's stored settings), then the command line; ``several``: a list of methods (``table``)."""
    files = [read_config_file(path) for path in namespace.config]
    resume = getattr(namespace, "resume", None)
    if resume:
        files.insert(0, resumed_run_layer(resume))
    return resolve(files + [command_line_layer(namespace, command)], several=several, command=command)
