"""``python -m benchmark explain --method gradcam IMAGE... --output DIR``: the files it writes per
image (benchmark/explain_images.py) and the map it writes, against Grad-CAM computed here on the same
224x224 crop with ``get_method("gradcam")(build_classifier("efficientnet_lite0"))``.

explain writes only PNGs: ``map.png`` holds ``round(255 M)``, so it is compared within one grey
level (1/255); ``original.png`` holds ``round(255 x)`` of the crop, compared exactly with the
crop made here (shorter side to 256, bilinear + antialias, centre crop 224)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from tests.support.cli_runs import run_in_process
from tests.support.helpers import write_random_jpeg

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")]

LOTS_ONLY = ("adversarial.png", "perturbation_x10.png", "kernel_strip.png")


def _crop(path) -> torch.Tensor:
    """The model's view of an image file, made here: RGB, shorter side 256, centre 224, [0, 1]."""
    transform = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(256, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
            v2.CenterCrop(224),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    with Image.open(path) as image:
        return transform(image.convert("RGB"))


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    import skimage.data

    root = tmp_path_factory.mktemp("explain-gradcam")
    photo = root / "chelsea.png"
    Image.fromarray(skimage.data.chelsea()).save(photo)
    noise = write_random_jpeg(root / "noise.jpg", seed=3)
    out = root / "out"
    run = run_in_process(["explain", "--method", "gradcam", str(photo), str(noise), "--output", str(out)])
    assert run.code == 0, run.err
    return run, out, {"chelsea": photo, "noise": noise}


def test_explain_gradcam_writes_its_files(explained):
    run, out, files = explained
    summary = json.loads((out / "explain.json").read_text())
    assert summary["method"] == "gradcam" and summary["model"] == "efficientnet_lite0"
    assert [r["file"] for r in summary["images"]] == [str(files["chelsea"]), str(files["noise"])]
    for stem in files:
        folder = out / stem
        assert sorted(p.name for p in folder.iterdir()) == [
            "map.png",
            "original.png",
            "overlay.png",
            "predictions.json",
        ]
        assert not any((folder / name).exists() for name in LOTS_ONLY)
        assert Image.open(folder / "original.png").size == (224, 224)
        assert np.asarray(Image.open(folder / "map.png")).shape == (224, 224)  # grey levels
        assert np.asarray(Image.open(folder / "overlay.png")).shape == (224, 224, 3)
        record = json.loads((folder / "predictions.json").read_text())
        assert record["label"] == -1 and "adversarial_top5" not in record
        assert record["explained_class"] == record["original_top5"][0]["class"]  # top-1 explained
        assert str(folder) in run.out
    assert f"explanations: {out}" in run.out


def test_explain_gradcam_map_equals_the_method_on_the_same_crop(explained):
    from benchmark.methods import get_method
    from benchmark.models import build_classifier

    _, out, files = explained
    crops = torch.stack([_crop(files[stem]) for stem in files])
    for crop, stem in zip(crops, files):
        written = np.asarray(Image.open(out / stem / "original.png"))
        expected = (crop * 255).round().byte().permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(written, expected)  # explain saw this crop

    model = build_classifier("efficientnet_lite0")
    with torch.no_grad():
        probabilities = model(crops).softmax(dim=-1)
    top1 = probabilities.argmax(dim=-1)
    maps = get_method("gradcam")(model).explain(crops, top1)
    assert float(maps.amax(dim=(1, 2)).min()) == 1.0  # real maps, not constant ones
    for row, stem in enumerate(files):
        record = json.loads((out / stem / "predictions.json").read_text())
        assert record["explained_class"] == int(top1[row])
        assert abs(record["original_top5"][0]["probability"] - float(probabilities[row, top1[row]])) < 1e-5
        grey = np.asarray(Image.open(out / stem / "map.png")).astype(np.float64)
        difference = np.abs(grey / 255 - maps[row].double().numpy()).max()
        assert difference <= 1 / 255, f"{stem}: map.png differs from Grad-CAM by {difference * 255:.3f} grey levels"
        # and it is round(255 M): only pixels at a rounding boundary may land one level off
        assert (grey == np.round(255 * maps[row].double().numpy())).mean() >= 0.999, stem
    # the two images got different maps (the map really is the image's)
    assert float((maps[0] - maps[1]).abs().max()) > 0.1
