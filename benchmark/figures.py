"""Pictures of a run: map overlays of the first images, the mean Insertion/Deletion curves, the
mean ROAD curves, one image's maps across the model randomization stages."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from torch import Tensor

from benchmark.files import atomic_path


def save_figure(fig, path: Path, title: str = "", title_size: int = 10, dpi: int = 100) -> Path:
    """Give ``fig`` its title, lay it out, write it to ``path`` and free it."""
    if title:
        fig.suptitle(title, fontsize=title_size)
    fig.tight_layout()
    with atomic_path(path) as partial:
        fig.savefig(partial, dpi=dpi)
    plt.close(fig)
    return path


def overlay(image: Tensor, saliency: Tensor, alpha: float = 0.5) -> np.ndarray:
    """Blend the jet-coloured map over the image (both in [0, 1]) -> HxWx3 floats."""
    rgb = image.permute(1, 2, 0).clamp(0, 1).numpy()
    heat = plt.get_cmap("jet")(saliency.clamp(0, 1).numpy())[..., :3]
    return (1 - alpha) * rgb + alpha * heat


def overlay_grid(
    images: Sequence[Tensor],
    maps: Sequence[Tensor],
    titles: Sequence[str],
    path: Path,
    suptitle: str = "",
) -> Path:
    """Rows of (image, map, overlay) per sample, written to ``path`` (PNG)."""
    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.6 * rows), squeeze=False)
    for row, (image, saliency, title) in enumerate(zip(images, maps, titles)):
        panels = [
            (image.permute(1, 2, 0).clamp(0, 1).numpy(), None, title),
            (saliency.numpy(), "jet", "map"),
            (overlay(image, saliency), None, "overlay"),
        ]
        for ax, (picture, cmap, text) in zip(axes[row], panels):
            ax.imshow(picture, cmap=cmap, vmin=0, vmax=1)
            ax.set_title(text, fontsize=8)
            ax.axis("off")
    return save_figure(fig, path, suptitle)


def _save_probability_plot(fig, ax, xlabel: str, x_end: float, title: str, path: Path) -> Path:
    """Label a plot of the mean class probability against ``xlabel`` (0 to ``x_end``) and save it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean class probability")
    ax.set_xlim(0, x_end)
    ax.set_ylim(0, 1)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def curves_plot(curves: dict[str, Sequence[float]], aucs: dict[str, float], path: Path, title: str = "") -> Path:
    """Mean Insertion and Deletion curves (probability vs fraction of pixels) with AUCs."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for key, colour in (("insertion", "tab:green"), ("deletion", "tab:red")):
        values = np.asarray(curves[key], dtype=float)
        if values.size == 0:
            continue
        x = np.linspace(0, 1, len(values))
        ax.plot(x, values, color=colour, label=f"{key} (AUC {aucs[key]:.2f})")
        ax.fill_between(x, values, alpha=0.15, color=colour)
    return _save_probability_plot(fig, ax, "fraction of pixels inserted / deleted", 1, title, path)


def road_plot(
    curves: dict[str, Sequence[float]],
    percentages: Sequence[float],
    values: dict[str, float],
    path: Path,
    title: str = "",
) -> Path:
    """Mean ROAD curves: the class probability after imputing the most (MoRF) or least (LeRF)
    relevant p% of the pixels, against p, with each metric's value."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for key, colour, label in (("road_morf", "tab:red", "MoRF"), ("road_lerf", "tab:green", "LeRF")):
        points = np.asarray(curves.get(key, []), dtype=float)
        if points.size == 0:
            continue
        ax.plot(list(percentages), points, marker="o", color=colour, label=f"{label} ({values[key]:.2f})")
    return _save_probability_plot(fig, ax, "pixels removed and imputed (%)", 100, title, path)


def randomization_plot(
    image: Tensor,
    maps: Tensor,
    stages: Sequence[dict],
    spearman: Sequence[float],
    ssim: Sequence[float],
    path: Path,
    title: str = "",
) -> Path:
    """Adebayo et al.'s Figure 2: one image's map on the trained model and at each cascading
    randomization stage (top), and the mean similarities per stage (bottom)."""
    count = maps.shape[0]
    fig = plt.figure(figsize=(max(6.0, 1.7 * (count + 1)), 4.6))
    grid = fig.add_gridspec(2, count + 1, height_ratios=[1, 1.1])
    labels = ["trained"] + [f"stage {i}\n..{s['to']}" for i, s in enumerate(stages, start=1)]
    panels = [(image.permute(1, 2, 0).clamp(0, 1).numpy(), "image")] + [
        (overlay(image, maps[i]), labels[i]) for i in range(count)
    ]
    for col, (picture, text) in enumerate(panels):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(picture)
        ax.set_title(text, fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    x = np.arange(1, len(spearman) + 1)
    ax.plot(x, [np.nan if v is None else v for v in spearman], marker="o", label="Spearman x 100")
    ax.plot(x, [np.nan if v is None else v for v in ssim], marker="s", label="SSIM x 100")
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xticks(x)
    ax.set_xlabel("randomization stage (layers re-initialized from the output)")
    ax.set_ylabel("similarity to the trained map")
    ax.set_ylim(-100, 100)
    ax.legend(fontsize=8)
    return save_figure(fig, path, title, title_size=9)


def comparison_grid(
    images: Sequence[Tensor],
    maps_by_method: dict[str, Sequence[Tensor]],
    row_titles: Sequence[str],
    path: Path,
    suptitle: str = "",
) -> Path:
    """A row per image: the image, then one overlay per method (thesis Fig. 5.2)."""
    methods = list(maps_by_method)
    rows, cols = len(images), 1 + len(methods)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    for row, image in enumerate(images):
        axes[row][0].imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
        axes[row][0].set_title(row_titles[row], fontsize=8)
        for col, method in enumerate(methods, start=1):
            axes[row][col].imshow(overlay(image, maps_by_method[method][row]))
            if row == 0:
                axes[row][col].set_title(method, fontsize=9)
        for ax in axes[row]:
            ax.axis("off")
    return save_figure(fig, path, suptitle, dpi=90)
