"""``--precision bf16`` (Lightning's ``bf16-mixed``: autocast) on the CPU: an end-to-end run,
and the grad-cam backend switching autocast off (numpy has no bfloat16), so its maps are the
float32 maps while the classifier's own forwards are bfloat16."""

from __future__ import annotations

import json
import math

import pytest
import pytorch_grad_cam
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from benchmark.methods import get_method
from benchmark.methods.cam import DEVICE_METHODS
from tests.methods.test_cam import _images, _tiny
from tests.support.cli_runs import run_in_process

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

METRICS = ("avg_drop", "avg_increase", "coherency", "insertion", "deletion")
BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


# -- end to end -------------------------------------------------------------------------------


def _run(output, *extra):
    run = run_in_process(
        [
            "test",
            "--method",
            "gradcam",
            "--limit",
            "2",
            "--metrics.n_steps",
            "4",
            "--logger",
            "none",
            "--output",
            str(output),
            *extra,
        ]
    )
    assert run.code == 0, run.err
    return json.loads((run.run_dir / "results.json").read_text())


@pytest.mark.slow
def test_bf16_run_end_to_end_on_the_cpu(tmp_path):
    bf16 = _run(tmp_path / "bf16", "--precision", "bf16")
    fp32 = _run(tmp_path / "fp32")
    assert bf16["precision"] == "bf16" and str(fp32["precision"]) == "32"
    assert bf16["device"] == "cpu" and bf16["images"] == fp32["images"] == 2
    assert set(bf16["metrics"]) == set(METRICS)
    assert all(math.isfinite(v) for v in bf16["metrics"].values()), bf16["metrics"]
    # The curve metrics average continuous per-image scores of the classifier: its bf16 forwards
    # move them (measured: 0.3 to 0.5 points). The Grad-CAM maps themselves are float32 maps
    # under bf16 (both backends switch autocast off), so Coherency (maps of x and of x * M) does
    # not move. Average Drop / Increase need not move: on 2 images they are clipped (Drop = 0
    # when the masked image scores higher) or an indicator mean.
    moved = {k: abs(bf16["metrics"][k] - fp32["metrics"][k]) for k in ("insertion", "deletion")}
    assert all(d > 1e-4 for d in moved.values()), moved
    assert bf16["metrics"]["coherency"] == fp32["metrics"]["coherency"]
    assert all(abs(bf16["metrics"][k] - fp32["metrics"][k]) < 10 for k in METRICS)  # same ballpark


# -- the grad-cam backend computes in float32 under autocast -----------------------------------


def _method(name: str, model):
    cls = get_method(name)
    return cls(model, cls.config_class(backend="grad-cam"))


GRAD_CAM_BACKEND = [
    "gradcam",
    "gradcampp",
    "xgradcam",
    "scorecam",
    "ablationcam",
    "eigengradcam",
    "fullgrad",
    "shapleycam",
    "smoothgradcampp",
]


@pytest.mark.parametrize("name", GRAD_CAM_BACKEND)
def test_grad_cam_backend_maps_under_bf16_autocast_are_the_float32_maps(name):
    model = _tiny(seed=2)
    images = _images(batch=4, size=32, seed=4)
    classes = torch.tensor([0, 1, 2, 3])
    method = _method(name, model)
    assert not method.uses_device_backend()
    reference = method.explain(images, classes)

    seen = []  # dtypes of the first conv's outputs during explain
    handle = model.net.features[0].register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    try:
        with torch.autocast(**BF16):
            logits = model(images)  # contrast: the classifier itself runs in bfloat16 here
            seen.clear()
            maps = method.explain(images, classes)
    finally:
        handle.remove()
    assert logits.dtype == torch.bfloat16
    assert seen and set(seen) == {torch.float32}, seen  # grad-cam's forwards saw float32
    assert maps.dtype == torch.float32
    assert float((maps - reference).abs().max()) <= 1e-6
    assert float(reference.amax()) == 1.0


def test_grad_cam_itself_cannot_run_under_bf16_autocast():
    # why the wrapper must switch autocast off: grad-cam's numpy conversion has no bfloat16
    model = _tiny(seed=2)
    images = _images(batch=2, size=32, seed=4)
    with torch.autocast(**BF16), pytorch_grad_cam.GradCAM(model, [model.net.features[2]]) as cam:
        with pytest.raises(TypeError, match="BFloat16"):
            cam(images.clone().requires_grad_(True), [ClassifierOutputTarget(0), ClassifierOutputTarget(1)])


@pytest.mark.parametrize("name", DEVICE_METHODS)
def test_device_backend_under_bf16_autocast_gives_the_grad_cam_backend_maps(name):
    """Both backends compute CAMs in float32 under --precision bf16 (grad-cam must: numpy has no
    bfloat16), so --method.backend keeps its promise of the same maps to 1e-5."""
    model = _tiny(seed=2)
    images = _images(batch=5, size=32, seed=4)
    classes = torch.tensor([0, 1, 2, 3, 4])
    ids = torch.arange(5)
    maps = {}
    for backend in ("grad-cam", "device"):
        method = get_method(name)(model, get_method(name).config_class(backend=backend), seed=3)
        method.current_sample_ids = ids
        with torch.autocast(**BF16):
            maps[backend] = method.explain(images, classes)
    assert float((maps["device"] - maps["grad-cam"]).abs().max()) < 1e-5


def test_lots_maps_and_the_blurred_baseline_under_bf16_autocast_are_the_float32_ones():
    """Lightning's bf16 autocast covers all of test_step: without switching it off, the LOTS map's
    grayscale, blurs and min-max ran in bfloat16 (a map had ~30 distinct values instead of tens of
    thousands). The map and the Insertion/Deletion baseline are computed in float32 regardless."""
    from benchmark.methods.lots import lots_map
    from benchmark.metrics.functional.image import gaussian_blur

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 64, 64, generator=generator)
    adversarial = (images + 0.02 * torch.randn(2, 3, 64, 64, generator=generator)).clamp(0, 1)
    reference = lots_map(images, adversarial, kernel_size=9)
    blurred = gaussian_blur(images, 11, 5.0)
    with torch.autocast(**BF16):
        maps = lots_map(images, adversarial, kernel_size=9)
        baseline = gaussian_blur(images, 11, 5.0)
        assert torch.nn.functional.conv2d(images, torch.ones(1, 3, 3, 3)).dtype == torch.bfloat16  # autocast is on
    assert maps.dtype == baseline.dtype == torch.float32
    assert torch.equal(maps, reference) and torch.equal(baseline, blurred)
    assert maps[0].unique().numel() > 1000
