"""The CAMs computed on the images' device (``--method.backend device``), without grad-cam's
numpy round trips: what they share.

grad-cam copies the hooked activations and gradients to the CPU, computes the weights in
numpy and resizes with OpenCV, image by image. On a GPU those copies dominate a Grad-CAM
call. Here the same quantities come from one forward hook on the target layer and
``torch.autograd.grad``, and every step of grad-cam's pipeline is done in torch on the batch:

1. ``cam = f(A, G)``, the method's own formula (``device_cam`` of its class, e.g.
   :class:`~benchmark.methods.cam.gradcam.GradCAM`), with ``A`` the layer's activations and
   ``G = dy^c/dA`` (:func:`gradient_cam`), or ``f(A)`` from a forward-only pass for the
   methods that need no gradient (:func:`forward_only_cam`: Random-CAM, Eigen-CAM),
2. ``cam = ReLU(cam)``, per image ``cam = (cam - min) / (1e-7 + max)`` (grad-cam's
   ``scale_cam_image``), bilinear resize to the input size (OpenCV's ``INTER_LINEAR`` =
   ``interpolate(bilinear, align_corners=False)``),
3. grad-cam's one-layer aggregation: ReLU and the same scaling again (:func:`finish_cams`).

On a vision transformer the layer's output is tokens; ``reshape_transform`` (grad-cam's
argument of the same name, :class:`models.layers.TokensToGrid`) turns the activations and
their gradients into ``[B, C, h, w]`` before step 1, as grad-cam's hooks do.

``tests/methods/test_cam_device.py`` checks each method against grad-cam's output to 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.core.tensors import at_least_float32, full_precision

Reshape = Callable[[Tensor], Tensor] | None


def identity(tensor: Tensor) -> Tensor:
    return tensor


def weighted(weights: Tensor, activations: Tensor) -> Tensor:
    """``[B, h, w]``: ``sum_k w_k A^k`` for channel weights ``[B, C]`` and activations ``[B, C, h, w]``."""
    return (weights[:, :, None, None] * activations).sum(dim=1)


def random_channel_weights(seeds: Sequence[int], channels: int) -> np.ndarray:
    """``[B, channels]`` weights ``U(-1, 1)``, row ``i`` from numpy ``default_rng(seeds[i])``
    (the same numbers grad-cam's path draws in ``SeededRandomCAM``)."""
    return np.stack([np.random.default_rng(int(s)).uniform(-1, 1, size=channels) for s in seeds])


#: On the CPU, a matrix with at least this many times as many columns as rows is factored as
#: ``L Q`` first (a QR of its transpose) and only the small ``L`` goes through the SVD: the same
#: map ``s_1 u_1`` without forming the wide ``V``, which is faster for the wide activations of
#: the usual CNNs' last layers (EfficientNet-Lite0's 49 x 1280; measured in perf/README.md). Its
#: sign is the factorization's, as the full SVD's is (the sign of an Eigen-CAM map is whatever the
#: SVD returns): on the sample images both equal numpy's (grad-cam's); on random matrices the two
#: routes can give opposite signs (MKL's ``gesdd`` does not factor every shape alike on every
#: CPU), and either can disagree with numpy's (tests/methods/test_cam_device.py).
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


def gradient_cam(
    classifier: nn.Module,
    layer: nn.Module,
    images: Tensor,
    classes: Tensor,
    formula: Callable[[Tensor, Tensor], Tensor],
    reshape_transform: Reshape = None,
) -> Tensor:
    """Maps ``[B, H, W]`` (float32, on the images' device) of ``formula(A, G) -> [B, h, w]``
    (before the ReLU), with ``A`` the layer's activations and ``G = dy^c/dA`` (one backward for
    the batch, stopping at the layer)."""
    with full_precision(images):  # as the grad-cam backend (numpy has no bfloat16): float32 maps under bf16
        reshape = reshape_transform if reshape_transform is not None else identity
        activations, gradients = layer_activations(classifier, layer, images, classes)
        cams = formula(at_least_float32(reshape(activations)), at_least_float32(reshape(gradients)))
        return finish_cams(cams, images.shape[-2:])


def forward_only_cam(
    classifier: nn.Module,
    layer: nn.Module,
    images: Tensor,
    formula: Callable[[Tensor], Tensor],
    reshape_transform: Reshape = None,
    forward_with_layer: Callable[[Tensor], tuple[Tensor, Tensor] | None] | None = None,
) -> Tensor:
    """Maps ``[B, H, W]`` (float32) of ``formula(A) -> [B, h, w]``, a CAM that needs no gradient.

    ``forward_with_layer(images)``: the logits and ``layer``'s output from a forward-only pass
    (the run's compiled graph, :meth:`models.execution.CompiledForward.with_layer`) or ``None``;
    the activations come from it, else from a hooked forward."""
    with full_precision(images):
        reshape = reshape_transform if reshape_transform is not None else identity
        both = forward_with_layer(images) if forward_with_layer is not None else None
        activations = both[1] if both is not None else layer_activations(classifier, layer, images, None)[0]
        return finish_cams(formula(reshape(activations)), images.shape[-2:])


def finish_cams(cams: Tensor, size: Sequence[int]) -> Tensor:
    """grad-cam's pipeline after ``cam = sum_k w_k A^k``: ReLU, per-image min-max, bilinear
    resize to ``size``, then its one-layer aggregation (ReLU, min-max again); float32."""
    cams = _scale(cams.float().clamp(min=0))
    cams = F.interpolate(cams[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return _scale(cams.clamp(min=0))
