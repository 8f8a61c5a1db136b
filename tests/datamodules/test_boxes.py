"""Bounding boxes follow the pixels through the resize and centre crop; files attach by stem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.core.errors import BenchmarkError
from benchmark.datamodules import ImageDataset, ImageNetDataModule, Sample, collate_samples
from benchmark.metrics.functional.localization import boxes_mask


def _picture_with_rectangle(path, size, box, fmt):
    """A black image with a white rectangle over the inclusive pixel box ``(x1, y1, x2, y2)``."""
    width, height = size
    array = np.zeros((height, width, 3), dtype=np.uint8)
    x1, y1, x2, y2 = box
    array[y1 : y2 + 1, x1 : x2 + 1] = 255
    Image.fromarray(array).save(path, fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    return str(path)


@pytest.mark.parametrize(
    "size,box,fmt",
    [
        ((300, 200), (40, 30, 149, 119), "PNG"),  # landscape, cut by the crop on the left
        ((260, 420), (60, 150, 219, 299), "PNG"),  # portrait
        ((1200, 900), (500, 300, 899, 799), "JPEG"),  # decoded as a reduced JPEG draft
    ],
)
def test_boxes_land_where_the_object_lands(tmp_path, size, box, fmt):
    file = _picture_with_rectangle(tmp_path / f"n01440764_x.{fmt.lower()}", size, box, fmt)
    item = ImageDataset([Sample(0, file, 0, (box,))])[0]
    assert item["error"] is None and item["boxes"].shape == (1, 4)
    mask, has_box = boxes_mask([item["boxes"]], 224, 224)
    white = item["image"].mean(dim=0) > 0.5  # the rectangle as the transform moved it
    iou = (mask[0] & white).sum() / (mask[0] | white).sum()
    assert bool(has_box[0]) and float(iou) > 0.95


def test_box_outside_the_crop_is_dropped_and_none_means_no_box(tmp_path):
    file = _picture_with_rectangle(tmp_path / "a.png", (400, 200), (0, 0, 20, 199), "PNG")  # left strip, cropped away
    items = [ImageDataset([Sample(0, file, -1, ((0, 0, 20, 199),))])[0], ImageDataset([Sample(1, file, -1)])[0]]
    assert items[0]["boxes"].shape == (0, 4)
    assert items[1]["boxes"] is None
    batch = collate_samples(items)
    assert len(batch["boxes"]) == 2
    _, has_box = boxes_mask(batch["boxes"], 224, 224)
    assert has_box.tolist() == [False, False]


def test_boxes_file_attaches_by_file_stem(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("n01440764_a.png", "n01443537_b.png"):
        _picture_with_rectangle(data / name, (300, 300), (10, 10, 100, 100), "PNG")
    csv = tmp_path / "boxes.csv"
    csv.write_text("ImageId,PredictionString\nn01440764_a,n01440764 10 10 100 100 n01440764 150 150 200 200\n")
    module = ImageNetDataModule(str(data), boxes=str(csv))
    assert [s.boxes for s in module.samples] == [((10, 10, 100, 100), (150, 150, 200, 200)), None]
    assert "1 with bounding boxes" in module.describe()
    with pytest.raises(BenchmarkError, match="--boxes"):
        ImageNetDataModule(str(data), boxes=str(tmp_path / "missing.csv"))


def test_ilsvrc_layout_reads_boxes_from_its_ground_truth(tmp_path):
    _picture_with_rectangle(tmp_path / "ILSVRC2012_val_00000001.JPEG", (300, 300), (1, 2, 3, 4), "JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 3 4 n01751748 5 6 70 80\n"
    )
    module = ImageNetDataModule(str(tmp_path))
    assert module.samples[0].boxes == ((1, 2, 3, 4), (5, 6, 70, 80))
    assert torch.is_tensor(module.dataset[0]["boxes"])
