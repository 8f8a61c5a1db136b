"""A map-style dataset of :class:`Sample` that never raises for a bad image, and its collate."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from benchmark.datamodules.loading import ImageLoadError, load_rgb, make_transform
from benchmark.datamodules.samples import Sample


class ImageDataset(Dataset):
    """Items are ``{"image": FloatTensor[3, crop, crop], "sample_id", "label", "boxes", "error"}``
    (``boxes``: ``[K, 4]`` XYXY boxes on the crop for a sample with boxes, else ``None``).

    A file that cannot be read gives a zero image and ``error`` set to the reason, so a bad file
    is reported by :func:`collate_samples` instead of crashing a worker.
    """

    def __init__(self, samples: list[Sample], resize: int = 256, crop: int = 224) -> None:
        self.samples = list(samples)
        self.resize = resize
        self.crop = crop
        self.transform = make_transform(resize, crop)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        error, boxes = None, None
        try:
            picture = load_rgb(sample.file, min_size=self.resize)
            if sample.boxes:
                from benchmark.datamodules.boxes import boxes_on_canvas, original_size, visible_boxes

                canvas = boxes_on_canvas(sample.boxes, original_size(sample.file), picture.size)
                image, moved = self.transform(picture, canvas)
                boxes = visible_boxes(moved)
            else:
                image = self.transform(picture)
        except ImageLoadError as exc:
            error = str(exc)
        except Exception as exc:  # a transform failure on an odd image is still a bad image
            error = f"cannot transform image ({type(exc).__name__})"
        if error is not None:
            image = torch.zeros(3, self.crop, self.crop, dtype=torch.float32)
        return {"image": image, "sample_id": sample.sample_id, "label": sample.label, "boxes": boxes, "error": error}


def collate_samples(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good items; failed ones go to ``failures`` as ``(sample_id, reason)``.

    The batch may hold 0 images (``image`` then has shape ``[0, 3, H, W]``). ``boxes`` is a list
    with each good item's boxes (``[K, 4]`` or ``None``).
    """
    good = [item for item in items if item["error"] is None]
    failures = [(int(item["sample_id"]), str(item["error"])) for item in items if item["error"] is not None]
    if good:
        image = torch.stack([item["image"] for item in good])
    else:
        height, width = items[0]["image"].shape[-2:] if items else (0, 0)
        image = torch.zeros(0, 3, height, width, dtype=torch.float32)
    return {
        "image": image,
        "sample_id": torch.tensor([int(item["sample_id"]) for item in good], dtype=torch.long),
        "label": torch.tensor([int(item["label"]) for item in good], dtype=torch.long),
        "boxes": [item.get("boxes") for item in good],
        "failures": failures,
    }
