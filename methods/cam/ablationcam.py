"""Ablation-CAM (``ablationcam``); its device backend is :mod:`.device_ablation`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from benchmark.methods.cam.base import CAM
from benchmark.methods.cam.config import BatchedCAMConfig
from benchmark.methods.cam.device_ablation import ablation_cam
from benchmark.methods.cam.grad_cam_backend import installed_grad_cam_class
from benchmark.methods.cam.target_layer import backbone
from benchmark.models.execution import execution_of

#: The device backend's chunk without ``--method.chunk_size``: at least this many ablated copies
#: of each image per pass. Each pass also runs the model's layers before the target once (on a
#: stand-in, a cost that hardly depends on its size), and the copies of the batch's images share
#: the pass, so larger chunks are faster up to about this size, beyond which they gain nothing;
#: the maps are bit for bit the same at any chunk (measured: perf/README.md).
ABLATION_DEVICE_CHUNK = 64


class _RestoringAblationCAM:
    """AblationCAM swaps the target layer for its ablation layer while it runs: make sure the
    model gets its layer back even when the call fails."""

    def __init__(self, model, layers, batch_size: int, reshape_transform=None) -> None:
        from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerVit

        self.model = model
        # a fresh ablation layer (grad-cam's default argument is one instance shared by all);
        # on tokens, grad-cam's ViT variant (documented with its reshape_transform)
        ablation_layer = AblationLayer() if reshape_transform is None else AblationLayerVit()
        self.base_cam = installed_grad_cam_class("AblationCAM")(
            model=model,
            target_layers=layers,
            reshape_transform=reshape_transform,
            ablation_layer=ablation_layer,
            batch_size=batch_size,
        )

    def __call__(self, input_tensor, targets):
        from pytorch_grad_cam.utils.find_layers import replace_layer_recursive

        try:
            return self.base_cam(input_tensor, targets)
        finally:
            for layer in self.base_cam.target_layers:
                replace_layer_recursive(self.model, self.base_cam.ablation_layer, layer)


class AblationCAM(CAM):
    """Ablation-CAM: channels weighted by the drop of the class score when each is ablated.

    ``w_k = (y^c - y^c_k) / y^c`` with ``y^c_k`` the score with channel ``k`` of the target
    layer set to zero (a very low value if the layer can be negative),
    ``M = ReLU(sum_k w_k A^k)``; one forward pass per channel (``chunk_size`` at a time).
    Desai & Ramaswamy 2020, "Ablation-CAM: Visual Explanations for Deep Convolutional Network
    via Gradient-free Localization" (WACV).
    """

    method_name = "ablationcam"
    grad_cam_class = "AblationCAM"
    config_class = BatchedCAMConfig
    has_device_backend = True
    # grad-cam ablates a vision transformer's tokens with its own AblationLayerVit
    convolutional_only = True

    def make_grad_cam(self, config: BatchedCAMConfig) -> Any:
        return _RestoringAblationCAM(
            self.classifier, list(self._target_layers), config.chunk_size, self.reshape_transform
        )

    def default_chunk(self, device: torch.device) -> int:
        """The benchmark's chunk; on the device backend at least :data:`ABLATION_DEVICE_CHUNK`."""
        chunk = super().default_chunk(device)
        return max(chunk, ABLATION_DEVICE_CHUNK) if self.uses_device_backend() else chunk

    def device_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        return ablation_cam(
            self.classifier,
            backbone(self.classifier),
            self._target_layers[0],
            images,
            classes,
            self.chunk_for(images.device),
            class_logits_only=execution_of(self.classifier) != "eager",
        )
