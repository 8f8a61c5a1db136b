"""Layer-CAM (``layercam``)."""

from __future__ import annotations

from torch import Tensor

from benchmark.methods.cam.base import GradientCAM


class LayerCAM(GradientCAM):
    """Layer-CAM: activations weighted element-wise by their positive gradients.

    ``M = ReLU(sum_k ReLU(dy^c/dA^k_ij) A^k_ij)``.
    Jiang et al. 2021, "LayerCAM: Exploring Hierarchical Class Activation Maps for
    Localization" (IEEE TIP).
    """

    method_name = "layercam"
    grad_cam_class = "LayerCAM"

    def device_cam(self, activations: Tensor, gradients: Tensor) -> Tensor:
        """``sum_k ReLU(G^k) A^k`` element-wise."""
        return (gradients.clamp(min=0) * activations).sum(dim=1)
