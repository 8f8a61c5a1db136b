"""A plain function or object with ``explain`` made into an :class:`~methods.base.Explainer`,
the LightningModule every method is, so it runs through the same pipeline as the built-ins.

Accepted (from ``--method package.module:name``, an entry point or ``evaluate(method=...)``):

- a function ``explain(images, classes) -> maps``;
- an object whose ``explain(images, classes)`` method returns maps;
- a class (not an Explainer) with such a method, built once per run as ``cls()``, or as
  ``cls(model=classifier)`` when its constructor takes ``model`` (or ``classifier``).

``images[B, 3, H, W]`` are in [0, 1] pixel space, ``classes[B]`` are the classes to explain,
and the maps ``[B, H, W]`` (or ``[B, 1, H, W]``) in [0, 1] at input resolution (a numpy array
is accepted). ``explain`` gets the classifier (it takes pixel-space images and returns logits)
when it has a parameter ``model`` or ``classifier``, and the images' sample ids (for
per-sample seeding) when it has one named ``sample_ids``. Such a method has no parameters of
its own (``--method.<name>``): write an Explainer subclass with a config dataclass for that.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.methods.base import Explainer, Explanation

#: Parameter names under which ``explain`` (or a wrapped class's constructor) gets the classifier.
MODEL_PARAMETERS = ("model", "classifier")


def _parameters(fn: Callable) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        return set()


def _model_keyword(fn: Callable) -> str | None:
    names = _parameters(fn)
    return next((name for name in MODEL_PARAMETERS if name in names), None)


def can_wrap(obj: Any) -> bool:
    """Whether ``obj`` is a function, an object with ``explain`` or a class with ``explain``."""
    if isinstance(obj, type):
        return callable(getattr(obj, "explain", None)) and not issubclass(obj, Explainer)
    return callable(getattr(obj, "explain", None)) or inspect.isfunction(obj) or inspect.ismethod(obj)


def _summary(obj: Any, name: str) -> str:
    doc = inspect.getdoc(obj) or ""
    return (doc.strip().splitlines() or [f"{name} (wrapped explain)"])[0]


def wrap_explain(obj: Any, name: str) -> type[Explainer]:
    """An Explainer class whose ``explain`` calls ``obj`` (see the module docstring)."""

    class WrappedExplain(Explainer):
        __doc__ = _summary(obj, name)
        method_name = name

        def __init__(self, classifier: nn.Module, config=None, **pipeline: Any) -> None:
            super().__init__(classifier, config, **pipeline)
            target = obj
            if isinstance(obj, type):
                keyword = _model_keyword(obj)
                target = obj(**{keyword: classifier}) if keyword else obj()
            if isinstance(target, nn.Module):
                self.wrapped = target  # moved to the run's device with the module
            function = target.explain if callable(getattr(target, "explain", None)) else target
            self._function = function
            names = _parameters(function)
            self._model_keyword = next((n for n in MODEL_PARAMETERS if n in names), None)
            self._wants_ids = "sample_ids" in names

        def explain(self, images: Tensor, classes: Tensor) -> Tensor | Explanation:
            keywords: dict[str, Any] = {}
            if self._model_keyword:
                keywords[self._model_keyword] = self.classifier
            if self._wants_ids:
                keywords["sample_ids"] = self.current_sample_ids
            result = self._function(images, classes, **keywords)
            if isinstance(result, Explanation):
                return result
            maps = torch.as_tensor(result).to(device=images.device, dtype=images.dtype)
            if maps.ndim == 4 and maps.shape[1] == 1:
                maps = maps[:, 0]
            return maps

    WrappedExplain.__name__ = WrappedExplain.__qualname__ = f"Wrapped[{name}]"
    return WrappedExplain
