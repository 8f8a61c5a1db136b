"""KPCA-CAM (``kpcacam``), through grad-cam only."""

from __future__ import annotations

from benchmark.methods.cam.base import CAM


class KPCACAM(CAM):
    """KPCA-CAM: first kernel principal component of the activations (class-agnostic).

    ``M = ReLU(KPCA_1(A))`` with a sigmoid kernel over the pixels' channel vectors; the class
    is ignored. Karmani et al. 2024, "KPCA-CAM: Visual Explainability of Deep Computer Vision
    Models using Kernel PCA" (arXiv:2410.00267).
    """

    method_name = "kpcacam"
    grad_cam_class = "KPCA_CAM"
    uses_class = False
