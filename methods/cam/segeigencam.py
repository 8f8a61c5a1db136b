"""Seg-Eigen-CAM (``segeigencam``), through grad-cam only."""

from __future__ import annotations

from benchmark.methods.cam.base import CAM


class SegEigenCAM(CAM):
    """Seg-Eigen-CAM: first principal component of |gradient| x activation, sign-corrected.

    ``M = ReLU(s P_1(|dy^c/dA| * A))`` with ``s`` = +-1 chosen so the larger magnitude is
    positive. Chung & Ying 2025, "Seg-Eigen-CAM: Eigen-Value-Based Visual Explanations for
    Semantic Segmentation Models" (Applied Sciences 15(13)); here on a classifier's score.
    """

    method_name = "segeigencam"
    grad_cam_class = "SegEigenCAM"
