"""Pictures of single explanations, as 8-bit arrays written losslessly (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def to_uint8(image: Tensor) -> np.ndarray:
    """``[3, H, W]`` in [0, 1] -> ``H x W x 3`` uint8 (``round(255 x)``)."""
    return (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def map_to_uint8(saliency: Tensor) -> np.ndarray:
    """A map ``[H, W]`` in [0, 1] -> ``H x W`` uint8 grey levels (``round(255 M)``)."""
    return (saliency.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()


def magnified_perturbation(image: Tensor, adversarial: Tensor, factor: float = 10, shift: int = 128) -> np.ndarray:
    """The perturbation made visible, as in thesis Fig. 4.1: per pixel and channel
    ``clip(round(factor * 255 * (x_adv - x)) + shift, 0, 255)`` (no change = grey 128).
    ``[3, H, W]`` x2 in [0, 1] -> ``H x W x 3`` uint8."""
    difference = (adversarial.detach().double() - image.detach().double()) * 255 * factor
    return (difference.round() + shift).clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()


def overlay_uint8(image: Tensor, saliency: Tensor, alpha: float = 0.5) -> np.ndarray:
    """The jet-coloured map blended over the image -> ``H x W x 3`` uint8."""
    from benchmark.figures import overlay

    return (
        (np.clip(overlay(image.detach().float().cpu(), saliency.detach().float().cpu(), alpha), 0, 1) * 255)
        .round()
        .astype(np.uint8)
    )


def save_png(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path, format="PNG")
    return path


def kernel_strip(image: Tensor, maps: dict[int, Tensor], path: Path, title: str = "") -> Path:
    """The image, then the map for each blur kernel size from fine to coarse (thesis Fig. 5.6)."""
    from benchmark.figures import plt, save_figure

    sizes = sorted(maps)
    fig, axes = plt.subplots(1, 1 + len(sizes), figsize=(2.2 * (1 + len(sizes)), 2.6), squeeze=False)
    axes[0][0].imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    axes[0][0].set_title("image", fontsize=9)
    for ax, k in zip(axes[0][1:], sizes):
        ax.imshow(maps[k].cpu().numpy(), cmap="jet", vmin=0, vmax=1)
        ax.set_title(f"k = {k}", fontsize=9)
    for ax in axes[0]:
        ax.axis("off")
    return save_figure(fig, path, title, title_size=9)


def top_k(
    probabilities: Tensor, k: int = 5, names: Sequence[str] | None = None, wnids: Sequence[str] | None = None
) -> list[dict]:
    """The ``k`` most probable classes of one probability vector, with their names."""
    values, indices = torch.topk(probabilities.detach().float().cpu(), k)
    return [
        {
            "class": int(i),
            "wnid": wnids[int(i)] if wnids else None,
            "name": names[int(i)] if names else None,
            "probability": float(v),
        }
        for v, i in zip(values, indices)
    ]
