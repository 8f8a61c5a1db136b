"""Saliency methods resolved by name (``--method lots``), through the one registry mechanism
(:class:`metrics.registry.Registry`): built-ins (``register_method``), the entry point group
``saliency_benchmark.methods``, and import strings ``package.module:Class``.

What a name resolves to may be an :class:`~methods.base.Explainer` subclass, or anything else
with an ``explain`` (a plain function ``explain(images, classes[, model])``, an object with
such an ``explain`` method, or a class building one): those are wrapped into an Explainer by
:func:`methods.wrapped.wrap_explain`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import Registry

if TYPE_CHECKING:
    from benchmark.methods.base import Explainer

#: The entry point group of method plugins.
ENTRY_POINT_GROUP = "saliency_benchmark.methods"


def _accept(obj: Any, name: str, where: str) -> type[Explainer]:
    from benchmark.methods.base import Explainer
    from benchmark.methods.wrapped import can_wrap, wrap_explain

    if isinstance(obj, type) and issubclass(obj, Explainer):
        if not getattr(obj, "method_name", ""):
            obj.method_name = name
        return obj
    if can_wrap(obj):
        return wrap_explain(obj, name)
    raise BenchmarkError(
        f"{where} is {obj!r}, not a subclass of benchmark.methods.Explainer nor a function or object with "
        "explain(images, classes): a method is a class with a config dataclass (config_class) and "
        "explain(images, classes) -> maps "
        "(see docs/extending.md, 'Your own method')"
    )


METHODS: Registry[type[Explainer]] = Registry(
    "method", "--method", ENTRY_POINT_GROUP, _accept, own_form="package.module:Class"
)


def register_method(name: str) -> Callable[[type[Explainer]], type[Explainer]]:
    """Class decorator: make an :class:`~methods.base.Explainer` available as ``name``."""

    def add(cls: type[Explainer]) -> type[Explainer]:
        cls.method_name = name
        return METHODS.register(name, cls)

    return add


def method_names() -> list[str]:
    """The built-in methods, then the installed plugins' entry point names."""
    return METHODS.names()


def get_method(name: str) -> type[Explainer]:
    """The method class of a built-in name, an entry point name or an import string."""
    return METHODS.get(name)
