"""Eigen-CAM (``eigencam``): the activations' first principal component."""

from __future__ import annotations

from torch import Tensor

from benchmark.core.tensors import at_least_float32
from benchmark.methods.cam.base import CAM
from benchmark.methods.cam.device import eigen_projection, forward_only_cam


class EigenCAM(CAM):
    """Eigen-CAM: projection of the activations on their first principal component (class-agnostic).

    ``M = ReLU(A V_1)`` with ``V_1`` the first right singular vector of the centred
    activations (pixels x channels); the class is ignored.
    Muhammad & Yeasin 2020, "Eigen-CAM: Class Activation Map using Principal Components"
    (IJCNN).
    """

    method_name = "eigencam"
    grad_cam_class = "EigenCAM"
    uses_class = False
    has_device_backend = True
    forward_only_activations = True

    def device_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        """One batched SVD in torch (:func:`.device.eigen_projection`), no backward."""
        return forward_only_cam(
            self.classifier,
            self._target_layers[0],
            images,
            lambda activations: eigen_projection(at_least_float32(activations)),
            self.reshape_transform,
            self.forward_with_layer,
        )
