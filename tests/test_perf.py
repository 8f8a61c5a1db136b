"""The pass counting behind ``python -m perf``'s ideals (no timing here)."""

from __future__ import annotations

import torch
from torch import nn

from methods.lots import lots_attack
from perf.counting import counting_passes
from perf.limit import ModelLimit


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(12, 3)

    def forward(self, x):
        return self.layer(x.flatten(1))


class _Wrapper(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def test_counts_images_through_forward_and_backward():
    net = _Net().requires_grad_(False)
    x = torch.rand(5, 3, 2, 2, requires_grad=True)
    with counting_passes(net) as count:
        with torch.no_grad():
            net(x[:2])
        torch.autograd.grad(net(x).sum(), x)
    assert (count.forward_images, count.backward_images) == (7, 5)


def test_lots_passes_are_iterations_plus_one_final_forward():
    model = _Wrapper(_Net().requires_grad_(False))
    images = torch.rand(4, 3, 2, 2)
    with counting_passes(model.net) as count:
        lots_attack(model, images, torch.zeros(4, 3), iterations=6, tau=0.0)
    assert count.forward_images == 4 * (6 + 1)
    assert count.backward_images == 4 * 6


def test_ideal_uses_the_best_batch_size():
    limit = ModelLimit(forward_ms={1: 10.0, 8: 8.0}, forward_backward_ms={1: 30.0, 8: 27.0})
    assert limit.best_forward == (8, 8.0)
    assert limit.backward_ms == 19.0
    assert limit.ideal_ms(forward_images=10, backward_images=4) == 10 * 8.0 + 4 * 19.0
