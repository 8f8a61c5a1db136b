"""Localization metrics of saliency maps against bounding boxes.

* Pointing Game (Zhang et al. 2018, "Top-down Neural Attention by Excitation Backprop",
  IJCV; TorchRay's ``PointingGame``): the map's maximum (first one in row-major order, as
  ``torch.argmax``) is a hit when some box pixel lies closer than ``tolerance`` pixels
  (``(i - y)^2 + (j - x)^2 < tolerance^2``, 15 px by default, as TorchRay). 100 = hit, 0 = miss.
* Energy-based pointing game (Wang et al. 2020, "Score-CAM", CVPR Workshops): the share of the
  map's mass inside the boxes, ``sum(M * B) / sum(M) * 100``.

Boxes are ``[K, 4]`` tensors ``(x1, y1, x2, y2)`` in continuous pixel coordinates of the map
(pixel ``j`` spans ``[j, j + 1)``); a pixel belongs to a box when its centre lies inside it.
Several boxes count as their union. An image without a box (``None`` or no rows) gets NaN:
the metric classes leave it out of the mean and count it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Boxes = Sequence[Tensor | None]


def boxes_mask(boxes: Boxes, height: int, width: int, device=None) -> tuple[Tensor, Tensor]:
    """``(mask[B, H, W] bool, has_box[B] bool)``: the union of each image's boxes."""
    rows = [
        torch.zeros(0, 4, dtype=torch.float64)
        if b is None
        else torch.as_tensor(b).reshape(-1, 4).to("cpu", torch.float64)
        for b in boxes
    ]
    if not rows:
        empty = torch.zeros(0, height, width, dtype=torch.bool, device=device)
        return empty, torch.zeros(0, dtype=torch.bool, device=device)
    rows.append(torch.zeros(1, 4, dtype=torch.float64))  # at least one (padding) box column
    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=float("nan"))[:-1]
    padded = padded.to(device)  # [B, K, 4]; missing boxes are NaN rows, which contain no pixel
    ys = torch.arange(height, dtype=torch.float64, device=padded.device) + 0.5
    xs = torch.arange(width, dtype=torch.float64, device=padded.device) + 0.5
    x1, y1, x2, y2 = (padded[..., k, None] for k in range(4))  # [B, K, 1]
    inside_y = (ys >= y1) & (ys < y2)  # [B, K, H]; NaN rows compare False
    inside_x = (xs >= x1) & (xs < x2)  # [B, K, W]
    mask = (inside_y[..., :, None] & inside_x[..., None, :]).any(dim=1)
    return mask, mask.flatten(1).any(dim=1)


def max_point(maps: Tensor) -> tuple[Tensor, Tensor]:
    """``(row, col)`` of each map's maximum, the first in row-major order (``[B]`` each)."""
    width = maps.shape[-1]
    flat = maps.detach().flatten(1).argmax(dim=1)
    return flat // width, flat % width


def pointing_game(maps: Tensor, boxes: Boxes, tolerance: float = 15) -> Tensor:
    """Per-image hit (100) or miss (0) of ``maps[B, H, W]``; NaN for an image without a box
    inside the map."""
    batch, height, width = maps.shape
    if len(boxes) != batch:
        raise ValueError(f"{len(boxes)} box lists for {batch} maps")
    mask, has_box = boxes_mask(boxes, height, width, maps.device)
    row, col = max_point(maps)
    rows = torch.arange(height, device=maps.device, dtype=torch.float64)
    cols = torch.arange(width, device=maps.device, dtype=torch.float64)
    distance2 = (rows[None, :, None] - row[:, None, None]) ** 2 + (cols[None, None, :] - col[:, None, None]) ** 2
    hit = (mask & (distance2 < tolerance**2)).flatten(1).any(dim=1)
    return torch.where(has_box, hit.double() * 100, torch.full_like(hit, float("nan"), dtype=torch.float64))


def energy_pointing_game(maps: Tensor, boxes: Boxes) -> Tensor:
    """Per-image share of the map's mass inside the boxes, in percent; NaN for an image
    without a box or an all-zero map."""
    batch, height, width = maps.shape
    if len(boxes) != batch:
        raise ValueError(f"{len(boxes)} box lists for {batch} maps")
    mask, has_box = boxes_mask(boxes, height, width, maps.device)
    values = maps.detach().to(torch.float64).clamp(min=0)
    total = values.flatten(1).sum(dim=1)
    inside = (values * mask).flatten(1).sum(dim=1)
    share = torch.where(total > 0, inside / torch.where(total > 0, total, 1), float("nan")) * 100
    return torch.where(has_box, share, torch.full_like(share, float("nan")))
