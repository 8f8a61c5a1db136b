"""Grad-CAM (``gradcam``)."""

from __future__ import annotations

from torch import Tensor

from benchmark.methods.cam.base import GradientCAM
from benchmark.methods.cam.device import weighted


class GradCAM(GradientCAM):
    """Grad-CAM: activations weighted by the spatially averaged gradients of the class score.

    ``M = ReLU(sum_k a_k A^k)``, ``a_k = 1/Z sum_ij dy^c/dA^k_ij``.
    Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization" (ICCV).
    """

    method_name = "gradcam"
    grad_cam_class = "GradCAM"

    def device_cam(self, activations: Tensor, gradients: Tensor) -> Tensor:
        """``sum_k mean_ij(G^k) A^k``."""
        return weighted(gradients.mean(dim=(2, 3)), activations)
