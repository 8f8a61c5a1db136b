"""Average Drop and Average Increase (Chattopadhyay et al. 2018, "Grad-CAM++: Generalized
Gradient-Based Visual Explanations for Deep Convolutional Networks", WACV).

Both compare, per image, the softmax probability ``Y`` of the top-1 class ``c`` on the
original image ``x`` with the probability ``O`` of the same class on the explanation image
``x * M``. They are pure tensor functions over a batch; the classes in ``metrics/`` average them.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(base_prob: Tensor, explanation_prob: Tensor) -> None:
    if base_prob.shape != explanation_prob.shape or base_prob.ndim != 1:
        raise ValueError(
            "expected base_prob and explanation_prob of the same shape [B], got "
            f"{tuple(base_prob.shape)} and {tuple(explanation_prob.shape)}"
        )


def average_drop(base_prob: Tensor, explanation_prob: Tensor) -> Tensor:
    """Per-image drop in percent: ``max(0, Y - O) / Y * 100``.

    ``base_prob[B]`` = Y (probability of c on x), ``explanation_prob[B]`` = O (probability of c
    on x * M). The drop is *relative* to Y (grad-cam's ``DropInConfidence`` is the absolute
    ``max(0, Y - O)``). Y is a top-1 softmax probability, hence > 0. Lower is better.
    """
    _check(base_prob, explanation_prob)
    return (base_prob - explanation_prob).clamp(min=0) / base_prob * 100


def average_increase(base_prob: Tensor, explanation_prob: Tensor) -> Tensor:
    """Per-image increase indicator in percent: ``[O > Y] * 100`` (strict: equal is 0).

    Higher is better.
    """
    _check(base_prob, explanation_prob)
    dtype = base_prob.dtype if base_prob.is_floating_point() else torch.float32
    return (explanation_prob > base_prob).to(dtype) * 100
