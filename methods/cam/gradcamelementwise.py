"""Grad-CAM element-wise (``gradcamelementwise``), through grad-cam only."""

from __future__ import annotations

from benchmark.methods.cam.base import CAM


class GradCAMElementWise(CAM):
    """Grad-CAM element-wise: the positive part of gradient x activation, summed over channels.

    ``M = ReLU(sum_k ReLU(dy^c/dA^k_ij * A^k_ij))``. grad-cam's variant of HiRes-CAM
    (Draelos & Carin 2020, arXiv:2011.08891) with a ReLU per element.
    """

    method_name = "gradcamelementwise"
    grad_cam_class = "GradCAMElementWise"
