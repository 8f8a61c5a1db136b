"""Tensor dtype, autocast and memory-layout helpers shared by the methods and the metrics."""

from __future__ import annotations

import torch
from torch import Tensor


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 when it is a half type (bfloat16, float16), else unchanged."""
    return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor


def full_precision(tensor: Tensor):
    """A context without autocast on ``tensor``'s device (for map post-processing)."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def memory_format_of(tensor: Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a 4-d tensor laid out NHWC (and not also NCHW-contiguous, as
    one with a single channel or pixel is), else ``torch.contiguous_format``."""
    if tensor.ndim == 4 and tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
