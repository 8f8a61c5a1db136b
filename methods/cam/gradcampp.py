"""Grad-CAM++ (``gradcampp``)."""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.methods.cam.base import GradientCAM
from benchmark.methods.cam.device import weighted


class GradCAMPlusPlus(GradientCAM):
    """Grad-CAM++: activations weighted by positive gradients with per-pixel alpha coefficients.

    With ``g = dy^c/dA``: ``alpha_ij^k = g^2 / (2 g^2 + sum_ab A^k_ab g^3)``,
    ``w_k = sum_ij alpha_ij^k ReLU(g_ij^k)``, ``M = ReLU(sum_k w_k A^k)``.
    Chattopadhay et al. 2018, "Grad-CAM++: Generalized Gradient-based Visual Explanations for
    Deep Convolutional Networks" (WACV).
    """

    method_name = "gradcampp"
    grad_cam_class = "GradCAMPlusPlus"

    def device_cam(self, activations: Tensor, gradients: Tensor) -> Tensor:
        """``sum_k w_k A^k``, ``w_k = sum_ij a_ij ReLU(G_ij)``,
        ``a = G^2 / (2 G^2 + sum_ab A_ab G^3 + 1e-6)``, 0 where ``G = 0`` (grad-cam's epsilon)."""
        g2 = gradients * gradients
        g3 = g2 * gradients
        alpha = g2 / (2 * g2 + activations.sum(dim=(2, 3), keepdim=True) * g3 + 1e-6)
        alpha = torch.where(gradients != 0, alpha, torch.zeros_like(alpha))
        return weighted((gradients.clamp(min=0) * alpha).sum(dim=(2, 3)), activations)
