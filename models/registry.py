"""A registry of ImageNet classifiers: name -> how to build it, its normalization and its
default CAM target layer. Resolved by name, as timm does, never by if-chains.

``--model NAME`` is looked up, in this order, among

1. the built-in models (``register_model``);
2. the entry points of the group ``saliency_benchmark.models`` of the installed packages
   (``my_net = "my_package.models:build"`` in a plugin's ``pyproject.toml``);
3. a registered prefix: ``timm:NAME`` (any timm classifier) and ``torchvision:NAME`` (any
   torchvision classifier), see :func:`register_model_prefix`;
4. an import string ``package.module:build`` naming a function that returns an ``nn.Module``
   mapping normalized images to logits (its normalization comes from ``--model.mean`` and
   ``--model.std``), or a :class:`ModelSpec`.

Import strings come from the command line or from Python only: ``benchmark.config`` refuses a
settings file that names one, so a downloaded YAML file cannot run anything.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from benchmark.core import notes
from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import Registry

#: ``--model.weights none``: the architecture with random weights (smoke tests only).
RANDOM_WEIGHTS = "none"
#: The entry point group of model plugins.
ENTRY_POINT_GROUP = "saliency_benchmark.models"


@dataclass(frozen=True)
class ModelSpec:
    """What the benchmark needs to know about one classifier.

    ``build(weights)`` returns the backbone (``nn.Module`` taking normalized images) with its
    ImageNet weights loaded; ``weights`` is an optional local file that overrides the default
    source, or :data:`RANDOM_WEIGHTS` for random weights where ``random_weights`` says the
    builder can. ``cam_layer`` and ``classifier_layer`` are module paths inside the backbone;
    ``None`` = found automatically (the CAM layer: a vision transformer's last block's
    ``norm1``, else the last ``Conv2d``; the classifier: the last ``Linear``). ``mean``/``std``
    ``None``: the user gives them (``--model.mean``/``--model.std``).
    """

    name: str
    build: Callable[[str | None], nn.Module]
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    cam_layer: str | None
    classifier_layer: str | None
    description: str
    available: Callable[[], bool] = field(default=lambda: True)
    random_weights: bool = True


def _accept(obj: object, name: str, where: str) -> ModelSpec:
    return _factory_spec(name, obj, where)


#: The models: built-ins (:func:`register_model`), prefixes (``timm:``, ``torchvision:``), the
#: entry point group ``saliency_benchmark.models``, import strings ``package.module:build`` and
#: ``nn.Module`` objects handed over from Python (:func:`add_model`).
MODELS: Registry[ModelSpec] = Registry("model", "--model", ENTRY_POINT_GROUP, _accept, own_form="package.module:build")


def register_model(spec: ModelSpec) -> ModelSpec:
    return MODELS.register(spec.name, spec)


def register_model_prefix(prefix: str, make_spec: Callable[[str], ModelSpec], help: str) -> None:
    """``--model PREFIX:NAME`` -> ``make_spec(NAME)`` (a BenchmarkError for an unknown NAME)."""
    MODELS.register_prefix(prefix, make_spec, help)


def model_prefixes() -> dict[str, str]:
    """Registered prefix -> one line of help (for ``--help``)."""
    return MODELS.prefixes()


def model_names() -> list[str]:
    """The built-in models, then the installed plugins' entry point names."""
    return MODELS.names()


def is_model_import_string(name: str) -> bool:
    """Whether ``--model name`` names code to import (``package.module:build``) rather than a
    registry name or a registered prefix's model (``timm:NAME``, ``torchvision:NAME``). The
    prefixes are registered when :mod:`models` is imported."""
    return MODELS.names_code(name)


def get_model_spec(name: str) -> ModelSpec:
    """The spec of a built-in name, an entry point name, ``timm:NAME``/``torchvision:NAME`` or an
    import string ``package.module:build``; anything else is a BenchmarkError with close names."""
    return MODELS.get(name)


def add_model(
    net: nn.Module, mean: Sequence[float] | None = None, std: Sequence[float] | None = None, name: str | None = None
) -> str:
    """Make an ``nn.Module`` built in Python (normalized images -> logits) resolvable as a model;
    returns its name (default: ``<module>:<class>`` of the network). Its ``mean``/``std`` are
    the normalization it expects (else ``--model.mean``/``--model.std`` give them)."""
    if not isinstance(net, nn.Module):
        raise BenchmarkError(f"expected an nn.Module mapping normalized images to logits, got {type(net).__name__}")
    name = name or f"{type(net).__module__}:{type(net).__qualname__}"
    description = ((type(net).__doc__ or "").strip().splitlines() or [f"your model {type(net).__name__}"])[0]
    spec = ModelSpec(
        name=name,
        build=lambda weights: _with_weights(net, weights),
        mean=None if mean is None else tuple(float(v) for v in mean),
        std=None if std is None else tuple(float(v) for v in std),
        cam_layer=None,
        classifier_layer=None,
        description=description,
        random_weights=False,
    )
    MODELS.add(name, spec)
    return name


def _with_weights(net: nn.Module, weights: str | None) -> nn.Module:
    if weights is not None:
        from benchmark.models.weights import load_matching_state_dict, load_state_dict

        load_matching_state_dict(net, load_state_dict(weights), weights)
    return net


# -- models from outside the benchmark ---------------------------------------------------------


def _factory_spec(name: str, obj: object, where: str) -> ModelSpec:
    """The spec of a plugin's object: a :class:`ModelSpec` (used as it is, under ``name``), or a
    function ``build() -> nn.Module`` whose normalization the user gives."""
    if isinstance(obj, ModelSpec):
        return obj if obj.name == name else dataclasses.replace(obj, name=name)
    if isinstance(obj, nn.Module) or not callable(obj):
        raise BenchmarkError(
            f"{where} is {obj!r}, not a function that builds the model: name a function build() that returns an "
            "nn.Module mapping normalized images to logits (see docs/extending.md, 'Your own model')"
        )
    doc = ((getattr(obj, "__doc__", None) or "").strip().splitlines() or [""])[0]

    def build(weights: str | None) -> nn.Module:
        try:
            net = obj()
        except BenchmarkError:
            raise
        except Exception as error:
            raise BenchmarkError(
                f"--model {name}: building the model failed: {type(error).__name__}: {error}"
            ) from None
        if not isinstance(net, nn.Module):
            raise BenchmarkError(
                f"--model {name}: returned {type(net).__name__}, not an nn.Module mapping normalized images to logits"
            )
        return _with_weights(net, weights)

    return ModelSpec(
        name=name,
        build=build,
        mean=None,
        std=None,
        cam_layer=None,
        classifier_layer=None,
        description=doc or f"your model, built by {name}",
        random_weights=False,
    )


def missing_normalization(name: str) -> str:
    """The error text of a model whose mean/std the user must give."""
    return (
        f"--model {name} needs the normalization its network expects: pass --model.mean R,G,B and "
        "--model.std R,G,B (three floats each, e.g. --model.mean 0.485,0.456,0.406 --model.std 0.229,0.224,0.225)"
    )


def random_weights_note(name: str) -> str:
    return f"{name} has random weights (--model.weights {RANDOM_WEIGHTS}): its numbers mean nothing"


def check_model_choice(
    name: str, weights: str | None, mean: Sequence[float] | None, std: Sequence[float] | None
) -> ModelSpec:
    """The spec of ``name`` once the choice is known to be buildable (installed, normalization
    known, random weights possible): the checks :func:`build_classifier` makes before any work."""
    spec = get_model_spec(name)
    if not spec.available():
        raise BenchmarkError(f"model {name!r} is not installed: {spec.description}")
    if (spec.mean if mean is None else mean) is None or (spec.std if std is None else std) is None:
        raise BenchmarkError(missing_normalization(name))
    if weights == RANDOM_WEIGHTS and not spec.random_weights:
        raise BenchmarkError(
            f"--model.weights {RANDOM_WEIGHTS}: {name} builds its own weights; leave --model.weights out or pass "
            "a state dict FILE"
        )
    return spec


class NormalizedClassifier(nn.Module):
    """Wraps a backbone so it takes images in [0, 1] pixel space and normalizes inside.

    All perturbations of the benchmark (LOTS steps, masking, blurring, clamping) happen in
    pixel space, so that they are the same for every model; the backbone lives in ``.net`` so module names given by
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


def build_classifier(
    name: str,
    weights: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    execution: str = "eager",
) -> NormalizedClassifier:
    """Build a classifier (any name :func:`get_model_spec` knows), in eval mode with frozen
    weights. ``weights``: a local state dict, :data:`RANDOM_WEIGHTS`, or ``None`` for the
    model's own source; ``mean``/``std`` override the model's normalization (and are needed
    where it has none); ``execution``: see :mod:`benchmark.models.execution`. ``weights_source`` on the
    result says which weights it holds, ``execution`` how it runs."""
    from benchmark.models.execution import apply_execution

    spec = check_model_choice(name, weights, mean, std)
    net = apply_execution(spec.build(weights), execution)
    mean = tuple(float(v) for v in (spec.mean if mean is None else mean))
    std = tuple(float(v) for v in (spec.std if std is None else std))
    model = NormalizedClassifier(net, mean, std, name=name)
    model.weights_source = "none (random)" if weights == RANDOM_WEIGHTS else (str(weights) if weights else "default")
    model.execution = execution
    model.eval()
    model.requires_grad_(False)
    if weights == RANDOM_WEIGHTS:
        notes.note(random_weights_note(name))
    return model
