"""Tests of the datamodules package: layouts, selection, loading, dataset, collate, DDP sampler."""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

from benchmark.core.errors import BenchmarkError
from benchmark.datamodules import (
    ImageDataset,
    ImageLoadError,
    ImageNetDataModule,
    Sample,
    collate_samples,
    discover_samples,
    imagenet_classes,
    layouts,
    load_rgb,
    make_sampler,
    make_transform,
    read_loc_solution,
)
from tests.support.helpers import shared_sample_dir

TENCH, GOLDFISH, WHITE_SHARK = "n01440764", "n01443537", "n01484850"  # class indices 0, 1, 2


def save_image(path: Path, size=(40, 30), mode="RGB", color=(200, 100, 50)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def relative(samples: list[Sample], root: Path) -> list[tuple[int, str, int]]:
    return [(s.sample_id, os.path.relpath(s.file, root), s.label) for s in samples]


def assert_one_line_error(excinfo, *fragments: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message and ";" in message, message
    for fragment in fragments:
        assert fragment in message, message


# ---------------------------------------------------------------- classes


def test_imagenet_classes_table():
    classes = imagenet_classes()
    assert classes is imagenet_classes()
    assert len(classes.wnids) == 1000 and classes.wnids == sorted(classes.wnids)
    assert classes.index_of(TENCH) == 0 and classes.index_of(WHITE_SHARK) == 2
    assert classes.name(0) == "tench" and classes.index_of(classes.wnids[999]) == 999
    with pytest.raises(KeyError):
        classes.index_of("n99999999")
    with pytest.raises(IndexError):
        classes.name(1000)


# ---------------------------------------------------------------- layouts


def test_imagefolder_layout(tmp_path):
    for wnid in (GOLDFISH, TENCH):
        for name in ("b.JPEG", "a.jpg"):
            save_image(tmp_path / wnid / name)
    save_image(tmp_path / "n99999999" / "x.png")  # a wnid outside ImageNet-1k: unknown label
    (tmp_path / TENCH / "notes.txt").write_text("not an image")
    (tmp_path / "README").write_text("ignored")
    dm = ImageNetDataModule(str(tmp_path), per_class=None)
    assert dm.layout == "imagefolder"
    assert relative(dm.samples, tmp_path) == [
        (0, f"{TENCH}/a.jpg", 0),
        (1, f"{TENCH}/b.JPEG", 0),
        (2, f"{GOLDFISH}/a.jpg", 1),
        (3, f"{GOLDFISH}/b.JPEG", 1),
        (4, "n99999999/x.png", -1),
    ]
    assert all(os.path.isabs(s.file) for s in dm.samples)
    assert dm.describe() == f"{tmp_path.name}: 5 images, ImageFolder <wnid>/* layout, 4 labelled, 1 unlabelled"


def write_solution(path: Path, rows: dict[str, str]) -> Path:
    lines = ["ImageId,PredictionString"] + [f"{k},{v}" for k, v in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_flat_val_layout_with_ground_truth_in_kaggle_root(tmp_path):
    val = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    for i in (1, 2, 3, 4):
        save_image(val / f"ILSVRC2012_val_{i:08d}.JPEG")
    write_solution(
        tmp_path / "LOC_val_solution.csv",
        {
            "ILSVRC2012_val_00000001": f"{GOLDFISH} 1 2 30 40 {GOLDFISH} 5 6 7 8 ",
            "ILSVRC2012_val_00000002": f"{TENCH} 0 0 10 10",
            "ILSVRC2012_val_00000003": f"{WHITE_SHARK} 3 3 9 9 {TENCH} 1 1 2 2",
        },  # image 4 is not in the file: unknown label
    )
    samples = discover_samples(str(val), per_class=None)
    assert relative(samples, val) == [
        (0, "ILSVRC2012_val_00000002.JPEG", 0),
        (1, "ILSVRC2012_val_00000001.JPEG", 1),
        (2, "ILSVRC2012_val_00000003.JPEG", 2),
        (3, "ILSVRC2012_val_00000004.JPEG", -1),
    ]
    dm = ImageNetDataModule(str(val), per_class=1)
    assert dm.layout == "ilsvrc-val"
    assert "flat ILSVRC2012_val_*.JPEG layout with LOC_val_solution.csv" in dm.describe()


def test_flat_val_layout_with_explicit_ground_truth(tmp_path):
    save_image(tmp_path / "imgs" / "ILSVRC2012_val_00000007.JPEG")
    gt = write_solution(tmp_path / "elsewhere.csv", {"ILSVRC2012_val_00000007": f"{WHITE_SHARK} 1 2 3 4"})
    samples = discover_samples(str(tmp_path / "imgs"), ground_truth=str(gt))
    assert [s.label for s in samples] == [2]


def test_read_loc_solution_boxes(tmp_path):
    gt = write_solution(
        tmp_path / "LOC_val_solution.csv", {"ILSVRC2012_val_00000001": f"{TENCH} 1 2 30 40 {GOLDFISH} 5 6 7 8"}
    )
    assert read_loc_solution(gt) == {"ILSVRC2012_val_00000001": (TENCH, [(1, 2, 30, 40), (5, 6, 7, 8)])}
    bad = tmp_path / "bad.csv"
    bad.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 1 2\n")
    with pytest.raises(BenchmarkError) as excinfo:
        read_loc_solution(bad)
    assert_one_line_error(excinfo, "line 2")


def test_flat_wnid_prefix_layout(tmp_path):
    save_image(tmp_path / f"{GOLDFISH}_goldfish.JPEG")
    save_image(tmp_path / f"{TENCH}_tench_2.png")
    save_image(tmp_path / f"{TENCH}_tench.JPEG")
    save_image(tmp_path / "holiday.jpg")  # no wnid: unknown label, last
    (tmp_path / "labels.txt").write_text("ignored")
    samples = discover_samples(str(tmp_path), per_class=None)
    assert relative(samples, tmp_path) == [
        (0, f"{TENCH}_tench.JPEG", 0),
        (1, f"{TENCH}_tench_2.png", 0),
        (2, f"{GOLDFISH}_goldfish.JPEG", 1),
        (3, "holiday.jpg", -1),
    ]
    assert [s.file for s in discover_samples(str(tmp_path))][:2] == [samples[0].file, samples[2].file]


def test_unlabelled_folder(tmp_path):
    names = ["c.PNG", "a.jpeg", "B.bmp", "d.gif", "e.webp", "f.tif", "g.TIFF", "h.JPG"]
    for name in names:
        save_image(tmp_path / name)
    (tmp_path / ".hidden.jpg").write_bytes(b"")  # hidden files are skipped
    dm = ImageNetDataModule(str(tmp_path), per_class=1)  # per_class does not apply to unlabelled images
    assert dm.layout == "unlabelled"
    assert [os.path.basename(s.file) for s in dm.samples] == sorted(names)
    assert {s.label for s in dm.samples} == {-1}
    assert dm.describe() == f"{tmp_path.name}: 8 images, folder of images, unlabelled"


def test_result_does_not_depend_on_listing_order(tmp_path, monkeypatch):
    for wnid in (TENCH, GOLDFISH, WHITE_SHARK):
        for i in range(3):
            save_image(tmp_path / f"{wnid}_{i}.JPEG")
    first = discover_samples(str(tmp_path), per_class=2)
    real_scandir, real_listdir = os.scandir, os.listdir
    monkeypatch.setattr(layouts.os, "scandir", lambda p: list(real_scandir(p))[::-1])
    monkeypatch.setattr(layouts.os, "listdir", lambda p: real_listdir(p)[::-1])
    assert discover_samples(str(tmp_path), per_class=2) == first
    assert [s.sample_id for s in first] == list(range(6))


# ---------------------------------------------------------------- selection


@pytest.fixture
def three_classes(tmp_path):
    for wnid in (WHITE_SHARK, TENCH, GOLDFISH):
        for i in range(3):
            save_image(tmp_path / f"{wnid}_{i}.JPEG")
    save_image(tmp_path / "zz_unknown.jpg")
    return tmp_path


def test_per_class_and_limit(three_classes):
    def names(**kw):
        return [os.path.basename(s.file) for s in discover_samples(str(three_classes), **kw)]

    assert names() == [f"{TENCH}_0.JPEG", f"{GOLDFISH}_0.JPEG", f"{WHITE_SHARK}_0.JPEG", "zz_unknown.jpg"]
    assert names(per_class=2, limit=3) == [f"{TENCH}_0.JPEG", f"{TENCH}_1.JPEG", f"{GOLDFISH}_0.JPEG"]
    assert len(names(per_class=None)) == 10
    assert len(names(per_class=5)) == 10
    samples = discover_samples(str(three_classes), per_class=None, limit=4)
    assert [s.sample_id for s in samples] == [0, 1, 2, 3]


def test_classes_selection(three_classes):
    samples = discover_samples(str(three_classes), per_class=2, classes=[WHITE_SHARK, "1"])
    assert [(s.sample_id, s.label) for s in samples] == [(0, 1), (1, 1), (2, 2), (3, 2)]
    with pytest.raises(BenchmarkError) as excinfo:
        discover_samples(str(three_classes), classes=[TENCH, "n99999999", "tench", "1000"])
    assert_one_line_error(excinfo, "n99999999, tench, 1000")
    assert TENCH + "," not in str(excinfo.value)
    with pytest.raises(BenchmarkError) as excinfo:
        discover_samples(str(three_classes), classes=["999"])
    assert_one_line_error(excinfo, "--classes 999", "none of the 10 images")


def test_sample_ids_stable(three_classes):
    a = ImageNetDataModule(str(three_classes), per_class=None).samples
    b = ImageNetDataModule(str(three_classes), per_class=None).samples
    assert a == b and [s.sample_id for s in a] == list(range(len(a)))
    dataset = ImageDataset(a)
    assert [dataset[i]["sample_id"] for i in (0, 5, 9)] == [0, 5, 9]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("missing", ["does not exist"]),
        ("file", ["is a file, not a folder"]),
        ("empty", ["folder is empty"]),
        ("no_images", ["no image files", ".jpeg", ".tiff"]),
        ("gt_missing", ["--ground-truth", "does not exist"]),
        ("val_without_gt", ["LOC_val_solution.csv", "--ground-truth"]),
        ("per_class_0", ["--per-class 0"]),
        ("limit_0", ["--limit 0"]),
        ("limit_negative", ["--limit -3"]),
    ],
)
def test_user_errors_are_one_line(tmp_path, case, fragments):
    data, kwargs = tmp_path / "data", {}
    data.mkdir()
    if case == "missing":
        data = tmp_path / "nowhere"
    elif case == "file":
        data = save_image(tmp_path / "one.jpg")
    elif case == "no_images":
        (data / "notes.txt").write_text("x")
        (data / "sub").mkdir()
    elif case == "gt_missing":
        save_image(data / "a.jpg")
        kwargs["ground_truth"] = str(tmp_path / "missing.csv")
    elif case == "val_without_gt":
        save_image(data / "ILSVRC2012_val_00000001.JPEG")
    elif case.startswith(("per_class", "limit")):
        save_image(data / "a.jpg")
        option = "per_class" if case.startswith("per_class") else "limit"
        kwargs[option] = -3 if case.endswith("negative") else 0
    with pytest.raises(BenchmarkError) as excinfo:
        ImageNetDataModule(str(data), **kwargs)
    assert_one_line_error(excinfo, *fragments)


def test_bad_loader_options():
    with pytest.raises(BenchmarkError):
        ImageNetDataModule(batch_size=0)
    with pytest.raises(BenchmarkError):
        ImageNetDataModule(num_workers=-1)


# ---------------------------------------------------------------- loading


def test_builtin_default_photos():
    dm = ImageNetDataModule(batch_size=8)
    assert dm.layout == "builtin" and len(dm.samples) == 8
    assert {s.file for s in dm.samples} == {
        f"skimage:{n}" for n in ("astronaut", "chelsea", "coffee", "rocket", "camera", "clock", "coins", "motorcycle")
    }
    assert all(s.label == -1 for s in dm.samples)
    batch = next(iter(dm.test_dataloader()))
    assert batch["failures"] == []
    assert batch["image"].shape == (8, 3, 224, 224) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0 and batch["image"].max() > 0.9
    assert batch["sample_id"].tolist() == list(range(8)) and batch["label"].tolist() == [-1] * 8
    assert dm.describe() == "built-in photos: 8 images, scikit-image photos, unlabelled"


def test_modes_convert_to_rgb(tmp_path):
    cases = {
        "rgba.png": Image.new("RGBA", (20, 10), (10, 20, 30, 0)),
        "la.png": Image.new("LA", (20, 10), (77, 5)),
        "gray.png": Image.new("L", (20, 10), 77),
        "cmyk.jpg": Image.new("CMYK", (20, 10), (0, 0, 0, 0)),
        "bw.png": Image.new("1", (20, 10), 1),
    }
    palette = Image.new("RGB", (20, 10), (10, 20, 30)).quantize(4)
    palette.info["transparency"] = 0
    cases["palette.png"] = palette
    for name, image in cases.items():
        image.save(tmp_path / name)
    Image.fromarray(np.full((10, 20), 32896, dtype=np.uint16)).save(tmp_path / "gray16.png")
    expected = {
        "rgba.png": (10, 20, 30),
        "la.png": (77, 77, 77),
        "gray.png": (77, 77, 77),
        "bw.png": (255, 255, 255),
        "palette.png": (10, 20, 30),
        "gray16.png": (128, 128, 128),
    }
    for name in [*cases, "gray16.png"]:
        image = load_rgb(str(tmp_path / name))
        assert image.mode == "RGB" and image.size == (20, 10), name
        pixel = image.getpixel((5, 5))
        if name == "cmyk.jpg":
            assert min(pixel) > 240, pixel  # CMYK 0,0,0,0 is white
        else:
            assert all(abs(a - b) <= 1 for a, b in zip(pixel, expected[name])), (name, pixel)


def test_transform_and_jpeg_draft(tmp_path):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (2400, 1200), (0, 255, 0)).save(big)
    image = load_rgb(str(big))
    assert min(image.size) >= 256 and image.size[0] < 2400  # decoded at a reduced scale
    assert load_rgb(str(big), min_size=None).size == (2400, 1200)
    tensor = make_transform()(image)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    assert torch.allclose(tensor[1], torch.ones(224, 224), atol=0.02)
    assert make_transform(resize=64, crop=32)(image).shape == (3, 32, 32)
    tiny = make_transform()(Image.new("RGB", (3, 5), (255, 0, 0)))
    assert tiny.shape == (3, 224, 224) and tiny.max() <= 1.0


def bad_files(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, "JPEG")
    (folder / "b_truncated.JPEG").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "c_text.JPEG").write_text("this is not an image\n")
    (folder / "d_empty.JPEG").write_bytes(b"")
    save_image(folder / "a_good.JPEG")
    save_image(folder / "e_good.png")
    return {
        "b_truncated.JPEG": "truncated or corrupt image",
        "c_text.JPEG": "not an image file",
        "d_empty.JPEG": "empty file",
    }


def test_load_rgb_errors(tmp_path):
    reasons = bad_files(tmp_path)
    for name, reason in reasons.items():
        with pytest.raises(ImageLoadError, match=reason):
            load_rgb(str(tmp_path / name))
    with pytest.raises(ImageLoadError, match="file not found"):
        load_rgb(str(tmp_path / "gone.jpg"))
    with pytest.raises(ImageLoadError):
        load_rgb("skimage:nonexistent")


def test_bad_images_are_reported_not_raised(tmp_path):
    reasons = bad_files(tmp_path)
    dm = ImageNetDataModule(str(tmp_path), batch_size=5, num_workers=1)  # in a worker too
    ids = {os.path.basename(s.file): s.sample_id for s in dm.samples}
    item = dm.dataset[ids["c_text.JPEG"]]
    assert item["error"] == "not an image file" and item["image"].shape == (3, 224, 224)
    assert dm.dataset[ids["a_good.JPEG"]]["error"] is None
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (2, 3, 224, 224)
    assert batch["sample_id"].tolist() == [ids["a_good.JPEG"], ids["e_good.png"]]
    assert batch["sample_id"].dtype == torch.long and batch["label"].dtype == torch.long
    assert sorted(batch["failures"]) == sorted((ids[name], reason) for name, reason in reasons.items())
    empty = collate_samples([dm.dataset[ids["c_text.JPEG"]], dm.dataset[ids["d_empty.JPEG"]]])
    assert empty["image"].shape == (0, 3, 224, 224) and empty["sample_id"].shape == (0,)
    assert len(empty["failures"]) == 2


# ---------------------------------------------------------------- distributed


def test_ddp_sampler_gives_each_image_once(tmp_path):
    for i in range(7):
        save_image(tmp_path / f"img{i}.png", size=(8, 8))
    dm = ImageNetDataModule(str(tmp_path), batch_size=3)
    assert dm.test_dataloader().sampler.__class__.__name__ == "SequentialSampler"
    seen = []
    for rank in (0, 1):
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        loader = dm.test_dataloader()
        assert isinstance(loader.sampler, UnrepeatedDistributedSampler)
        ids = [i for batch in loader for i in batch["sample_id"].tolist()]
        assert len(ids) == (4 if rank == 0 else 3)
        seen.extend(ids)
    assert sorted(seen) == list(range(7))
    assert make_sampler(dm.dataset, 1, 0) is None
    with pytest.raises(BenchmarkError):
        make_sampler(dm.dataset, 8, 0)


# ---------------------------------------------------------------- the real sample folder


def test_real_imagenet_sample_folder():
    classes = imagenet_classes()
    dm = ImageNetDataModule(str(shared_sample_dir()), per_class=None)
    assert len(dm.samples) == 200 and dm.layout == "wnid-prefix"
    for sample in dm.samples:
        assert sample.label == classes.index_of(os.path.basename(sample.file)[:9])
    assert [s.label for s in dm.samples] == sorted(s.label for s in dm.samples)
    assert dm.describe() == "imagenet-sample: 200 images, flat <wnid>_*.JPEG layout, labelled"
    item = dm.dataset[0]
    assert item["error"] is None and item["image"].shape == (3, 224, 224)
