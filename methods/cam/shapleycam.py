"""Shapley-CAM (``shapleycam``), through grad-cam only."""

from __future__ import annotations

from benchmark.methods.cam.base import CAM


class ShapleyCAM(CAM):
    """Shapley-CAM: gradients corrected by a Hessian-vector product, spatially averaged.

    ``w_k = mean_ij (g - 1/2 H A)^k_ij`` with ``g = dy^c/dA`` and ``H A`` the Hessian of
    ``y^c`` w.r.t. ``A`` times ``A``; ``M = ReLU(sum_k w_k A^k)``.
    Cai 2025, "Rethinking Explainable AI: ShapleyCAM - a Game-Theoretic Approach to Class
    Activation Mapping" (arXiv:2501.06261).
    """

    method_name = "shapleycam"
    grad_cam_class = "ShapleyCAM"
