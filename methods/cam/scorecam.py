"""Score-CAM (``scorecam``), and its device backend.

On the device (:func:`score_cam`): with ``A`` the layer's activations of ``x``,
``H^k = minmax(upsample(A^k))`` (bilinear, corners aligned, as grad-cam's
``UpsamplingBilinear2d``; ``minmax`` with ``+1e-8``), ``s_k = y^c(x * H^k)`` (the logit),
``w = softmax_k(s)``, ``M = ReLU(sum_k w_k A^k)``. The ``C`` masked copies of each image go
through ``forward`` (the run's forward-only pass, compiled under ``--execution compiled``)
``chunk`` at a time, scored on the device; grad-cam scores them with one ``.item()`` per copy,
its hooks recording every copy's activations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.core.tensors import full_precision
from benchmark.methods.cam.base import CAM
from benchmark.methods.cam.config import BatchedCAMConfig
from benchmark.methods.cam.device import Reshape, finish_cams, layer_activations, weighted
from benchmark.methods.cam.grad_cam_backend import installed_grad_cam_class


def score_cam(
    classifier: nn.Module,
    forward: Callable[[Tensor], Tensor],
    layer: nn.Module,
    images: Tensor,
    classes: Tensor,
    chunk: int,
    reshape_transform: Reshape = None,
) -> Tensor:
    """Score-CAM maps ``[B, H, W]``; ``forward(images) -> logits`` scores the masked copies."""
    with full_precision(images):
        activations = layer_activations(classifier, layer, images, None)[0]
        if reshape_transform is not None:
            activations = reshape_transform(activations)
        # NCHW: a channels_last layer's output would make every mask below channels_last, its
        # flatten a copy and its min and max strided reductions (a measurable share of the time)
        activations = activations.float().contiguous()
        batch, channels = activations.shape[:2]
        scores = torch.empty(batch, channels, dtype=torch.float32, device=images.device)
        with torch.no_grad():
            for i in range(batch):
                for start in range(0, channels, chunk):
                    masks = F.interpolate(
                        activations[i : i + 1, start : start + chunk],
                        size=images.shape[-2:],
                        mode="bilinear",
                        align_corners=True,
                    )[0]
                    flat = masks.flatten(1)
                    low = flat.amin(dim=1)[:, None, None]
                    high = flat.amax(dim=1)[:, None, None]
                    masks = (masks - low) / (high - low + 1e-8)
                    logits = forward(images[i : i + 1] * masks[:, None].to(images.dtype))
                    scores[i, start : start + masks.shape[0]] = logits[:, int(classes[i])].float()
        return finish_cams(weighted(scores.softmax(dim=-1), activations), images.shape[-2:])


class ScoreCAM(CAM):
    """Score-CAM: channels weighted by the softmax of the class score of the image masked by each channel.

    ``H^k = minmax(upsample(A^k))``, ``s_k = y^c(x * H^k)``, ``w = softmax_k(s)``,
    ``M = ReLU(sum_k w_k A^k)``; one forward pass per channel (``chunk_size`` at a time).
    Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks" (CVPR Workshops).
    """

    method_name = "scorecam"
    grad_cam_class = "ScoreCAM"
    config_class = BatchedCAMConfig
    has_device_backend = True
    #: grad-cam builds the masked copies ``[B, C, 3, H, W]`` of the whole batch at once (ResNet-50,
    #: C = 2048, B = 8: ~10 GB), so it is called one image at a time (~1.2 GB); its forwards are
    #: batched inside
    images_per_call = 1

    def make_grad_cam(self, config: BatchedCAMConfig) -> Any:
        cam = installed_grad_cam_class(self.grad_cam_class)(
            model=self.classifier, target_layers=list(self._target_layers), reshape_transform=self.reshape_transform
        )
        cam.batch_size = config.chunk_size  # read by ScoreCAM.get_cam_weights
        return cam

    def device_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        return score_cam(
            self.classifier,
            self.forward_only,
            self._target_layers[0],
            images,
            classes,
            self.chunk_for(images.device),
            self.reshape_transform,
        )
