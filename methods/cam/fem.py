"""FEM (``fem``), through grad-cam only."""

from __future__ import annotations

from benchmark.methods.cam.base import CAM


class FEM(CAM):
    """FEM: channels weighted by the share of their pixels above mean + 2 std (class-agnostic).

    ``w_k = mean_ij [A^k_ij > mu_k + 2 sigma_k]``, ``M = ReLU(sum_k w_k A^k)``; the class is
    ignored. Fuad et al. 2020, "Features Understanding in 3D CNNs for Actions Recognition in
    Video" (IPTA).
    """

    method_name = "fem"
    grad_cam_class = "FEM"
    uses_class = False
