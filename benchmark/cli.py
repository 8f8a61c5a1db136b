"""Command line: ``python -m benchmark test --method lots [options]``."""

from __future__ import annotations

import argparse
import logging
import sys
import typing
import warnings
from collections.abc import Sequence

from benchmark.config import (
    WANDB_KEYS,
    CommandOptions,
    Overrides,
    loadable_methods,
    method_parameters,
    metric_parameters,
    read_config_file,
    resolve,
)
from benchmark.core.errors import BenchmarkError
from benchmark.interrupts import RunInterrupted, stop_on_signals
from benchmark.params import type_name
from benchmark.variants import base_method

_FLAGS = {
    "model_weights": "--model.weights",
    "model_mean": "--model.mean",
    "model_std": "--model.std",
    **{f"wandb_{key}": f"--wandb.{key}" for key in WANDB_KEYS},
}


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _summary(obj: object) -> str:
    return ((getattr(obj, "__doc__", None) or "").strip().splitlines() or [""])[0]


def _entries(names: Sequence[str], describe) -> list[str]:
    """One ``--help`` line per registry name: ``describe(name)``, or why its plugin does not load."""
    lines = []
    for name in names:
        try:
            description = describe(name)
        except BenchmarkError as error:
            description = f"[plugin does not load: {error}]"
        lines.append(f"  {name:<20} {description}")
    return lines


def _model_description(name: str) -> str:
    from benchmark.models import get_model_spec

    spec = get_model_spec(name)
    return spec.description + ("" if spec.available() else "  [not installed]")


def _catalogue() -> str:
    from benchmark.methods import get_method, method_names
    from benchmark.metrics import metric_class, metric_names
    from benchmark.models import model_names, model_prefixes

    lines = ["methods:", *_entries(method_names(), lambda name: _summary(get_method(name)))]
    lines.append(
        "  package.module:Class  your own method (an Explainer subclass, or a function/object with explain), "
        "imported from this environment"
    )
    lines.append("models:")
    lines.extend(_entries(model_names(), _model_description))
    for prefix, help in model_prefixes().items():
        lines.append(f"  {prefix + ':NAME':<20} {help}")
    lines.append(
        "  package.module:build your own model: a function returning an nn.Module (normalized images -> "
        "logits); with --model.mean and --model.std"
    )
    lines.append("metrics (the thesis's five always; more with --metrics.extra NAME,...):")
    lines.extend(_entries(metric_names(), lambda name: _summary(metric_class(name))))
    lines.append(
        "  package.module:Class  your own metric (a metrics.PerSampleMetric declaring needs), imported from this "
        "environment"
    )
    lines.append("")
    lines.append(
        "thesis settings: --config configs/thesis.yaml (test), "
        "--config configs/thesis_table_5_2.yaml (table), "
        "--config configs/thesis_table_5_1.yaml (table of LOTS targets)"
    )
    lines.append("other commands: targets (LOTS class/mean targets), explain (single images)")
    return "\n".join(lines)


#: The run options of ``test`` and ``table`` (``explain`` and ``targets`` declare theirs in
#: their modules); every command reads them through :func:`config_from_args`.
TEST_OPTIONS = CommandOptions("test", exclude=("methods",))
TABLE_OPTIONS = CommandOptions("table", exclude=("method",))


def command_options(command: str) -> CommandOptions:
    """The run options ``command`` takes (its defaults, its own options)."""
    if command == "explain":
        from benchmark.explain import EXPLAIN_OPTIONS

        return EXPLAIN_OPTIONS
    if command == "targets":
        from benchmark.targets import TARGETS_OPTIONS

        return TARGETS_OPTIONS
    return {"test": TEST_OPTIONS, "table": TABLE_OPTIONS}[command]


def _add_run_options(parser: argparse.ArgumentParser, command: CommandOptions) -> None:
    group = parser.add_argument_group("run")
    for p in command.parameters():
        default = f" (default: {p.default})" if p.default not in (None, False) else ""
        if p.annotation is bool:
            group.add_argument(
                _flag(p.name),
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
                _flag(p.name), dest=p.name, default=argparse.SUPPRESS, metavar=metavar, help=p.help + default
            )
    group.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE.yaml",
        help="settings file; several merge in order, later wins; the command line wins over all",
    )


def named_import_strings(argv: Sequence[str]) -> list[str]:
    """The methods given as ``package.module:Class`` after ``--method``/``--methods`` in ``argv``
    (their options must be known before the command line is parsed)."""
    from benchmark.core.registry import is_import_string

    values = []
    for i, token in enumerate(argv):
        for flag in ("--method", "--methods"):
            if token == flag and i + 1 < len(argv):
                values.append(argv[i + 1])
            elif token.startswith(flag + "="):
                values.append(token.split("=", 1)[1])
    names = [base_method(entry.strip()) for value in values for entry in value.split(",") if entry.strip()]
    return [name for name in dict.fromkeys(names) if is_import_string(name)]


def _add_method_options(parser: argparse.ArgumentParser, extra: Sequence[str] = ()) -> None:
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
    for p in metric_parameters():
        group.add_argument(
            f"--metrics.{p.name}",
            dest=f"metrics.{p.name}",
            default=argparse.SUPPRESS,
            metavar=type_name(p.annotation).upper()[:12],
            help=f"{p.help} (default: {p.default})".replace("%", "%%"),  # argparse formats help with %
        )


def build_parser(extra_methods: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Evaluate saliency methods (LOTS, the Grad-CAM family) on ImageNet classifiers.",
        epilog=_catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    test = commands.add_parser(
        "test",
        help="evaluate one method on one model and write a run folder",
        description="Evaluate one method on one model: maps, the five metrics, ms per map, figures.",
        epilog=_catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(test, TEST_OPTIONS)
    _add_method_options(test, extra_methods)
    table = commands.add_parser(
        "table",
        help="compare several methods on the same images (the thesis's Table 5.2)",
        description=(
            "Run several methods one after another on the same images and write one table "
            "(markdown and CSV) plus a comparison figure. A --method.<name> option applies to "
            "every listed method that has that parameter."
        ),
        epilog=_catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(table, TABLE_OPTIONS)
    _add_method_options(table, extra_methods)
    table.add_argument(
        "--from",
        dest="from_runs",
        nargs="+",
        metavar="RUN_DIR",
        default=argparse.SUPPRESS,
        help="assemble the table from finished run folders (made by `test` anywhere, or table folders) "
        "instead of running the methods: the same files, one table per model; takes --output only",
    )
    from benchmark.explain import EXPLAIN_OPTIONS
    from benchmark.targets import TARGETS_OPTIONS, add_targets_parser

    explain = commands.add_parser(
        "explain",
        help="explain single image files: map, overlay, adversarial image, top-5 (any image)",
        description=(
            "Explain image files one by one and write pictures per image: the crop, the map, its "
            "overlay, the top-5 predictions; for LOTS also the adversarial image and the x10 "
            "perturbation. --method.kernel_size 3,7,15,31,49 writes LOTS maps from fine to coarse."
        ),
        epilog=_catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format PIL reads)")
    _add_run_options(explain, EXPLAIN_OPTIONS)
    _add_method_options(explain, extra_methods)
    _add_run_options(add_targets_parser(commands), TARGETS_OPTIONS)
    from benchmark.explanations import add_explanations_parser

    add_explanations_parser(commands)
    report = commands.add_parser(
        "report",
        help="one self-contained HTML page from table or run folders: table, agreement, images side by side, curves",
        description=(
            "Write one HTML file (images embedded, opens from disk without a server) from table folders or run "
            "folders: the sortable table with significance marks, the metric agreement, the same images explained "
            "by every method side by side (the first K and the K the methods disagree on most), the mean "
            "Insertion/Deletion curves, and each method's settings and problem images."
        ),
    )
    report.add_argument("folders", nargs="+", metavar="DIR", help="table folders or run folders (made by table/test)")
    report.add_argument(
        "--output", default="report.html", metavar="FILE.html", help="the page to write (default: report.html)"
    )
    report.add_argument("--images", type=int, default=8, metavar="K", help="images per side-by-side grid (default: 8)")
    report.add_argument(
        "--by",
        default="deletion",
        metavar="METRIC",
        help="the metric whose spread over the methods picks the images they disagree on most (default: deletion)",
    )
    return parser


def command_line_layer(namespace: argparse.Namespace) -> Overrides:
    own = set(command_options(namespace.command).own)
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
    from pathlib import Path

    from benchmark.records import CONFIG

    stored = Path(folder) / CONFIG
    if not stored.is_file():
        raise BenchmarkError(
            f"--resume {folder}: no {CONFIG} there; pass the run (or table) folder a killed run printed"
        )
    layer = read_config_file(str(stored))
    layer.source = f"--resume {folder}"
    return layer


def config_from_args(namespace: argparse.Namespace):
    files = [read_config_file(path) for path in namespace.config]
    resume = getattr(namespace, "resume", None)
    if resume:
        files.insert(0, resumed_run_layer(resume))
    return resolve(
        files + [command_line_layer(namespace)],
        several=namespace.command == "table",
        command=command_options(namespace.command),
    )


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

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        extra = named_import_strings(argv)
        for name in extra:
            get_method(name)  # a bad import string: one error line, before parsing its options
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    parser = build_parser(extra)
    namespace = parser.parse_args(argv)
    with stop_on_signals():
        return _run_command(namespace)


#: The options ``table --from`` takes besides the run folders.
TABLE_FROM_OPTIONS = ("output", "quiet")


def _table_from(namespace: argparse.Namespace) -> int:
    from benchmark.table_from import run_table_from

    given = sorted(k for k in vars(namespace) if k not in ("command", "config", "from_runs", *TABLE_FROM_OPTIONS))
    if given or namespace.config:
        names = [_flag(k) if not k.startswith(("method.", "metrics.")) else "--" + k for k in given]
        names += ["--config"] if namespace.config else []
        raise BenchmarkError(
            f"table --from assembles finished runs, so {', '.join(names)} cannot apply (the runs' own settings "
            "made them); leave them out, or run `table --methods ...` to compute a new table"
        )
    run_table_from(list(namespace.from_runs), getattr(namespace, "output", "runs"))
    return 0


def _run_command(namespace: argparse.Namespace) -> int:
    try:
        if namespace.command == "targets":
            from benchmark.targets import run_targets

            run_targets(namespace, config_from_args)
            return 0
        if namespace.command == "report":
            from benchmark.html_report import write_report

            path = write_report(namespace.folders, namespace.output, namespace.images, namespace.by)
            print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
            return 0
        if namespace.command == "explanations":
            from benchmark.explanations import run_explanations

            run_explanations(namespace)
            return 0
        if namespace.command == "explain":
            from benchmark.explain import run_explain

            run_explain(namespace, config_from_args)
            return 0
        if namespace.command == "table" and hasattr(namespace, "from_runs"):
            return _table_from(namespace)
        config = config_from_args(namespace)
        from benchmark.devices import apply_run_settings

        apply_run_settings(config.options)
        if namespace.command == "test":
            from benchmark.run import run_test

            run_test(config)
        elif namespace.command == "table":
            from benchmark.table import run_table

            run_table(config)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunInterrupted as stop:
        for line in interrupted_lines(stop):
            print(line, file=sys.stderr, flush=True)
        return stop.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
