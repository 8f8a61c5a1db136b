"""BatchNorm in eval mode as one multiply-add, for the fast executions' gradient passes.

In eval mode a BatchNorm is a per-channel affine map of its input::

    y = (x - mean) / sqrt(var + eps) * w + b = x * s + t,   s = w / sqrt(var + eps),  t = b - mean * s

PyTorch's CPU kernel computes it, and its backward (``native_batch_norm_backward``), as a
general normalization: on EfficientNet-Lite0 (channels_last, 2-core CPU) the 49 BatchNorms took
20% of a forward+backward to the input. As ``torch.addcmul(t, x, s)`` the backward is one
multiply (``dL/dx = dL/dy * s``; the frozen parameters need no gradient): a LOTS iteration is
faster (measured in ``perf/README.md``). ``s`` and ``t`` are computed from the module's current
parameters and buffers at every pass (a few thousand numbers), so a metric that changes the
weights in place (model randomization) is followed. The result equals the kernel's up to
float32 rounding (below 2e-6 of the largest value; float64: 1e-14).

Only passes that record a graph through the module take it (its input requires grad: LOTS's
steps, a backward to the input); a forward without one (the curves, ``x * M``, the CAMs'
forward, whose backward stops at the target layer) gains nothing from it and keeps the kernel,
so the CAM metrics stay what they were, bit for bit: a 1e-7 change of a CAM's activations would
reorder the pixels that the bilinear upsampling makes equal, and move Insertion/Deletion by up
to 0.008 points (measured on the built-in photos).

:func:`affine_batchnorms` switches a network's BatchNorm2d modules (and timm's
``BatchNormAct2d``, whose activation and dropout follow) to this forward in place: the modules
keep their class, names, parameters and hooks; in training mode, without running
statistics, or without a graph through them, they run the original forward. Other BatchNorm
subclasses are left alone (their forward may do more).
"""

from __future__ import annotations

import types
from collections.abc import Callable

import torch
from torch import Tensor, nn


def eval_affine(module: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """``(s, t)`` per channel: the BatchNorm in eval mode is ``x * s + t``, with
    ``s = w / sqrt(var + eps)`` and ``t = b - mean * s`` (``t`` is its effective bias)."""
    scale = torch.rsqrt(module.running_var + module.eps)
    if module.weight is not None:
        scale = scale * module.weight
    shift = -module.running_mean * scale
    if module.bias is not None:
        shift = shift + module.bias
    return scale, shift


def _affine(module: nn.modules.batchnorm._BatchNorm, x: Tensor) -> Tensor:
    scale, shift = eval_affine(module)
    shape = (1, -1, *([1] * (x.dim() - 2)))
    return torch.addcmul(shift.view(shape), x, scale.view(shape))


def _multiply_add(module: nn.modules.batchnorm._BatchNorm, x: Tensor) -> bool:
    """Whether this pass takes the multiply-add: eval mode with running statistics, and a graph
    recorded through the module (its input requires grad: LOTS's steps), where the backward is
    the gain. Other passes keep the kernel, so their numbers stay the kernel's bit for bit."""
    return (
        not module.training
        and module.running_mean is not None
        and module.running_var is not None
        and torch.is_grad_enabled()
        and x.requires_grad
    )


def _batchnorm_forward(self: nn.modules.batchnorm._BatchNorm, x: Tensor) -> Tensor:
    if not _multiply_add(self, x):
        return type(self).forward(self, x)
    return _affine(self, x)


def _batchnorm_act_forward(self: nn.Module, x: Tensor) -> Tensor:
    if not _multiply_add(self, x):
        return type(self).forward(self, x)
    return self.act(self.drop(_affine(self, x)))


# Named like the method they stand in for: a pickled module then comes back with its class's
# own forward (the kernel), which computes the same.
_batchnorm_forward.__name__ = _batchnorm_act_forward.__name__ = "forward"

#: The classes switched, and the forward each gets.
_FORWARDS: dict[type, Callable[[nn.Module, Tensor], Tensor]] = {nn.BatchNorm2d: _batchnorm_forward}

try:  # timm's BatchNorm + dropout + activation (EfficientNet-Lite and most timm CNNs)
    from timm.layers.norm_act import BatchNormAct2d

    _FORWARDS[BatchNormAct2d] = _batchnorm_act_forward
except ImportError:  # pragma: no cover - timm is a dependency; a plain torchvision model needs none
    pass


def affine_batchnorms(net: nn.Module) -> int:
    """Give ``net``'s BatchNorm2d (and timm ``BatchNormAct2d``) modules their multiply-add
    forward, as an attribute of each module (their class stays: code that checks
    ``type(layer) is BatchNorm2d``, as grad-cam's FullGrad does, sees them as before); returns
    how many modules have it."""
    switched = 0
    for module in net.modules():
        forward = _FORWARDS.get(type(module))
        if forward is not None:
            if "forward" not in module.__dict__:
                module.forward = types.MethodType(forward, module)
            switched += 1
    return switched


def has_affine_forward(module: nn.Module) -> bool:
    """Whether ``module`` runs the multiply-add forward (:func:`affine_batchnorms`)."""
    forward = module.__dict__.get("forward")
    return getattr(forward, "__func__", None) in _FORWARDS.values()
