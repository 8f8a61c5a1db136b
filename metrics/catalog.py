"""The metrics by key, through the one registry mechanism (:class:`benchmark.metrics.registry.Registry`).

A metric is one file: a pure function (in ``benchmark.metrics.functional`` or the file itself) and a
:class:`~benchmark.metrics.per_sample.PerSampleMetric` subclass that declares

- ``higher_is_better`` (``True``/``False``) and a ``title`` for tables;
- ``needs``: the inputs its ``update(sample_ids, **inputs)`` takes, by name (see
  :data:`benchmark.metrics.inputs.INPUTS`: the maps, the probabilities of ``x * M``, the curves, the
  boxes, the method again, or another metric's per-sample values), optionally as a mapping
  ``{parameter: input}``;
- optionally ``options_class``: its options (``--metrics.<name>``), a
  :class:`~benchmark.metrics.options.MetricOptions` dataclass its constructor receives as keyword arguments.

Built-in metrics register with ``@register_metric("key")`` in their own module; every module
of this package is imported to find them, so a new file touches no other. Plugins declare the
entry point group ``saliency_benchmark.metrics`` (``my_metric = "my_package.metrics:MyMetric"``)
and ``--metrics.extra my_metric`` picks them up, as it does an import string
``package.module:Class`` given on the command line.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from typing import Any

from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import Registry
from benchmark.metrics.per_sample import PerSampleMetric

#: The entry point group of metric plugins.
ENTRY_POINT_GROUP = "saliency_benchmark.metrics"


def _accept(obj: Any, name: str, where: str) -> type[PerSampleMetric]:
    if not (isinstance(obj, type) and issubclass(obj, PerSampleMetric)):
        raise BenchmarkError(
            f"{where} is {obj!r}, not a subclass of benchmark.metrics.PerSampleMetric: a metric is a class declaring "
            "needs, higher_is_better and update(sample_ids, **inputs) (see docs/extending.md, 'Your own metric')"
        )
    if obj.higher_is_better is None:
        raise BenchmarkError(f"{where}: set higher_is_better = True or False on {obj.__name__}")
    obj.key = getattr(obj, "key", "") or name
    return obj


METRICS: Registry[type[PerSampleMetric]] = Registry(
    "metric", "--metrics.extra", ENTRY_POINT_GROUP, _accept, own_form="package.module:Class"
)
_discovered = False


def register_metric(key: str, title: str | None = None) -> Callable[[type[PerSampleMetric]], type[PerSampleMetric]]:
    """Class decorator: make a built-in metric available as ``key`` (titled ``title`` in tables)."""

    def add(cls: type[PerSampleMetric]) -> type[PerSampleMetric]:
        cls.key = key
        cls.title = title or cls.title or key
        return METRICS.register(key, _accept(cls, key, f"metric {key!r}"))

    return add


def _discover() -> None:
    """Import every module of this package once, so their ``@register_metric`` run."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    from benchmark import metrics

    for module in pkgutil.iter_modules(metrics.__path__):
        if not module.ispkg:
            importlib.import_module(f"{metrics.__name__}.{module.name}")


def metric_class(key: str) -> type[PerSampleMetric]:
    """The metric class of a built-in key, an entry point name or an import string."""
    _discover()
    return METRICS.get(key)


def builtin_metric_keys() -> list[str]:
    """The built-in metrics' keys, in registration order."""
    _discover()
    return list(METRICS.builtin())


def metric_names() -> list[str]:
    """The built-in metrics, then the installed plugins' entry point names."""
    _discover()
    return METRICS.names()


def loadable_metric_classes(extra: Sequence[str] = ()) -> list[type[PerSampleMetric]]:
    """The class of every registered metric and plugin that loads (a broken plugin is reported
    when it is chosen, not whenever the metrics are listed), then those of ``extra`` (keys,
    plugin names or import strings, which must load)."""
    classes = []
    for name in metric_names():
        try:
            classes.append(metric_class(name))
        except BenchmarkError:
            continue
    classes.extend(metric_class(name) for name in extra)
    return list(dict.fromkeys(classes))
