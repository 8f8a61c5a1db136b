"""Which metrics a run computes: the thesis's five always, then the extras asked for
(``--metrics.extra``) each after the metrics it needs; their titles and directions."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import is_import_string
from benchmark.metrics.catalog import builtin_metric_keys, metric_class, metric_names
from benchmark.metrics.inputs import INPUTS
from benchmark.metrics.per_sample import PerSampleMetric

#: The thesis's five metrics, always computed, first in every dict of the scorer.
METRIC_KEYS = ("avg_drop", "avg_increase", "coherency", "insertion", "deletion")


def metric_needs(cls: type[PerSampleMetric]) -> dict[str, str]:
    """``{parameter: input}`` of a metric class."""
    needs = cls.needs
    return dict(needs) if isinstance(needs, Mapping) else {name: name for name in needs}


def extra_metric_keys() -> tuple[str, ...]:
    """The built-in metrics beyond the thesis's five (``--metrics.extra``), in their order."""
    return tuple(key for key in builtin_metric_keys() if key not in METRIC_KEYS)


def check_extra(extra: Sequence[str] | None) -> tuple[str, ...]:
    """The metric keys beyond the thesis's: the chosen ones (built-in keys, plugin names or
    import strings) and the metrics they need (ADCC brings Complexity), each after what it
    needs, built-ins in their canonical order first; an unknown name is an error."""
    names = [str(name).strip() for name in (extra or []) if str(name).strip()]
    builtin = extra_metric_keys()
    plugins = [name for name in metric_names() if name not in METRIC_KEYS + builtin]
    for name in names:
        if name in METRIC_KEYS:
            raise BenchmarkError(f"--metrics.extra: {name} is always computed; leave it out")
        if name not in builtin and name not in plugins and not is_import_string(name):
            close = difflib.get_close_matches(name, [*builtin, *plugins], n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise BenchmarkError(
                f"--metrics.extra: unknown metric {name!r}{hint}; choose from: {', '.join([*builtin, *plugins])}, "
                "or your own as package.module:Class"
            )
        try:
            metric_class(name)
        except BenchmarkError as error:
            raise BenchmarkError(f"--metrics.extra: {error}") from None
    chosen: list[str] = []

    def add(key: str) -> None:
        if key in chosen or key in METRIC_KEYS:
            return
        for needed in metric_needs(metric_class(key)).values():
            if needed not in INPUTS:
                add(needed)
        chosen.append(key)

    ordered = [key for key in builtin if key in names] + [n for n in dict.fromkeys(names) if n not in builtin]
    for key in ordered:
        add(key)
    canonical = [key for key in builtin if key in chosen]
    return tuple(canonical + [key for key in chosen if key not in canonical])


def metric_info(key: str) -> dict[str, Any]:
    """Title and direction of a metric, as ``results.json`` records them."""
    cls = metric_class(key)
    return {"title": cls.title or key, "higher_is_better": bool(cls.higher_is_better)}


def higher_is_better(key: str) -> bool:
    return bool(metric_class(key).higher_is_better)


class _HigherIsBetter(Mapping):
    """``HIGHER_IS_BETTER[key]`` for every registered metric (plugins included)."""

    def __getitem__(self, key: str) -> bool:
        return higher_is_better(key)

    def __iter__(self):
        return iter(METRIC_KEYS + extra_metric_keys())

    def __len__(self) -> int:
        return len(METRIC_KEYS) + len(extra_metric_keys())


#: Whether a higher value of each metric is better.
HIGHER_IS_BETTER: Mapping[str, bool] = _HigherIsBetter()
