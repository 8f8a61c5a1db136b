"""Wall-clock timing with device synchronisation (CUDA work is asynchronous)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable

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


def shortest_in_turns(
    calls: dict[Hashable, Callable[[], object]], device: torch.device, repeats: int, warmup: int = 0
) -> dict[Hashable, float]:
    """ms of each call, the shortest of ``repeats``, the calls taking turns (a, b, a, b: a slow
    moment of a shared machine does not fall on one of them only), after ``warmup`` untimed
    calls of each."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    best = {key: float("inf") for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            synchronize(device)
            start = time.perf_counter()
            call()
            synchronize(device)
            best[key] = min(best[key], (time.perf_counter() - start) * 1000)
    return best
