"""Method variants: one method with some parameters fixed, so a ``table`` can compare, e.g.,
LOTS with three targets (the thesis's Table 5.1)::

    --methods lots:target=zero,lots:target=class,lots:target=mean

An entry is ``METHOD[:PARAM=VALUE]...`` (``METHOD`` may be an import string
``package.module:Class``); the entry itself is the row's name in the table and
results, the method's other parameters come from ``--method.<param>`` and config files as
usual, and the variant's own values win over them.
"""

from __future__ import annotations

import re

from benchmark.core.errors import BenchmarkError

SEPARATOR = ":"


def split_variant(entry: str) -> tuple[str, dict[str, str]]:
    """``"lots:target=class"`` -> ``("lots", {"target": "class"})``; an import string keeps its
    colon: ``"pkg.mod:Method:sigma=3"`` -> ``("pkg.mod:Method", {"sigma": "3"})``."""
    name, *assignments = entry.split(SEPARATOR)
    if assignments and "=" not in assignments[0]:  # package.module:Class
        name = f"{name}{SEPARATOR}{assignments.pop(0)}"
    values: dict[str, str] = {}
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not equals or not key:
            raise BenchmarkError(
                f"--methods {entry}: {assignment!r} is not PARAM=VALUE; write variants as "
                "METHOD:PARAM=VALUE, e.g. lots:target=class"
            )
        if key in values:
            raise BenchmarkError(f"--methods {entry}: {key} is given twice")
        values[key] = value.strip()
    return name.strip(), values


def base_method(entry: str) -> str:
    """The registered method of an entry (``"lots:target=class"`` -> ``"lots"``)."""
    return split_variant(entry)[0]


def folder_name(entry: str) -> str:
    """A file-system-friendly name for an entry (``lots:target=class`` -> ``lots_target-class``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", entry.replace(SEPARATOR, "_").replace("=", "-"))
