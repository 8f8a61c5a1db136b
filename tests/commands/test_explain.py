"""``explain``: the files per image, the x10 perturbation formula, the kernel-size strip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.cli import main
from benchmark.pictures import magnified_perturbation, save_png


def test_x10_perturbation_matches_the_formula_on_a_hand_made_pair(tmp_path):
    image = torch.full((3, 2, 3), 0.5, dtype=torch.float64)
    adversarial = image.clone()
    adversarial[0, 0, 0] += 3 / 255  # +3 grey levels -> 128 + 30
    adversarial[1, 0, 1] -= 20 / 255  # -20 -> 128 - 200, clipped to 0
    adversarial[2, 1, 2] += 13 / 255  # +13 -> 128 + 130, clipped to 255
    adversarial[0, 1, 0] -= 1.2 / 255  # -1.2 -> 128 - 12
    expected = np.full((2, 3, 3), 128, dtype=np.uint8)  # H x W x C
    expected[0, 0, 0], expected[0, 1, 1], expected[1, 2, 2], expected[1, 0, 0] = 158, 0, 255, 116
    got = magnified_perturbation(image, adversarial)
    np.testing.assert_array_equal(got, expected)
    written = np.asarray(Image.open(save_png(got, tmp_path / "p.png")))
    np.testing.assert_array_equal(written, expected)  # PNG keeps it exactly


@pytest.mark.slow
def test_explain_writes_every_file_for_a_scikit_image_photo(tmp_path, capsys):
    import skimage.data

    photo = tmp_path / "coffee.png"  # a mug: nothing the thesis evaluated on
    Image.fromarray(skimage.data.coffee()).save(photo)
    out = tmp_path / "out"
    code = main(
        [
            "explain",
            str(photo),
            "--method",
            "lots",
            "--method.iterations",
            "2",
            "--method.kernel_size",
            "3,15,9",
            "--output",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    folder = out / "coffee"
    names = [
        "original.png",
        "adversarial.png",
        "perturbation_x10.png",
        "map.png",
        "overlay.png",
        "predictions.json",
        "kernel_strip.png",
        "map_k3.png",
        "map_k9.png",
        "map_k15.png",
    ]
    for name in names:
        assert (folder / name).is_file(), name
    record = json.loads((folder / "predictions.json").read_text())
    assert len(record["original_top5"]) == len(record["adversarial_top5"]) == 5
    assert all(p["name"] for p in record["original_top5"])
    probabilities = [p["probability"] for p in record["original_top5"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert record["kernel_sizes"] == [3, 9, 15] and record["iterations"] == 2
    # map.png is the coarsest map of the strip; maps get smoother as k grows
    np.testing.assert_array_equal(
        np.asarray(Image.open(folder / "map.png")), np.asarray(Image.open(folder / "map_k15.png"))
    )
    roughness = [
        np.abs(np.diff(np.asarray(Image.open(folder / f"map_k{k}.png"), dtype=float), axis=1)).mean()
        for k in (3, 9, 15)
    ]
    assert roughness[0] > roughness[1] > roughness[2]
    assert Image.open(folder / "original.png").size == (224, 224)
    assert json.loads((out / "explain.json").read_text())["images"][0]["file"] == str(photo)
    assert "coffee" in captured.out


def test_explain_rejects_an_unreadable_file_before_model_work(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"no image")
    assert main(["explain", str(bad), "--method", "gradcam", "--output", str(tmp_path / "out")]) == 2
    assert "bad.jpg" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["explain", str(bad), "--method", "gradcam", "--method.kernel_size", "3,5"]) == 2
    assert "does not apply" in capsys.readouterr().err
