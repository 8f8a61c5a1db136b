"""SESS (``sess``), through grad-cam only."""

from __future__ import annotations

from typing import Any

from benchmark.methods.cam.base import CAM
from benchmark.methods.cam.config import BatchedCAMConfig
from benchmark.methods.cam.grad_cam_backend import installed_grad_cam_class


class SESS(CAM):
    """SESS: Grad-CAM over sliding windows at 12 scales, fused by a score-weighted mean.

    The image is resized to 12 scales (``s + 2/7 s i``, ``s`` = its shorter side), windows of
    size ``s`` are cut out, each window's Grad-CAM is weighted by its softmax score of the
    class and pasted back; ``M = blur(mean over windows)``. ``chunk_size`` windows per pass.
    Tursun et al. 2022, "SESS: Saliency Enhancing with Scaling and Sliding" (ECCV).
    """

    method_name = "sess"
    grad_cam_class = "SESS"
    config_class = BatchedCAMConfig

    def make_grad_cam(self, config: BatchedCAMConfig) -> Any:
        return installed_grad_cam_class(self.grad_cam_class)(
            model=self.classifier,
            target_layers=list(self._target_layers),
            reshape_transform=self.reshape_transform,
            base_method=installed_grad_cam_class("GradCAM"),
            batch_size=config.chunk_size,
        )
