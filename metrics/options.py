"""The options of a metric (``--metrics.<name>``), declared by the metric itself.

A metric with options sets ``options_class`` to a :class:`MetricOptions` dataclass, as a method
sets ``config_class`` to a ``MethodConfig``::

    @dataclass
    class RoadOptions(MetricOptions):
        road_noise: float = field(default=0.01, metadata={"help": "sigma of the imputation noise"})

        def validate(self) -> None:
            checked("road_noise", check_noise, self.road_noise)

Each field becomes the command-line option ``--metrics.<field>`` (with its ``help`` in
``--help``) and a key of the ``metrics:`` section of a config file; ``validate()`` runs before
any model work; the metric's constructor receives the values as keyword arguments of the same
names. Metrics that share an option (ROAD's two, by one class) receive the same value. Nothing
else names a metric's options, so a plugin metric declares its own the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from benchmark.core.errors import BenchmarkError

T = TypeVar("T")


@dataclass
class MetricOptions:
    """Options of a metric (``--metrics.<name>``). Subclasses add fields (with a ``help`` entry in
    their metadata) and check them in :meth:`validate`."""

    def validate(self) -> None:
        """Check the values; raise BenchmarkError naming ``--metrics.<option>`` and its valid range."""

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def checked(option: str, check: Callable[..., T], *values: Any) -> T:
    """``check(*values)`` with a failure naming the option ``--metrics.<option>``."""
    try:
        return check(*values)
    except BenchmarkError as error:
        raise BenchmarkError(f"--metrics.{option}: {error}") from None


def options_classes(metric_classes: Iterable[type]) -> list[type[MetricOptions]]:
    """The distinct ``options_class`` of ``metric_classes``, in their order (none for a metric
    without options)."""
    found: list[type[MetricOptions]] = []
    for cls in metric_classes:
        options = getattr(cls, "options_class", None)
        if options is not None and options not in found:
            found.append(options)
    return found


def build_options(
    classes: Iterable[type[MetricOptions]], values: Mapping[str, Any]
) -> dict[type[MetricOptions], MetricOptions]:
    """Each options class built from the ``values`` its fields name (the rest at their defaults)
    and validated; a value no class takes is an error naming the valid options."""
    classes = list(classes)
    known = [name for cls in classes for name in cls.option_names()]
    unknown = [name for name in values if name not in known]
    if unknown:
        raise BenchmarkError(
            f"--metrics.{unknown[0]}: no metric has this option; the metrics' options are: "
            + ", ".join(dict.fromkeys(known))
        )
    built = {}
    for cls in classes:
        try:
            options = cls(**{name: value for name, value in values.items() if name in cls.option_names()})
            options.validate()
        except (ValueError, TypeError) as error:  # a plugin's own checks: one error line too
            raise BenchmarkError(f"{cls.__name__}: {error}") from None
        built[cls] = options
    return built
