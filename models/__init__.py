"""ImageNet classifiers the benchmark can explain, resolved by name through a registry."""

from models.registry import (
    ModelSpec,
    NormalizedClassifier,
    build_classifier,
    get_model_spec,
    model_names,
    register_model,
    resolve_module,
)
from models import efficientnet_lite as _efficientnet_lite  # noqa: F401  (registers models)
from models import torchvision_backbones as _torchvision_backbones  # noqa: F401

__all__ = [
    "ModelSpec",
    "NormalizedClassifier",
    "build_classifier",
    "get_model_spec",
    "model_names",
    "register_model",
    "resolve_module",
]
