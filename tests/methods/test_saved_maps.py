"""``--method maps``: maps computed elsewhere are scored like the method's own. A Grad-CAM run's
maps, read back from its maps.pt, from a .npz with file names and from a folder of .npy files,
give the Grad-CAM run's numbers per image; Coherency is not computable without the maps of
x * M, and computable with them; every bad input is one clear line before any model work."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark import models
from tests.support.cli_runs import run_in_process

#: The reference run's data and metric settings (tests.support.cli_runs.SEVEN_IMAGES_GRADCAM).
SAME = [
    "--limit",
    "7",
    "--batch-size",
    "1",
    "--metrics.n_steps",
    "6",
    "--logger",
    "none",
    "--overlay-images",
    "0",
    "--threads",
    "1",
]
SCORED = ("avg_drop", "avg_increase", "insertion", "deletion")


def _rows(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run_dir / "per_sample.csv").open()))


def _run(args: list[str], output: Path):
    threads = torch.get_num_threads()
    try:
        return run_in_process(["test", "--method", "maps", *args, *SAME, "--output", str(output)])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def gradcam_maps(one_process_run):
    saved = torch.load(one_process_run.run_dir / "maps.pt", weights_only=True)
    assert saved["files"] == [
        "skimage:astronaut",
        "skimage:camera",
        "skimage:chelsea",
        "skimage:clock",
        "skimage:coffee",
        "skimage:coins",
        "skimage:motorcycle",
    ]
    return one_process_run.run_dir, saved


def _assert_same_numbers(reference: Path, run_dir: Path) -> None:
    expected, got = _rows(reference), _rows(run_dir)
    assert [r["sample_id"] for r in got] == [r["sample_id"] for r in expected]
    for a, b in zip(expected, got):
        assert b["pred_class"] == a["pred_class"]
        for key in SCORED:
            assert float(b[key]) == pytest.approx(float(a[key]), abs=1e-6), (a["sample_id"], key)


@pytest.mark.slow
def test_the_maps_of_a_gradcam_run_give_its_numbers_from_maps_pt_npz_and_a_folder(gradcam_maps, tmp_path):
    reference, saved = gradcam_maps
    npz = tmp_path / "maps.npz"
    np.savez(npz, files=np.array([f + ".JPEG" for f in saved["files"]]), maps=saved["maps"].numpy()[:, None])
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, saliency in zip(saved["files"], saved["maps"]):
        np.save(folder / f"{name}.npy", saliency.numpy() * 8.0)  # any scale: maps are min-max normalized (8: exactly)
    for source in (reference / "maps.pt", npz, folder):
        run = _run(["--method.path", str(source)], tmp_path / f"runs-{source.name}")
        assert run.code == 0, run.err
        _assert_same_numbers(reference, run.run_dir)
        results = json.loads((run.run_dir / "results.json").read_text())
        assert results["metrics"]["coherency"] is None and "coherency" not in results["undefined"]
        assert "--method.coherency_maps" in results["not_computable"]["coherency"]
        assert "coherency not computable" in run.out
        assert run.out.splitlines()[2].split("|")[6].strip() == "n/a"  # the Coherency cell


@pytest.mark.slow
def test_coherency_is_computed_from_the_maps_of_x_times_m(gradcam_maps, tmp_path):
    from benchmark.datamodules import ImageNetDataModule
    from benchmark.methods import get_method

    reference, saved = gradcam_maps
    images = torch.cat([b["image"] for b in ImageNetDataModule(limit=7, batch_size=7).test_dataloader()])
    gradcam = get_method("gradcam")(models.build_classifier("efficientnet_lite0"))
    with torch.no_grad():
        top1 = gradcam.classifier(images).argmax(1)
    of_explanations = torch.cat(
        [gradcam.explain(images[i : i + 1] * saved["maps"][i], top1[i : i + 1]) for i in range(7)]
    )
    coherency_maps = tmp_path / "of_x_times_m.pt"
    torch.save({"files": saved["files"], "maps": of_explanations}, coherency_maps)
    run = _run(
        ["--method.path", str(reference / "maps.pt"), "--method.coherency_maps", str(coherency_maps)], tmp_path / "run"
    )
    assert run.code == 0, run.err
    for a, b in zip(_rows(reference), _rows(run.run_dir)):
        assert float(b["coherency"]) == pytest.approx(float(a["coherency"]), abs=1e-3)
    assert "not_computable" not in json.loads((run.run_dir / "results.json").read_text())


@pytest.mark.slow
def test_maps_at_another_size_with_channels_are_resized_and_reduced(gradcam_maps, tmp_path):
    _, saved = gradcam_maps
    small = torch.nn.functional.interpolate(saved["maps"][:, None], size=(56, 56), mode="bilinear")
    three = torch.cat([small, -small, small * 0], dim=1)  # sum_abs = 2 x the map
    path = tmp_path / "three.pt"
    torch.save({"files": saved["files"], "maps": three}, path)
    run = _run(["--method.path", str(path), "--method.channels", "sum_abs", "--save-maps"], tmp_path / "a")
    assert run.code == 0, run.err
    scored = torch.load(run.run_dir / "maps.pt", weights_only=True)["maps"]
    expected = torch.nn.functional.interpolate(small, size=(224, 224), mode="bilinear")[:, 0]
    low = expected.flatten(1).amin(1)[:, None, None]
    high = expected.flatten(1).amax(1)[:, None, None]
    torch.testing.assert_close(scored, (expected - low) / (high - low), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_an_image_without_a_map_is_skipped_with_allow_missing(gradcam_maps, tmp_path):
    reference, saved = gradcam_maps
    path = tmp_path / "five.pt"
    torch.save({"files": saved["files"][:5], "maps": saved["maps"][:5]}, path)
    run = _run(["--method.path", str(path), "--method.allow_missing", "true"], tmp_path / "a")
    assert run.code == 0, run.err
    assert "note: maps: 2 image(s) have no map in --method.path (first: skimage:coins)" in run.err
    results = json.loads((run.run_dir / "results.json").read_text())
    assert results["images"] == 5 and results["skipped"] == 2
    assert {f["reason"] for f in results["skipped_files"]} == {"no saved map for this image"}


def _bad_inputs(tmp_path: Path, saved) -> list[tuple[list[str], str]]:
    files, maps = saved["files"], saved["maps"]
    cases = []

    def pt(name, **content):
        path = tmp_path / name
        torch.save(content, path)
        return str(path)

    cases.append(
        (
            ["--method.path", pt("five.pt", files=files[:5], maps=maps[:5])],
            "2 image(s) have no map (first: skimage:coins)",
        )
    )
    extra = pt("extra.pt", files=[*files, "n01440764_tench"], maps=torch.cat([maps, maps[:1]]))
    cases.append((["--method.path", extra], "1 map(s) have no image (first: n01440764_tench)"))
    nan = maps.clone()
    nan[3, 10, 10] = float("nan")
    cases.append(
        (
            ["--method.path", pt("nan.pt", files=files, maps=nan)],
            "map of skimage:clock: the map holds NaN or infinite values",
        )
    )
    cases.append(
        (
            ["--method.path", pt("channels.pt", files=files, maps=maps[:, None].repeat(1, 3, 1, 1))],
            "a map with 3 channels; say how to make one of them with --method.channels sum_abs|mean|max",
        )
    )
    cases.append(
        (
            ["--method.path", pt("flat.pt", files=files, maps=maps.flatten(1))],
            "maps of shape (7, 50176) for 7 file names; expected [N, H, W]",
        )
    )
    cases.append((["--method.path", pt("nofiles.pt", sample_ids=torch.arange(7), maps=maps)], "holds no 'files'"))
    (tmp_path / "broken.pt").write_bytes(b"not a torch file")
    cases.append((["--method.path", str(tmp_path / "broken.pt")], "broken.pt: cannot be read"))
    cases.append(
        (
            ["--method.path", str(tmp_path / "none.pt")],
            "--method.path " + str(tmp_path / "none.pt") + ": no such file or folder",
        )
    )
    cases.append(([], "--method maps needs --method.path FILE"))
    cases.append(
        (
            ["--method.path", pt("ok.pt", files=files, maps=maps), "--method.channels", "median"],
            "--method.channels 'median' is unknown",
        )
    )
    return cases


@pytest.mark.slow
def test_every_bad_input_is_one_line_before_any_model_work(gradcam_maps, tmp_path, monkeypatch):
    _, saved = gradcam_maps

    def refuse(*args, **kwargs):
        raise AssertionError("a classifier was built before the bad input was reported")

    monkeypatch.setattr(models, "build_classifier", refuse)
    for args, message in _bad_inputs(tmp_path, saved):
        run = _run(args, tmp_path / "runs")
        lines = run.err.strip().splitlines()
        assert run.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, run.err)
        assert message in lines[0], (message, lines[0])
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_explanations_writes_the_x_times_m_images(gradcam_maps, tmp_path):
    from PIL import Image

    from benchmark.cli import main
    from benchmark.datamodules import ImageNetDataModule

    reference, saved = gradcam_maps
    assert (
        main(
            [
                "explanations",
                "--maps",
                str(reference / "maps.pt"),
                "--limit",
                "2",
                "--allow-missing",
                "--output",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["skimage:astronaut.png", "skimage:camera.png"]
    image = next(iter(ImageNetDataModule(limit=1, batch_size=1).test_dataloader()))["image"][0]
    expected = (image * saved["maps"][0] * 255).round().permute(1, 2, 0).numpy()
    written = np.asarray(Image.open(tmp_path / "out" / "skimage:astronaut.png"), dtype=np.float32)
    assert written.shape == (224, 224, 3) and np.abs(written - expected).max() <= 1.0
