"""A model from outside the benchmark: a small convolutional ImageNet classifier."""

import torch
from torch import nn


def build() -> nn.Module:
    """Tiny CNN: 3 convolutions and a linear layer to the 1000 ImageNet classes (fixed random weights)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 1000),
    )
