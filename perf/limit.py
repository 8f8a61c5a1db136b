"""The model's own limit: forward and forward+backward (to the input) time per image, over
batch sizes and over the executions the benchmark can use (``models.execution``: eager NCHW,
channels_last), and the best of each — the denominator of every ratio ``python -m perf``
prints. The limit is the fastest execution's, so a case run the slow way shows it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from perf.timing import time_ms


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

    def ideal_ms(self, forward_images: int, backward_images: int) -> float:
        return forward_images * self.best_forward[1] + backward_images * self.backward_ms


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


def measure_limits(model_name: str, images: Tensor, batch_sizes: list[int], executions, repeats: int = 5):
    """``{execution: ModelLimit}`` of ``model_name`` built for each execution."""
    from models import build_classifier

    return {
        execution: measure_limit(build_classifier(model_name, execution=execution).to(images.device), images,
                                 batch_sizes, repeats)
        for execution in executions
    }


def measure_limit(model: nn.Module, images: Tensor, batch_sizes: list[int], repeats: int = 5) -> ModelLimit:
    """Time ``model`` (frozen, eval) per image at each batch size, the shortest of ``repeats``
    runs (the limit is what the model can do, so noise must not lower the bar); the backward
    pass goes to the input, as LOTS and the grad-cam CAMs need."""
    limit = ModelLimit()
    device = images.device
    for size in batch_sizes:
        batch = _batch(images, size)

        def forward():
            with torch.no_grad():
                model(batch)

        def forward_backward():
            x = batch.detach().requires_grad_(True)
            torch.autograd.grad(model(x).pow(2).sum(), x)

        limit.forward_ms[size] = time_ms(forward, device, repeats, best=True) / size
        limit.forward_backward_ms[size] = time_ms(forward_backward, device, repeats, best=True) / size
    return limit
