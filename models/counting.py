"""Count the images that go through a model's forward and backward passes.

The ideal time of any case is ``forward images x (best forward ms per image) + backward
images x (best backward ms per image)``; counting the passes where they happen (hooks on the
backbone) rather than from a formula keeps the ideal honest for every method, early stops
and chunked perturbation methods included.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from torch import nn


@dataclass
class PassCount:
    forward_images: int = 0
    backward_images: int = 0


@contextmanager
def counting_passes(net: nn.Module) -> Iterator[PassCount]:
    """Count images through ``net``'s forward, and backward passes that reach its output."""
    count = PassCount()

    def on_forward(module, args):
        count.forward_images += int(args[0].shape[0])

    def on_backward(module, grad_output):
        if grad_output and grad_output[0] is not None:
            count.backward_images += int(grad_output[0].shape[0])

    handles = [net.register_forward_pre_hook(on_forward), net.register_full_backward_pre_hook(on_backward)]
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()
