"""The common CAMs computed on the images' device, without grad-cam's numpy round trips.

grad-cam copies the hooked activations and gradients to the CPU, computes the weights in
numpy and resizes with OpenCV, image by image. On a GPU those copies dominate a Grad-CAM
call. Here the same quantities come from one forward hook on the target layer and
``torch.autograd.grad``, and every step of grad-cam's pipeline is done in torch on the batch:

1. ``cam = kind(A, G)`` (the formulas below, as in grad-cam's classes),
2. ``cam = ReLU(cam)``, per image ``cam = (cam - min) / (1e-7 + max)`` (grad-cam's
   ``scale_cam_image``), bilinear resize to the input size (OpenCV's ``INTER_LINEAR`` =
   ``interpolate(bilinear, align_corners=False)``),
3. grad-cam's one-layer aggregation: ReLU and the same scaling again.

With A the layer's activations and G = dy^c/dA:

* ``gradcam``: ``sum_k mean_ij(G^k) A^k`` (Selvaraju et al. 2017)
* ``gradcampp``: ``sum_k w_k A^k``, ``w_k = sum_ij a_ij ReLU(G_ij)``,
  ``a = G^2 / (2 G^2 + sum_ab A_ab G^3 + 1e-6)``, 0 where ``G = 0`` (Chattopadhay et al. 2018)
* ``xgradcam``: ``sum_k w_k A^k``, ``w_k = sum_ij G_ij A_ij / (sum_ab A_ab + 1e-7)`` (Fu et al. 2020)
* ``hirescam``: ``sum_k G^k A^k`` element-wise (Draelos & Carin 2020)
* ``layercam``: ``sum_k ReLU(G^k) A^k`` element-wise (Jiang et al. 2021)
* ``random``: ``sum_k w_k A^k``, ``w ~ U(-1, 1)`` from the sample's own generator (no backward)
* ``eigencam``: ``A V_1``, the centred activations (pixels x channels) on their first right
  singular vector (Muhammad & Yeasin 2020), one batched SVD in torch (no backward)

On a vision transformer the layer's output is tokens; ``reshape_transform`` (grad-cam's
argument of the same name, :class:`models.layers.TokensToGrid`) turns the activations and
their gradients into ``[B, C, h, w]`` before step 1, as grad-cam's hooks do.

``tests/test_cam_device.py`` checks each against grad-cam's output to 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.core.tensors import at_least_float32, full_precision


def _weighted(weights: Tensor, activations: Tensor) -> Tensor:
    return (weights[:, :, None, None] * activations).sum(dim=1)


def _gradcam(a: Tensor, g: Tensor) -> Tensor:
    return _weighted(g.mean(dim=(2, 3)), a)


def _gradcampp(a: Tensor, g: Tensor) -> Tensor:
    g2 = g * g
    g3 = g2 * g
    alpha = g2 / (2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3 + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    return _weighted((g.clamp(min=0) * alpha).sum(dim=(2, 3)), a)


def _xgradcam(a: Tensor, g: Tensor) -> Tensor:
    return _weighted((g * a / (a.sum(dim=(2, 3), keepdim=True) + 1e-7)).sum(dim=(2, 3)), a)


def _hirescam(a: Tensor, g: Tensor) -> Tensor:
    return (g * a).sum(dim=1)


def _layercam(a: Tensor, g: Tensor) -> Tensor:
    return (g.clamp(min=0) * a).sum(dim=1)


#: Registry name -> ``cam(A, G) -> [B, h, w]`` before the ReLU.
DEVICE_CAMS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "gradcam": _gradcam,
    "gradcampp": _gradcampp,
    "xgradcam": _xgradcam,
    "hirescam": _hirescam,
    "layercam": _layercam,
}
#: Methods computed in torch: the gradient ones above, Random-CAM and Eigen-CAM, (in
#: ``methods.cam_device_perturbation``) Score-CAM, SmoothGrad-CAM++ and Ablation-CAM, and (in
#: ``methods.fullgrad_device``) FullGrad.
DEVICE_METHODS = (*DEVICE_CAMS, "random", "eigencam", "scorecam", "smoothgradcampp", "ablationcam", "fullgrad")
#: Device methods that take no ``reshape_transform`` (grad-cam ablates a vision transformer's
#: tokens with its own ``AblationLayerVit``): grad-cam's path computes them on those models.
CONVOLUTIONAL_ONLY = ("ablationcam",)
#: Device methods that read the layer's activations in a forward-only pass (no backward): under
#: the ``compiled`` execution the run's compiled graph returns them with the logits, for the
#: full pieces of the graph's batch (the rest runs the hooked pass).
FORWARD_ONLY_METHODS = ("random", "eigencam")


def random_channel_weights(seeds: Sequence[int], channels: int) -> np.ndarray:
    """``[B, channels]`` weights ``U(-1, 1)``, row ``i`` from numpy ``default_rng(seeds[i])``
    (the same numbers grad-cam's path draws in ``SeededRandomCAM``)."""
    return np.stack([np.random.default_rng(int(s)).uniform(-1, 1, size=channels) for s in seeds])


#: On the CPU, a matrix with at least this many times as many columns as rows is factored as
#: ``L Q`` first (a QR of its transpose) and only the small ``L`` goes through the SVD: the same
#: map ``s_1 u_1`` without forming the 1,280-wide ``V`` (0.67-0.80 against 1.41-1.62 ms per image
#: for EfficientNet-Lite0's 49 x 1280, batch 16, 2026-12-02). Its sign is the factorization's, as
#: the full SVD's is (the sign of an Eigen-CAM map is whatever the SVD returns): on the 200 sample
#: images both equal numpy's (grad-cam's) on every image; on random matrices the two routes gave
#: opposite signs for 1 of 24 at 196 x 4096 on one machine (MKL's ``gesdd`` does not factor every
#: shape alike on every CPU), and either disagrees with numpy's on 17-42% of them
#: (tests/test_cam_device.py).
WIDE_SVD_RATIO = 20


def eigen_projection(activations: Tensor) -> Tensor:
    """``[B, h, w]``: per image the centred activations (pixels x channels) projected on their
    first right singular vector, one batched SVD (grad-cam's ``get_2d_projection`` runs a full
    numpy SVD per image; the reduced one has the same first vector; on the CPU a wide matrix's
    through its QR first, :data:`WIDE_SVD_RATIO`). NaN counts as 0."""
    batch, channels, height, width = activations.shape
    pixels = torch.nan_to_num(activations, nan=0.0).flatten(2).transpose(1, 2)  # [B, hw, C]
    pixels = pixels - pixels.mean(dim=1, keepdim=True)
    if pixels.device.type == "cpu" and channels >= WIDE_SVD_RATIO * height * width:
        # A = L Q^T with L = R^T from the QR of A^T; A V_1 = s_1 u_1 with u_1 L's first left vector
        _, r = torch.linalg.qr(pixels.transpose(1, 2))
        u, s, _ = torch.linalg.svd(r.transpose(1, 2))
        return (u[:, :, 0] * s[:, :1]).view(batch, height, width)
    _, _, vh = torch.linalg.svd(pixels, full_matrices=False)
    return (pixels @ vh[:, 0, :, None]).view(batch, height, width)


def _scale(cams: Tensor) -> Tensor:
    """grad-cam's ``scale_cam_image`` without the resize: per image ``(x - min) / (1e-7 + max)``."""
    flat = cams.flatten(1)
    flat = flat - flat.amin(dim=1, keepdim=True)
    flat = flat / (1e-7 + flat.amax(dim=1, keepdim=True))
    return flat.view_as(cams)


def layer_activations(
    classifier: nn.Module, layer: nn.Module, images: Tensor, classes: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """The target layer's output ``A`` on ``images`` and, when ``classes`` is given,
    ``G = d(sum_i y_i^{c_i}) / dA`` (one backward for the batch). The layer's output is
    handed on as a copy, so an in-place op after it cannot change ``A``."""
    kept: dict[str, Tensor] = {}

    def keep(module: nn.Module, args, output: Tensor) -> Tensor:
        if classes is not None:
            # The graph starts here: the backward stops at the layer, so nothing before it is kept
            # for autograd (the input does not require grad).
            output = output.detach().requires_grad_(True)
        kept["a"] = output
        return output.clone()

    handle = layer.register_forward_hook(keep)
    try:
        with torch.inference_mode(False):
            inputs = images.detach().clone()
            if classes is None:
                with torch.no_grad():
                    classifier(inputs)
                return kept["a"].detach(), None
            with torch.enable_grad():
                logits = classifier(inputs)
                score = logits.gather(1, classes.to(logits.device).long().view(-1, 1)).sum()
                (gradient,) = torch.autograd.grad(score, kept["a"])
            return kept["a"].detach(), gradient.detach()
    finally:
        handle.remove()


def device_cam(
    kind: str,
    classifier: nn.Module,
    layer: nn.Module,
    images: Tensor,
    classes: Tensor,
    seeds: Sequence[int] | None = None,
    reshape_transform: Callable[[Tensor], Tensor] | None = None,
    forward_with_layer: Callable[[Tensor], tuple[Tensor, Tensor] | None] | None = None,
) -> Tensor:
    """Maps ``[B, H, W]`` (float32, on the images' device) of CAM ``kind`` (see
    :data:`DEVICE_METHODS`); ``seeds`` = one per image, for ``random``; ``reshape_transform``
    maps the layer's output (and its gradient) to ``[B, C, h, w]`` (vision transformers).

    ``forward_with_layer(images)``: the logits and ``layer``'s output from a forward-only pass
    (the run's compiled graph, :meth:`models.execution.CompiledForward.with_layer`) or ``None``;
    the methods of :data:`FORWARD_ONLY_METHODS` read their activations from it, else from a
    hooked forward."""
    with full_precision(images):  # as the grad-cam backend (numpy has no bfloat16): float32 maps under bf16
        return _device_cam(kind, classifier, layer, images, classes, seeds, reshape_transform, forward_with_layer)


def _forward_activations(classifier, layer, images, forward_with_layer) -> Tensor:
    both = forward_with_layer(images) if forward_with_layer is not None else None
    return both[1] if both is not None else layer_activations(classifier, layer, images, None)[0]


def _device_cam(kind, classifier, layer, images, classes, seeds, reshape_transform, forward_with_layer) -> Tensor:
    reshape = reshape_transform if reshape_transform is not None else (lambda tensor: tensor)
    if kind == "eigencam":
        activations = reshape(_forward_activations(classifier, layer, images, forward_with_layer))
        cams = eigen_projection(at_least_float32(activations))
    elif kind == "random":
        if seeds is None or len(seeds) != images.shape[0]:
            raise ValueError("random needs one seed per image")
        activations = reshape(_forward_activations(classifier, layer, images, forward_with_layer))
        weights = torch.from_numpy(random_channel_weights(seeds, activations.shape[1]))
        # float64 as in grad-cam (numpy promotes the float32 activations to the weights' dtype)
        cams = _weighted(weights.to(device=activations.device), activations.double())
    else:
        activations, gradients = layer_activations(classifier, layer, images, classes)
        cams = DEVICE_CAMS[kind](at_least_float32(reshape(activations)), at_least_float32(reshape(gradients)))
    return finish_cams(cams, images.shape[-2:])


def finish_cams(cams: Tensor, size: Sequence[int]) -> Tensor:
    """grad-cam's pipeline after ``cam = sum_k w_k A^k``: ReLU, per-image min-max, bilinear
    resize to ``size``, then its one-layer aggregation (ReLU, min-max again); float32."""
    cams = _scale(cams.float().clamp(min=0))
    cams = F.interpolate(cams[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return _scale(cams.clamp(min=0))
