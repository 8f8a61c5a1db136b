"""XGrad-CAM (``xgradcam``)."""

from __future__ import annotations

from torch import Tensor

from benchmark.methods.cam.base import GradientCAM
from benchmark.methods.cam.device import weighted


class XGradCAM(GradientCAM):
    """XGrad-CAM: gradients weighted by the normalized activations (axiom-based Grad-CAM).

    ``w_k = sum_ij (A^k_ij / sum_ab A^k_ab) dy^c/dA^k_ij``, ``M = ReLU(sum_k w_k A^k)``.
    Fu et al. 2020, "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of
    CNNs" (BMVC).
    """

    method_name = "xgradcam"
    grad_cam_class = "XGradCAM"

    def device_cam(self, activations: Tensor, gradients: Tensor) -> Tensor:
        """``sum_k w_k A^k``, ``w_k = sum_ij G_ij A_ij / (sum_ab A_ab + 1e-7)`` (grad-cam's epsilon)."""
        normalized = gradients * activations / (activations.sum(dim=(2, 3), keepdim=True) + 1e-7)
        return weighted(normalized.sum(dim=(2, 3)), activations)
