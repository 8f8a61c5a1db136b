"""The model's own limit: forward and forward+backward (to the input) time per image, over
batch sizes and over the executions the benchmark can use (``models.execution``: eager NCHW,
channels_last, and the compiled forward, which serves forward-only passes: it has no
forward+backward figure), and the best of each — the denominator of every ratio ``python -m
perf`` prints. The limit is the fastest execution's, so a case run the slow way shows it. The
executions are timed in turns (one call of each, repeated), so a slow moment of a shared
machine does not fall on one of them only."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from perf.timing import shortest_in_turns


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
        return table[nearest_size(table, batch)]

    def ideal_at_batches_ms(self, forward_batches: dict[int, int], backward_batches: dict[int, int]) -> float:
        """The passes' time had each run at the model's best for its own batch size
        (``{batch: images}``, :class:`models.counting.PassCount`): a backward image costs the
        forward+backward at its batch minus the forward at that batch."""
        total = sum(images * self.per_image_at("forward", batch) for batch, images in forward_batches.items())
        for batch, images in backward_batches.items():
            backward = self.per_image_at("forward_backward", batch) - self.per_image_at("forward", batch)
            total += images * max(backward, 0.0)
        return total


def nearest_size(sizes, batch: int) -> int:
    """The one of the measured batch ``sizes`` nearest to ``batch`` by ratio (between two, the larger)."""
    return min(sizes, key=lambda s: (abs(math.log2(s / batch)), -s))


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
    from benchmark.models.execution import CompiledForward

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


class LimitProbe:
    """The model's timed passes (:func:`_passes`) for each execution and batch size, built once
    (a compiled graph is compiled once per batch size) so that they can be timed again later:
    ``measure`` times them, the executions in turns, and keeps the first timing as ``start``.

    Timed again around a case (:meth:`drift`), they say how much slower the same passes ran at
    that moment than at the start: this shared machine's speed drifts by up to 1.7x over minutes
    (``perf/README.md``), and a case measured in a slow minute against a limit measured in a fast
    one reads that drift as its own."""

    def __init__(self, models: dict, images: Tensor, batch_sizes: list[int]):
        """``models``: ``{execution: classifier built for it}``."""
        self.device = images.device
        self.images = images
        self.batch_sizes = list(batch_sizes)
        self.executions = list(models)
        self.models = dict(models)
        self._calls: dict[int, dict[str, dict[str, Callable[[], object]]]] = {}
        self.start: dict[str, ModelLimit] | None = None

    def _calls_at(self, size: int) -> dict[str, dict[str, Callable[[], object]]]:
        if size not in self._calls:
            batch = _batch(self.images, size)
            calls = {e: _passes(e, self.models[e], batch) for e in self.executions}
            for e in self.executions:  # warm-up (and the compile, once per batch size)
                for call in calls[e].values():
                    call()
            self._calls[size] = calls
        return self._calls[size]

    def measure(self, sizes: list[int] | None = None, repeats: int = 5) -> dict[str, ModelLimit]:
        """``{execution: ModelLimit}`` at ``sizes`` (default: all), per batch size the shortest of
        ``repeats`` timings, the executions taking turns; the first call's is ``start``."""
        limits = {e: ModelLimit() for e in self.executions}
        for size in self.batch_sizes if sizes is None else sizes:
            calls = self._calls_at(size)
            turns = {(e, kind): call for e in self.executions for kind, call in calls[e].items()}
            for (e, kind), ms in shortest_in_turns(turns, self.device, repeats).items():
                getattr(limits[e], f"{kind}_ms")[size] = ms / size
        if self.start is None:
            self.start = limits
        return limits

    @classmethod
    def of(cls, model_name: str, images: Tensor, batch_sizes: list[int], executions) -> LimitProbe:
        """``model_name`` built for each of ``executions``."""
        from benchmark.models import build_classifier

        return cls(
            {e: build_classifier(model_name, execution=e).to(images.device) for e in executions}, images, batch_sizes
        )

    def sizes_for(self, forward_batches: dict[int, int], backward_batches: dict[int, int]) -> list[int]:
        """The measured batch sizes the passes of a case are charged at (the nearest ones,
        :meth:`ModelLimit.per_image_at`)."""
        return sorted({nearest_size(self.batch_sizes, batch) for batch in (*forward_batches, *backward_batches)})

    def drift(
        self, forward_batches: dict[int, int], backward_batches: dict[int, int], around: list[dict[str, ModelLimit]]
    ) -> float:
        """:func:`drift` of a case's passes against this probe's ``start``."""
        if self.start is None:
            raise RuntimeError("measure the start first")
        return drift(self.start, around, forward_batches, backward_batches)


def drift(
    start: dict[str, ModelLimit],
    around: list[dict[str, ModelLimit]],
    forward_batches: dict[int, int],
    backward_batches: dict[int, int],
) -> float:
    """How much slower the passes of a case (``{batch: images}``) ran in the timings ``around`` it
    (per batch size and execution the shortest of them) than in ``start``: the ratio of their
    ideals at the case's batches, each taking the fastest execution at each size."""
    then = fastest({f"{e} {i}": limit for i, timing in enumerate(around) for e, limit in timing.items()})
    before = fastest(start).ideal_at_batches_ms(forward_batches, backward_batches)
    return then.ideal_at_batches_ms(forward_batches, backward_batches) / before if before else float("nan")


def measure_limits(model_name: str, images: Tensor, batch_sizes: list[int], executions, repeats: int = 5):
    """``{execution: ModelLimit}`` of ``model_name`` built for each execution: per batch size the
    shortest of ``repeats`` timings (the limit is what the model can do, so noise must not raise
    the bar), the executions taking turns."""
    return LimitProbe.of(model_name, images, batch_sizes, executions).measure(repeats=repeats)
