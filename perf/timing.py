"""Wall-clock timing with device synchronisation (CUDA work is asynchronous)."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(
    fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1, best: bool = False
) -> float:
    """Median (or with ``best`` the shortest) wall time of ``fn()`` in milliseconds, after
    ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append((time.perf_counter() - start) * 1000)
    return min(samples) if best else statistics.median(samples)
