"""The thesis's torchvision backbones (AlexNet, ResNet-50 v2, DenseNet-121, ConvNeXt-Tiny),
and ``--model torchvision:NAME`` for any torchvision classifier.

Their ImageNet weights are read from the torch hub cache (where torchvision downloads them)
or from ``--model.weights FILE``; nothing is downloaded at run time. CAM target layers are
grad-cam's documented choices for the thesis's architectures; a ``torchvision:`` model gets
an automatic one (a vision transformer's last block's ``ln_1``, else the last ``Conv2d``).
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable, Iterator

import torchvision
from torch import nn
from torchvision.models import (
    AlexNet_Weights,
    ConvNeXt_Tiny_Weights,
    DenseNet121_Weights,
    ResNet50_Weights,
    WeightsEnum,
)

from benchmark.core.errors import BenchmarkError
from benchmark.models.registry import RANDOM_WEIGHTS, ModelSpec, register_model, register_model_prefix
from benchmark.models.weights import hub_checkpoint, load_matching_state_dict, load_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _weights_file(name: str, weights_enum, weights: str | None) -> str:
    """``weights``, else the torch hub cache's file of ``weights_enum`` (an error saying where to
    put it when it is not there)."""
    if weights is not None:
        return weights
    cached = hub_checkpoint(weights_enum.url)
    if not cached.is_file():
        raise BenchmarkError(
            f"{name} needs its ImageNet weights and this machine cannot download them: "
            f"put {cached.name} (from {weights_enum.url}) at {cached} "
            f"or pass --model.weights FILE, or --model.weights {RANDOM_WEIGHTS} for random weights (smoke tests only)"
        )
    return str(cached)


def _build(name: str, constructor: Callable[..., nn.Module], weights_enum, weights: str | None):
    net = constructor(weights=None)
    if weights == RANDOM_WEIGHTS:
        return net
    weights = _weights_file(name, weights_enum, weights)
    state = load_state_dict(weights)
    if name.startswith("densenet"):
        state = _rename_old_densenet_keys(state)
    load_matching_state_dict(net, state, weights)
    return net


def _rename_old_densenet_keys(state: dict) -> dict:
    """torchvision's published DenseNet file uses ``norm.1`` where the model has ``norm1``."""
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    renamed = {}
    for key, value in state.items():
        match = pattern.match(key)
        renamed[match.group(1) + match.group(2) if match else key] = value
    return renamed


_BACKBONES = [
    # name, constructor, weights enum, CAM layer, classifier layer
    ("alexnet", torchvision.models.alexnet, AlexNet_Weights.IMAGENET1K_V1, "features.10", "classifier.6"),
    ("resnet50", torchvision.models.resnet50, ResNet50_Weights.IMAGENET1K_V2, "layer4.2", "fc"),
    ("densenet121", torchvision.models.densenet121, DenseNet121_Weights.IMAGENET1K_V1, "features.norm5", "classifier"),
    (
        "convnext_tiny",
        torchvision.models.convnext_tiny,
        ConvNeXt_Tiny_Weights.IMAGENET1K_V1,
        "features.7",
        "classifier.2",
    ),
]

for _name, _constructor, _weights_enum, _cam_layer, _classifier in _BACKBONES:
    register_model(
        ModelSpec(
            name=_name,
            build=lambda weights, n=_name, c=_constructor, w=_weights_enum: _build(n, c, w, weights),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            cam_layer=_cam_layer,
            classifier_layer=_classifier,
            description=f"torchvision {_name} ({_weights_enum}); weights from the torch hub cache or --model.weights",
        )
    )


# -- torchvision:NAME ---------------------------------------------------------------------------

PREFIX = "torchvision"


def _classifiers() -> list[str]:
    """torchvision's ImageNet classifiers (not its detection, segmentation, video or quantized models)."""
    return torchvision.models.list_models(module=torchvision.models)


def _default_weights(arch: str):
    if arch not in _classifiers():
        close = difflib.get_close_matches(arch, _classifiers(), n=3)
        hint = f" (did you mean {', '.join(f'{PREFIX}:{c}' for c in close)}?)" if close else ""
        raise BenchmarkError(
            f"unknown torchvision classifier {arch!r}{hint}; torchvision.models.list_models(module=torchvision.models) "
            "lists the names"
        )
    return torchvision.models.get_model_weights(arch).DEFAULT


@contextlib.contextmanager
def _state_dict_of_weights(state: dict) -> Iterator[None]:
    """While building, torchvision's weights enums hand out ``state`` instead of downloading (or
    unpickling) their file: the builder's own per-model handling (DenseNet's key names,
    Inception's ``transform_input``, ViT's image size) then applies to a safely loaded file."""
    original = WeightsEnum.get_state_dict

    def get_state_dict(self, *args, **kwargs):
        return state

    WeightsEnum.get_state_dict = get_state_dict
    try:
        yield
    finally:
        WeightsEnum.get_state_dict = original


def build_torchvision(arch: str, weights: str | None) -> nn.Module:
    if weights == RANDOM_WEIGHTS:
        return torchvision.models.get_model(arch, weights=None)
    weights_enum = _default_weights(arch)
    weights = _weights_file(f"{PREFIX}:{arch}", weights_enum, weights)
    state = load_state_dict(weights)
    try:
        with _state_dict_of_weights(state):
            return torchvision.models.get_model(arch, weights=weights_enum)
    except (RuntimeError, KeyError, ValueError) as error:  # load_state_dict's mismatch report
        text = " ".join(str(error).split())
        raise BenchmarkError(
            f"weights {weights!r} do not fit {PREFIX}:{arch} ({text[:300]}{' ...' if len(text) > 300 else ''}); "
            "pass the weights of the right architecture"
        ) from None


def torchvision_spec(arch: str) -> ModelSpec:
    weights_enum = _default_weights(arch)
    size = tuple(weights_enum.meta.get("min_size", (224, 224)))
    if arch.startswith("vit_") and size != (224, 224):  # a ViT is built for exactly that size
        raise BenchmarkError(
            f"--model {PREFIX}:{arch}: its weights ({weights_enum}) take only {size[0]}x{size[1]} images, the "
            "benchmark's are 224x224 (resize 256, centre crop 224): choose a variant made for 224"
        )
    transforms = weights_enum.transforms()
    return ModelSpec(
        name=f"{PREFIX}:{arch}",
        build=lambda weights: build_torchvision(arch, weights),
        mean=tuple(float(v) for v in transforms.mean),
        std=tuple(float(v) for v in transforms.std),
        cam_layer=None,  # automatic: a vision transformer's last block's ln_1, else the last Conv2d
        classifier_layer=None,  # automatic: the last Linear
        description=f"torchvision {arch} ({weights_enum}); weights from the torch hub cache or --model.weights",
    )


register_model_prefix(
    PREFIX,
    torchvision_spec,
    "any torchvision classifier; weights (its DEFAULT) from --model.weights or the torch hub cache",
)
