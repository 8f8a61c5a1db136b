"""HiRes-CAM (``hirescam``)."""

from __future__ import annotations

from torch import Tensor

from benchmark.methods.cam.base import GradientCAM


class HiResCAM(GradientCAM):
    """HiRes-CAM: activations multiplied element-wise by their gradients, summed over channels.

    ``M = ReLU(sum_k dy^c/dA^k_ij * A^k_ij)``.
    Draelos & Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations of
    convolutional neural networks" (arXiv:2011.08891).
    """

    method_name = "hirescam"
    grad_cam_class = "HiResCAM"

    def device_cam(self, activations: Tensor, gradients: Tensor) -> Tensor:
        """``sum_k G^k A^k`` element-wise."""
        return (gradients * activations).sum(dim=1)
