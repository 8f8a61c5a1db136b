"""The ``--help`` epilog: every registered method, model and metric with its one-line summary."""

from __future__ import annotations

from collections.abc import Sequence

from benchmark.core.errors import BenchmarkError


def summary(obj: object) -> str:
    """The first line of ``obj``'s docstring."""
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


def catalogue() -> str:
    from benchmark.methods import get_method, method_names
    from benchmark.metrics import metric_class, metric_names
    from benchmark.models import model_names, model_prefixes

    lines = ["methods:", *_entries(method_names(), lambda name: summary(get_method(name)))]
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
    lines.extend(_entries(metric_names(), lambda name: summary(metric_class(name))))
    lines.append(
        "  package.module:Class  your own metric (a benchmark.metrics.PerSampleMetric declaring needs), "
        "imported from this environment"
    )
    lines.append("")
    lines.append(
        "thesis settings: --config configs/thesis.yaml (test), "
        "--config configs/thesis_table_5_2.yaml (table), "
        "--config configs/thesis_table_5_1.yaml (table of LOTS targets)"
    )
    lines.append("other commands: targets (LOTS class/mean targets), explain (single images)")
    return "\n".join(lines)
