"""Count the images that go through a model's forward and backward passes.

The ideal time of any case is ``forward images x (best forward ms per image) + backward
images x (best backward ms per image)``; counting the passes where they happen (hooks on the
backbone) rather than from a formula keeps the ideal honest for every method, early stops
and chunked perturbation methods included. A compiled forward (:mod:`benchmark.models.execution`) runs
the backbone without its hooks and reports its images through :func:`count_forward`.
A pass that enters a stand-in for the images (:func:`stand_in_passes`: Ablation-CAM's small
input whose layer output its copies replace) is no pass of the images through the model: it is
counted apart, as the method's own work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import nn


@dataclass
class PassCount:
    forward_images: int = 0
    backward_images: int = 0
    #: ``{batch size: images run at it}``: the model's work by the batch it ran at (a compiled
    #: forward's padded last piece counts at its full batch, as it costs one)
    forward_batches: dict[int, int] = field(default_factory=dict)
    backward_batches: dict[int, int] = field(default_factory=dict)
    #: images of the forwards that entered a stand-in input (:func:`stand_in_passes`), not counted above
    stand_in_forward_images: int = 0

    def add(self, forward: bool, images: int, batch: int | None = None, pieces: int = 1) -> None:
        """``images`` through the model in ``pieces`` passes of ``batch`` (default: one of ``images``)."""
        batch = int(batch if batch is not None else images)
        batches = self.forward_batches if forward else self.backward_batches
        batches[batch] = batches.get(batch, 0) + batch * int(pieces)
        if forward:
            self.forward_images += int(images)
        else:
            self.backward_images += int(images)


#: ``id(net) -> the counts open on it`` (for passes that bypass the hooks).
_OPEN: dict[int, list[PassCount]] = {}
#: ``id(net)`` of the backbones whose forwards enter a stand-in input now
_STAND_IN: set[int] = set()


@contextmanager
def stand_in_passes(net: nn.Module) -> Iterator[None]:
    """The forwards of ``net`` inside are counted as ``stand_in_forward_images``, not as passes:
    their input stands in for the images (a method that replaces a layer's output runs the
    layers before it on a small input, whose cost is the method's, not the model's)."""
    nested = id(net) in _STAND_IN
    _STAND_IN.add(id(net))
    try:
        yield
    finally:
        if not nested:
            _STAND_IN.discard(id(net))


def is_counting_hook(hook: object) -> bool:
    """Whether ``hook`` is one of :func:`counting_passes`' (it observes, it changes nothing)."""
    return bool(getattr(hook, "counts_passes", False))


def count_forward(net: nn.Module, images: int, batch: int | None = None, pieces: int = 1) -> None:
    """Add ``images`` forward images, run in ``pieces`` passes of ``batch``, to every count open on ``net``."""
    for count in _OPEN.get(id(net), ()):
        count.add(True, images, batch, pieces)


@contextmanager
def counting_passes(net: nn.Module) -> Iterator[PassCount]:
    """Count images through ``net``'s forward, and backward passes that reach its output."""
    count = PassCount()

    def on_forward(module, args):
        if id(net) in _STAND_IN:
            count.stand_in_forward_images += int(args[0].shape[0])
        else:
            count.add(True, int(args[0].shape[0]))

    def on_backward(module, grad_output):
        if grad_output and grad_output[0] is not None:
            count.add(False, int(grad_output[0].shape[0]))

    on_forward.counts_passes = on_backward.counts_passes = True
    handles = [net.register_forward_pre_hook(on_forward), net.register_full_backward_pre_hook(on_backward)]
    _OPEN.setdefault(id(net), []).append(count)
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()
        _OPEN[id(net)].remove(count)
        if not _OPEN[id(net)]:
            del _OPEN[id(net)]
