"""FullGrad computed in torch on the images' device, over every bias layer of the network.

FullGrad (Srinivas & Fleuret 2019, "Full-Gradient Representation for Neural Network
Visualization", NeurIPS) sums the input-gradient term and one bias-gradient term per layer
with a bias::

    M = minmax( sum_c psi(|dy^c/dx * x|_c) + sum_l sum_k psi(up(|b_l,k * dy^c/dz_l,k|)) )

with ``z_l`` the layer's output, ``b_l`` its bias (a BatchNorm's effective bias
``beta - mu * gamma / sqrt(var + eps)``), ``psi`` grad-cam's per-channel min-max
``(v - min) / (1e-7 + max)`` and ``up`` the bilinear resize to the input size. This is
grad-cam's ``FullGrad`` step for step, with two differences:

* **The layers.** grad-cam takes the modules whose type is exactly ``Conv2d`` or
  ``BatchNorm2d``; subclasses are skipped, and with them timm's ``BatchNormAct2d`` (every
  BatchNorm of EfficientNet-Lite and most timm CNNs, whose convolutions have no bias): there,
  grad-cam's map is the input-gradient term alone. Here every ``Conv2d`` and ``BatchNorm2d``
  with a bias counts, a ``BatchNormAct2d``'s ``z`` read before its activation (the output
  of its ``drop``). Where the two agree on the layers (plain ``Conv2d``/``BatchNorm2d``
  models such as torchvision's) the maps are grad-cam's to 1e-5 (tested).
* **The work.** One forward and one backward for the batch; the bias terms are summed over
  the channels and over the layers of one resolution before the resize (the resize is
  linear, so this is the same map up to rounding: 5 resizes for EfficientNet-Lite0's 49
  layers instead of one per channel), all on the device; grad-cam
  copies every layer's gradients to numpy and resizes each channel with OpenCV.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics.functional.image import at_least_float32, full_precision
from models.batchnorm import eval_affine


def bias_layers(net: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """``(layer, where its output z is read)`` for every ``Conv2d`` and ``BatchNorm2d`` (with
    running statistics) of ``net`` that has a bias; a ``BatchNormAct2d`` is read at its
    ``drop`` (before its activation)."""
    found = []
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            if module.bias is None or module.running_mean is None:
                continue
            drop, act = getattr(module, "drop", None), getattr(module, "act", None)
            found.append((module, drop if isinstance(drop, nn.Module) and isinstance(act, nn.Module) else module))
        elif isinstance(module, nn.Conv2d) and module.bias is not None:
            found.append((module, module))
    return found


def effective_bias(layer: nn.Module) -> Tensor:
    """A convolution's bias; a BatchNorm's ``beta - mu * gamma / sqrt(var + eps)`` (the bias of
    the affine map it is in eval mode, :func:`models.batchnorm.eval_affine`; the paper's code)."""
    if isinstance(layer, nn.BatchNorm2d):
        return eval_affine(layer)[1]
    return layer.bias


def _scaled_channel_sum(values: Tensor, scale: Tensor | None = None) -> Tensor:
    """``[B, 1, h, w]``: the sum over the channels of grad-cam's ``scale_accross_batch_and_channels``
    without the resize: each ``[h, w]`` map of ``v = |values * scale|`` (``values``: ``[B, C, h,
    w]``, left as it is: autograd may hand one gradient to several layers; ``scale``: ``[1, C,
    1, 1]`` or ``None``) taken to ``(v - min) / (1e-7 + max(v - min))`` (``max(v - min) = max -
    min`` exactly: rounding is monotonic), in place on one new tensor (the pass is memory-bound:
    6.7 million numbers per image on EfficientNet-Lite0)."""
    values = values.abs()  # a new tensor: the steps below work in place on it
    if scale is not None:
        values = values.mul_(scale.abs())
    low = values.amin(dim=(2, 3), keepdim=True)
    spread = values.amax(dim=(2, 3), keepdim=True).sub_(low).add_(1e-7)
    return values.sub_(low).div_(spread).sum(dim=1, keepdim=True)


def fullgrad(classifier: nn.Module, net: nn.Module, images: Tensor, classes: Tensor) -> Tensor:
    """FullGrad maps ``[B, H, W]`` (float32) of ``classes`` over the bias layers of ``net`` (the
    backbone ``classifier`` runs)."""
    with full_precision(images):
        layers = bias_layers(net)
        gradients: list[Tensor | None] = [None] * len(layers)
        handles = []

        def reader(index: int):
            def store(gradient: Tensor) -> None:
                gradients[index] = gradient

            def keep(module: nn.Module, args, output: Tensor) -> None:
                if output.requires_grad:  # a tensor hook sees dy/dz even if an in-place op follows
                    output.register_hook(store)

            return keep

        for index, (_, read) in enumerate(layers):
            handles.append(read.register_forward_hook(reader(index)))
        try:
            with torch.inference_mode(False), torch.enable_grad():
                inputs = images.detach().clone().requires_grad_(True)
                logits = classifier(inputs)
                score = logits.gather(1, classes.to(logits.device).long().view(-1, 1)).sum()
                (input_gradient,) = torch.autograd.grad(score, inputs)
        finally:
            for handle in handles:
                handle.remove()
        size = tuple(images.shape[-2:])
        total = _scaled_channel_sum(at_least_float32(input_gradient * inputs.detach()))[:, 0]
        # the resize is linear: the layers' terms of one resolution are summed, then resized once
        by_size: dict[tuple[int, int], Tensor] = {}
        for (layer, _), gradient in zip(layers, gradients):
            if gradient is None:  # the layer does not reach the class score: a zero map, scaled to 0
                continue
            bias = at_least_float32(effective_bias(layer).detach())[None, :, None, None]
            term = _scaled_channel_sum(at_least_float32(gradient), bias)  # |b * dy/dz| = |dy/dz| * |b|
            key = tuple(term.shape[-2:])
            by_size[key] = term if key not in by_size else by_size[key] + term
        for term in by_size.values():
            total = total + F.interpolate(term, size=size, mode="bilinear", align_corners=False)[:, 0]
        flat = total.flatten(1)
        flat = flat - flat.amin(dim=1, keepdim=True)
        return (flat / (1e-7 + flat.amax(dim=1, keepdim=True))).view_as(total).float()
