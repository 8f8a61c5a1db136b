"""The layer a CAM reads: the option's module path, else the model's default, and how a vision
transformer's tokens are laid out as an image for it."""

from __future__ import annotations

from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.models.layers import TokensToGrid, token_layout
from benchmark.models.registry import NormalizedClassifier, get_model_spec, resolve_module


def backbone(classifier: nn.Module) -> nn.Module:
    """The network inside the normalization wrapper (the module paths are relative to it)."""
    return classifier.net if isinstance(classifier, NormalizedClassifier) else classifier


def last_conv_layer(classifier: nn.Module) -> str:
    """Path (inside the backbone) of the last ``Conv2d`` in module order: the default target
    layer of models that are not in the registry."""
    paths = [name for name, module in backbone(classifier).named_modules() if isinstance(module, nn.Conv2d)]
    if not paths:
        raise BenchmarkError(
            f"{getattr(classifier, 'name', '') or 'the model'} has no Conv2d layer to default to: "
            "pass --method.target_layer"
        )
    return paths[-1]


def default_target_layer(classifier: nn.Module) -> str:
    """The registered CAM layer of the model, else (``timm:``, ``torchvision:``, plugins) a vision
    transformer's last block's ``norm1``/``ln_1`` (grad-cam's documented choice), else its last
    ``Conv2d``."""
    name = getattr(classifier, "name", "")
    if isinstance(name, str) and name:
        try:
            registered = get_model_spec(name).cam_layer
        except BenchmarkError:
            registered = None
        if registered is not None:
            return registered
    layout = token_layout(backbone(classifier))
    return layout.cam_layer if layout is not None else last_conv_layer(classifier)


def token_reshape(classifier: nn.Module) -> TokensToGrid | None:
    """grad-cam's ``reshape_transform`` for the model: a vision transformer's tokens to a grid
    (``[B, prefix + h*w, C] -> [B, C, h, w]``); ``None`` for convolutional networks."""
    layout = token_layout(backbone(classifier))
    return layout.reshape if layout is not None else None


def resolve_target_layer(classifier: nn.Module, path: str | None) -> tuple[str, nn.Module]:
    """``(path, module)`` of the target layer; a bad path is a BenchmarkError with close names."""
    path = default_target_layer(classifier) if path is None else path
    if isinstance(classifier, NormalizedClassifier):
        return path, classifier.submodule(path)
    return path, resolve_module(classifier, path, what="target layer")
