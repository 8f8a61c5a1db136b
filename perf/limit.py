"""The model's own limit: forward and forward+backward (to the input) time per image, over
batch sizes and over the executions the benchmark can use (``models.execution``: eager NCHW,
channels_last, and the compiled forward, which serves forward-only passes: it has no
forward+backward figure), and the best of each — the denominator of every ratio ``python -m
perf`` prints. The limit is the fastest execution's, so a case run the slow way shows it. The
executions are timed in turns (one call of each, repeated), so a slow moment of a shared
machine does not fall on one of them only."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from perf.timing import synchronize


@dataclass
class ModelLimit:
    """Per-image times of the model by batch size, and the best ones."""

    forward_ms: dict[int, float] = field(default_factory=dict)
    forward_backward_ms: dict[int, float] = field(default_factory=dict)

    @property
    def best_forward(self) -> tuple[int, float]:
        return min(self.forward_ms.items(), key=lambda item: item[1])

    @property
    def best_forward_backward(self) -> tuple[int, float]:
        return min(self.forward_backward_ms.items(), key=lambda item: item[1])

    @property
    def backward_ms(self) -> float:
        """Best backward time per image: best forward+backward minus best forward."""
        return max(self.best_forward_backward[1] - self.best_forward[1], 0.0)

    def ideal_ms(self, forward_images: float, backward_images: float) -> float:
        return forward_images * self.best_forward[1] + backward_images * self.backward_ms

    def per_image_at(self, kind: str, batch: int) -> float:
        """ms/image of ``kind`` (``forward`` or ``forward_backward``) at the measured batch size
        nearest to ``batch`` (by ratio; between two, the larger)."""
        table = self.forward_ms if kind == "forward" else self.forward_backward_ms
        size = min(table, key=lambda s: (abs(math.log2(s / batch)), -s))
        return table[size]

    def ideal_at_batches_ms(self, forward_batches: dict[int, int], backward_batches: dict[int, int]) -> float:
        """The passes' time had each run at the model's best for its own batch size
        (``{batch: images}``, :class:`models.counting.PassCount`): a backward image costs the
        forward+backward at its batch minus the forward at that batch."""
        total = sum(images * self.per_image_at("forward", batch) for batch, images in forward_batches.items())
        for batch, images in backward_batches.items():
            backward = self.per_image_at("forward_backward", batch) - self.per_image_at("forward", batch)
            total += images * max(backward, 0.0)
        return total


def _batch(images: Tensor, size: int) -> Tensor:
    repeats = -(-size // images.shape[0])
    return images.repeat(repeats, 1, 1, 1)[:size].contiguous()


def fastest(limits: dict[str, ModelLimit]) -> ModelLimit:
    """Per batch size the fastest of the executions' times (the honest limit)."""
    best = ModelLimit()
    for limit in limits.values():
        for size, ms in limit.forward_ms.items():
            best.forward_ms[size] = min(best.forward_ms.get(size, ms), ms)
        for size, ms in limit.forward_backward_ms.items():
            best.forward_backward_ms[size] = min(best.forward_backward_ms.get(size, ms), ms)
    return best


def _passes(execution: str, model, batch: Tensor) -> dict[str, Callable[[], object]]:
    """The timed calls of one execution at one batch: ``forward`` and ``forward_backward`` (the
    backward goes to the input, as LOTS and the grad-cam CAMs need)."""
    from models.execution import CompiledForward

    if execution == "compiled":
        compiled = CompiledForward(model, batch.shape[0], note=lambda message: None)
        return {"forward": lambda: compiled(batch)}

    def forward():
        with torch.no_grad():
            model(batch)

    def forward_backward():
        x = batch.detach().requires_grad_(True)
        torch.autograd.grad(model(x).pow(2).sum(), x)

    return {"forward": forward, "forward_backward": forward_backward}


def measure_limits(model_name: str, images: Tensor, batch_sizes: list[int], executions, repeats: int = 5):
    """``{execution: ModelLimit}`` of ``model_name`` built for each execution: per batch size the
    shortest of ``repeats`` timings (the limit is what the model can do, so noise must not raise
    the bar), the executions taking turns."""
    from models import build_classifier

    device = images.device
    models = {e: build_classifier(model_name, execution=e).to(device) for e in executions}
    limits = {e: ModelLimit() for e in executions}
    for size in batch_sizes:
        batch = _batch(images, size)
        calls = {e: _passes(e, models[e], batch) for e in executions}
        for e in executions:  # warm-up (and the compile, once per batch size)
            for call in calls[e].values():
                call()
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(repeats):
            for e in executions:
                for kind, call in calls[e].items():
                    synchronize(device)
                    start = time.perf_counter()
                    call()
                    synchronize(device)
                    samples.setdefault((e, kind), []).append((time.perf_counter() - start) * 1000 / size)
        for (e, kind), times in samples.items():
            getattr(limits[e], f"{kind}_ms")[size] = min(times)
    return limits
