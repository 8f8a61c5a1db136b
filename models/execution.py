"""How the classifier's passes execute: eager PyTorch in NCHW (``eager``, the benchmark's path
until 2026-12), or with its weights and activations in the ``channels_last`` memory format
(``channels_last``, the default on every device), which this project's CPU runs ~1.9x faster
(EfficientNet-Lite0 forward, batch 16: 21.1 -> 11.3 ms/image, logits within 1e-5;
``perf/README.md``). Hooks (CAM layers, pass counting) work in both. Both are float32 (or
float64) all the way; they differ only in rounding."""

from __future__ import annotations

import torch
from torch import nn

from metrics.errors import BenchmarkError

EXECUTIONS = ("eager", "channels_last")


def check_execution(execution: str) -> str:
    if execution not in EXECUTIONS:
        raise BenchmarkError(f"--execution {execution!r} is unknown; choose one of: {', '.join(EXECUTIONS)}")
    return execution


def apply_execution(net: nn.Module, execution: str) -> nn.Module:
    """``net`` set up for ``execution`` (in place; the input's layout follows its weights')."""
    if check_execution(execution) == "channels_last":
        net.to(memory_format=torch.channels_last)
    return net
