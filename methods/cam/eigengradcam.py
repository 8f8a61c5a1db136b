"""Eigen-Grad-CAM (``eigengradcam``), through grad-cam only."""

from __future__ import annotations

from benchmark.methods.cam.base import CAM


class EigenGradCAM(CAM):
    """Eigen-Grad-CAM: first principal component of gradient x activation (class-specific Eigen-CAM).

    ``M = ReLU(P_1(dy^c/dA * A))`` with ``P_1`` the projection on the first principal
    component. grad-cam's variant of Eigen-CAM (Muhammad & Yeasin 2020, IJCNN).
    """

    method_name = "eigengradcam"
    grad_cam_class = "EigenGradCAM"
