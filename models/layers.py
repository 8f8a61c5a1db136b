"""Layers found automatically in models the registry describes no further (``timm:``,
``torchvision:``, plugins): the CAM target layer, the classifier layer, and for vision
transformers the reshape of their tokens into a grid.

A vision transformer's CAM layer is grad-cam's documented choice: the ``norm1`` (LayerNorm)
of the last block (timm ``VisionTransformer`` and relatives: DeiT, EVA, BEiT, ...) or its
``ln_1`` (torchvision ``VisionTransformer``). Its output is tokens ``[B, prefix + h*w, C]``;
:class:`TokensToGrid` drops the class (and distillation / register) tokens and gives the
activations ``[B, C, h, w]`` the CAM formulas need (grad-cam's ``reshape_transform``,
applied to the activations and to their gradients). Other models get their last ``Conv2d``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class TokensToGrid:
    """``[B, prefix + h*w, C] -> [B, C, h, w]``; a tensor that is not 3-D passes unchanged
    (a convolutional layer chosen with ``--method.target_layer``)."""

    prefix_tokens: int
    grid: tuple[int, int] | None = None

    def __call__(self, tensor: Tensor) -> Tensor:
        if tensor.ndim != 3:
            return tensor
        tokens = tensor[:, self.prefix_tokens :, :]
        count = tokens.shape[1]
        if self.grid is not None and self.grid[0] * self.grid[1] == count:
            height, width = self.grid
        else:  # another input size than the model's default: a square grid
            height = width = math.isqrt(count)
            if height * width != count:
                raise ValueError(
                    f"{count} patch tokens (after {self.prefix_tokens} prefix tokens) do not form a square grid"
                )
        return tokens.reshape(tokens.shape[0], height, width, tokens.shape[2]).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class TokenLayout:
    """A vision transformer's CAM layer (path inside the backbone) and its reshape."""

    cam_layer: str
    reshape: TokensToGrid


def token_layout(net: nn.Module) -> TokenLayout | None:
    """The layout of a vision transformer, or ``None`` for other models."""
    blocks = getattr(net, "blocks", None)
    prefix = getattr(net, "num_prefix_tokens", None)
    if (
        isinstance(blocks, (nn.Sequential, nn.ModuleList))
        and len(blocks)
        and isinstance(prefix, int)
        and isinstance(getattr(blocks[-1], "norm1", None), nn.Module)
    ):  # timm: VisionTransformer, DeiT (2 prefix tokens when distilled), EVA, BEiT, ...
        grid = getattr(getattr(net, "patch_embed", None), "grid_size", None)
        grid = tuple(int(g) for g in grid) if grid is not None else None
        return TokenLayout(f"blocks.{len(blocks) - 1}.norm1", TokensToGrid(prefix, grid))
    from torchvision.models import VisionTransformer

    if isinstance(net, VisionTransformer):
        last = list(net.encoder.layers.named_children())[-1][0]
        side = net.image_size // net.patch_size
        return TokenLayout(f"encoder.layers.{last}.ln_1", TokensToGrid(1, (side, side)))
    return None


def last_module_of(net: nn.Module, kind: type[nn.Module]) -> str | None:
    """Path of the last module of ``kind`` in module order, or ``None``."""
    paths = [name for name, module in net.named_modules() if name and isinstance(module, kind)]
    return paths[-1] if paths else None
