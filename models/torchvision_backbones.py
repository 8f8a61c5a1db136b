"""The thesis's torchvision backbones (AlexNet, ResNet-50 v2, DenseNet-121, ConvNeXt-Tiny).

Their ImageNet weights are read from the torch hub cache (where torchvision downloads them)
or from ``--model.weights FILE``; nothing is downloaded at run time. CAM target layers are
grad-cam's documented choices for these architectures.
"""

from __future__ import annotations

import re
from typing import Callable

import torchvision
from torch import nn
from torchvision.models import (
    AlexNet_Weights,
    ConvNeXt_Tiny_Weights,
    DenseNet121_Weights,
    ResNet50_Weights,
)

from benchmark.errors import BenchmarkError
from models.registry import ModelSpec, register_model
from models.weights import hub_checkpoint, load_matching_state_dict, load_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _build(name: str, constructor: Callable[..., nn.Module], weights_enum, weights: str | None):
    net = constructor(weights=None)
    if weights is None:
        cached = hub_checkpoint(weights_enum.url)
        if not cached.is_file():
            raise BenchmarkError(
                f"{name} needs its ImageNet weights and this machine cannot download them: "
                f"put {cached.name} (from {weights_enum.url}) at {cached} "
                f"or pass --model.weights FILE"
            )
        weights = str(cached)
    state = load_state_dict(weights)
    if name == "densenet121":
        state = _rename_old_densenet_keys(state)
    load_matching_state_dict(net, state, weights)
    return net


def _rename_old_densenet_keys(state: dict) -> dict:
    """torchvision's published DenseNet file uses ``norm.1`` where the model has ``norm1``."""
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
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
    ("convnext_tiny", torchvision.models.convnext_tiny, ConvNeXt_Tiny_Weights.IMAGENET1K_V1, "features.7", "classifier.2"),
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
