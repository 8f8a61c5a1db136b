"""A registry of ImageNet classifiers: name -> how to build it, its normalization and its
default CAM target layer. Resolved by name, as timm does, never by if-chains."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from benchmark.errors import BenchmarkError


@dataclass(frozen=True)
class ModelSpec:
    """What the benchmark needs to know about one classifier.

    ``build(weights)`` returns the backbone (``nn.Module`` taking normalized images) with its
    ImageNet weights loaded; ``weights`` is an optional local file that overrides the default
    source. ``cam_layer`` and ``classifier_layer`` are module paths inside the backbone.
    """

    name: str
    build: Callable[[str | None], nn.Module]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    cam_layer: str
    classifier_layer: str
    description: str
    available: Callable[[], bool] = field(default=lambda: True)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def model_names() -> list[str]:
    return list(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise BenchmarkError(
            f"unknown model {name!r}{hint}; choose one of: {', '.join(_REGISTRY)}"
        ) from None


class NormalizedClassifier(nn.Module):
    """Wraps a backbone so it takes images in [0, 1] pixel space and normalizes inside.

    All perturbations of the benchmark (LOTS steps, masking, blurring, clamping) happen in
    pixel space (SPEC section 2); the backbone lives in ``.net`` so module names given by
    users (CAM target layers, LOTS feature layers) are paths inside it.
    """

    def __init__(self, net: nn.Module, mean, std, name: str = ""):
        super().__init__()
        self.net = net
        self.name = name
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean.to(images.dtype)) / self.std.to(images.dtype))

    def submodule(self, path: str) -> nn.Module:
        """The backbone module at ``path`` (e.g. ``conv_head``, ``layer4.2``, ``features[-1]``)."""
        return resolve_module(self.net, path, what=f"{self.name or 'model'} layer")


def _module_paths(net: nn.Module) -> list[str]:
    return [name for name, _ in net.named_modules() if name]


def resolve_module(net: nn.Module, path: str, what: str = "layer") -> nn.Module:
    """Resolve a dotted module path; ``features[-1]`` style indexing is accepted too."""
    normalized = path.replace("[", ".").replace("]", "")
    module = net
    try:
        for part in normalized.split("."):
            if part.lstrip("-").isdigit():
                module = module[int(part)]  # type: ignore[index]
            else:
                module = getattr(module, part)
        if not isinstance(module, nn.Module):
            raise AttributeError(part)
    except (AttributeError, IndexError, TypeError, KeyError):
        names = _module_paths(net)
        close = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else f"; e.g. {', '.join(names[-5:])}"
        raise BenchmarkError(f"{what} {path!r} does not exist{hint}") from None
    return module


def build_classifier(name: str, weights: str | None = None) -> NormalizedClassifier:
    """Build a registered classifier, in eval mode with frozen weights."""
    spec = get_model_spec(name)
    if not spec.available():
        raise BenchmarkError(f"model {name!r} is not installed: {spec.description}")
    net = spec.build(weights)
    model = NormalizedClassifier(net, spec.mean, spec.std, name=name)
    model.eval()
    model.requires_grad_(False)
    return model
