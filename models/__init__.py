"""ImageNet classifiers the benchmark can explain, resolved by name through a registry:
the built-in ones, plugins (entry point group ``saliency_benchmark.models``), ``timm:NAME``,
``torchvision:NAME`` and ``package.module:build``."""

from benchmark.models import efficientnet_lite as _efficientnet_lite  # noqa: F401  (registers models)
from benchmark.models import timm_models as _timm_models  # noqa: F401  (registers the timm: prefix)
from benchmark.models import torchvision_backbones as _torchvision_backbones  # noqa: F401  (and torchvision:)
from benchmark.models.registry import (
    MODELS,
    RANDOM_WEIGHTS,
    ModelSpec,
    NormalizedClassifier,
    add_model,
    build_classifier,
    check_model_choice,
    get_model_spec,
    is_model_import_string,
    model_names,
    model_prefixes,
    register_model,
    register_model_prefix,
    resolve_module,
)

__all__ = [
    "MODELS",
    "RANDOM_WEIGHTS",
    "ModelSpec",
    "NormalizedClassifier",
    "add_model",
    "build_classifier",
    "check_model_choice",
    "get_model_spec",
    "is_model_import_string",
    "model_names",
    "model_prefixes",
    "register_model",
    "register_model_prefix",
    "resolve_module",
]
