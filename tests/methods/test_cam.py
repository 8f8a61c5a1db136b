"""The CAM methods (SPEC section 6) on tiny hand-made CNNs: every registered method, maps whose
answer is known, per-sample seeding, SmoothGrad-CAM++ against Grad-CAM++ and against the
averaging done by hand, options and errors, and the pipeline hooks of methods/base.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torch.utils.data import DataLoader

from benchmark.core.errors import BenchmarkError
from benchmark.methods import get_method, method_names
from benchmark.methods.cam import CAM_METHODS, DEVICE_METHODS, CAMConfig, FullGradConfig, SmoothGradCAMppConfig
from benchmark.methods.cam.grad_cam_variants import SeededSmoothGradCAMPlusPlus, sample_seed
from benchmark.metrics import SaliencyScorer
from benchmark.models.registry import NormalizedClassifier

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

EXPECTED_METHODS = {
    "random",
    "gradcam",
    "gradcampp",
    "layercam",
    "hirescam",
    "scorecam",
    "ablationcam",
    "xgradcam",
    "eigencam",
    "eigengradcam",
    "fullgrad",
    "gradcamelementwise",
    "kpcacam",
    "fem",
    "shapleycam",
    "segeigencam",
    "sess",
    "smoothgradcampp",
}


def _wrap(net: nn.Module, name: str = "tiny-test-cnn") -> NormalizedClassifier:
    model = NormalizedClassifier(net, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), name=name)
    return model.eval().requires_grad_(False)


class TinyCNN(nn.Module):
    """conv - ReLU - conv(stride 2) - ReLU - global average pool - linear (random weights)."""

    def __init__(self, relu_after_target: bool = True) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(6, 8, 3, padding=1, stride=2),
            nn.ReLU() if relu_after_target else nn.Identity(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def _tiny(seed: int = 0, relu_after_target: bool = True) -> NormalizedClassifier:
    torch.manual_seed(seed)
    return _wrap(TinyCNN(relu_after_target))


def _images(batch: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _top1(model, images):
    with torch.no_grad():
        return model(images).argmax(1)


class QuadrantNet(nn.Module):
    """Class 0 = mean red, class 1 = mean green: a 1x1 conv copies R and G into two channels,
    then ReLU, global average pooling and an identity linear layer. Grad-CAM of class c is
    then exactly the channel of that colour (a_0 = [1/HW, 0], a_1 = [0, 1/HW])."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1.0  # red
            self.conv.weight[1, 1] = 1.0  # green
            self.fc.weight.copy_(torch.eye(2))

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _quadrant_image(size: int = 32) -> torch.Tensor:
    """Red square in the top-left quadrant (bright), green in the bottom-right (dimmer)."""
    image = torch.zeros(1, 3, size, size)
    half = size // 2
    image[0, 0, 2 : half - 2, 2 : half - 2] = 1.0
    image[0, 1, half + 2 : size - 2, half + 2 : size - 2] = 0.6
    return image


# -- registry and every method ------------------------------------------------------------


def test_every_cam_method_is_registered_with_a_help_line():
    assert EXPECTED_METHODS <= set(method_names())
    assert set(CAM_METHODS) == EXPECTED_METHODS
    for name in EXPECTED_METHODS:
        cls = get_method(name)
        first, *rest = cls.__doc__.strip().splitlines()
        body = " ".join(line.strip() for line in rest)
        assert first.strip() and len(first) < 120, name
        assert "M = " in body, f"{name}: the docstring should give the map's formula (M = ...)"
        # the paper: authors and year ("Selvaraju et al. 2017", "Draelos & Carin 2020", "Cai 2025")
        assert re.search(r"[A-Z][a-z]+( et al\.| & [A-Z][a-z]+)? (19|20)\d\d\b", body), f"{name}: cite its paper"
        for option in cls.config_class.parameter_names():
            assert [f for f in cls.config_class.__dataclass_fields__.values() if f.name == option][0].metadata["help"]


@pytest.mark.parametrize("name", sorted(EXPECTED_METHODS))
def test_every_method_gives_maps_in_unit_range_on_a_tiny_cnn(name):
    model = _tiny()
    images = _images(batch=3)
    method = get_method(name)(model, scorer=SaliencyScorer(n_steps=4))
    maps = method.explain(images, _top1(model, images))
    assert maps.shape == (3, 32, 32)
    assert maps.dtype == images.dtype
    assert torch.isfinite(maps).all()
    # min-max normalized per image: each map spans [0, 1] exactly (none is constant here)
    assert maps.amin(dim=(1, 2)).tolist() == [0.0] * 3 and maps.amax(dim=(1, 2)).tolist() == [1.0] * 3
    assert not torch.equal(maps[0], maps[1]), "the maps should depend on the image"
    # released: no hook left on the model, and its forwards are not recorded any more
    assert all(not m._forward_hooks for m in model.modules())
    expected = (
        {
            "target_layer": None,
            "backend": "device",
            "layers": "the input gradient and the bias of every Conv2d/BatchNorm2d (2 layers)",
        }
        if name == "fullgrad"
        else {"target_layer": "features.2"} | ({"backend": "device"} if name in DEVICE_METHODS else {})
    )
    assert method.describe() == expected


def test_maps_take_the_dtype_and_device_of_the_images_and_work_without_grad_mode():
    model = _tiny().double()
    images = _images(batch=2).double()
    method = get_method("gradcam")(model)
    classes = _top1(model, images)
    with torch.no_grad():
        inside_no_grad = method.explain(images, classes)
    with torch.inference_mode():
        inside_inference = method.explain(images.clone(), classes)
    outside = method.explain(images, classes)
    assert inside_no_grad.dtype == torch.float64
    torch.testing.assert_close(inside_no_grad, outside)
    torch.testing.assert_close(inside_inference, outside)
    assert float(outside.max()) == 1.0


def test_gradcam_equals_grad_cam_called_directly():
    model = _tiny()
    images = _images(batch=4)
    classes = _top1(model, images)
    ours = get_method("gradcam")(model, CAMConfig(backend="grad-cam")).explain(images, classes)
    with GradCAM(model, [model.net.features[2]]) as cam:
        theirs = cam(images.clone().requires_grad_(True), [ClassifierOutputTarget(int(c)) for c in classes])
    np.testing.assert_allclose(ours.numpy(), theirs, atol=2e-6)


def test_fewer_classes_than_images_is_an_error_not_zero_maps():
    model = _tiny()
    images = _images(batch=3)
    with pytest.raises(ValueError, match="one class per image"):
        get_method("gradcam")(model).explain(images, _top1(model, images)[:2])


def test_a_config_of_another_method_is_refused():
    with pytest.raises(TypeError, match="BatchedCAMConfig"):
        get_method("ablationcam")(_tiny(), CAMConfig())


def test_cam_object_is_made_once():
    model = _tiny()
    images = _images(batch=2)
    method = get_method("gradcampp")(model, CAMConfig(backend="grad-cam"))
    method.explain(images, _top1(model, images))
    first = method._cam
    method.explain(images, _top1(model, images))
    assert method._cam is first
    assert first.outputs is None  # grad-cam's kept outputs (and graph) are dropped


def test_ablationcam_leaves_the_model_as_it_was():
    model = _tiny()
    target = model.net.features[2]
    images = _images(batch=2)
    get_method("ablationcam")(model).explain(images, _top1(model, images))
    assert model.net.features[2] is target


# -- a known answer ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gradcam", "gradcampp", "layercam", "hirescam", "xgradcam"])
def test_the_map_peaks_in_the_quadrant_that_holds_the_class_evidence(name):
    model = _wrap(QuadrantNet(), name="quadrant")
    image = _quadrant_image()
    method = get_method(name)(model, CAMConfig(target_layer="conv"))
    assert _top1(model, image).tolist() == [0]  # the bright red square wins
    for cls, rows, cols in ((0, slice(0, 16), slice(0, 16)), (1, slice(16, 32), slice(16, 32))):
        saliency = method.explain(image, torch.tensor([cls]))[0]
        peak = divmod(int(saliency.argmax()), 32)
        assert rows.start <= peak[0] < rows.stop and cols.start <= peak[1] < cols.stop, (cls, peak)
        inside = saliency[rows, cols].mean()
        outside = (saliency.sum() - saliency[rows, cols].sum()) / (32 * 32 - 16 * 16)
        assert inside > 5 * outside


def test_gradcam_on_the_quadrant_net_is_the_colour_channel():
    model = _wrap(QuadrantNet(), name="quadrant")
    image = _quadrant_image()
    saliency = get_method("gradcam")(model, CAMConfig(target_layer="conv")).explain(image, torch.tensor([1]))
    expected = (image[0, 1] > 0).float()  # the green channel, min-max normalized
    # grad-cam resizes bilinearly with OpenCV: identical size here, so the map is exact
    torch.testing.assert_close(saliency[0], expected)


# -- target layer and target class -----------------------------------------------------------


def test_default_target_layer_of_an_unregistered_model_is_its_last_conv():
    method = get_method("gradcam")(_tiny())
    assert method.target_layer_path == "features.2"
    assert method.describe() == {"target_layer": "features.2", "backend": "device"}


def test_an_explicit_target_layer_is_used_and_recorded():
    model = _tiny()
    images = _images(batch=2)
    first = get_method("gradcam")(model, CAMConfig(target_layer="features.0"))
    assert first.describe() == {"target_layer": "features.0", "backend": "device"}
    default = get_method("gradcam")(model).explain(images, _top1(model, images))
    early = first.explain(images, _top1(model, images))
    assert not torch.allclose(default, early)


def test_a_bad_target_layer_lists_close_names():
    with pytest.raises(BenchmarkError, match=r"'features\.7' does not exist.*features\.\d"):
        get_method("gradcam")(_tiny(), CAMConfig(target_layer="features.7"))
    with pytest.raises(BenchmarkError, match="target_layer"):
        get_method("gradcam")(_tiny(), CAMConfig(target_layer=""))


def test_option_errors_name_the_option_and_range():
    with pytest.raises(BenchmarkError, match=r"target_class 'best'.*top1, label"):
        CAMConfig(target_class="best").validate()
    with pytest.raises(BenchmarkError, match=r"n_samples must be an integer >= 1"):
        SmoothGradCAMppConfig(n_samples=0).validate()
    with pytest.raises(BenchmarkError, match=r"noise_std must be a number >= 0"):
        SmoothGradCAMppConfig(noise_std=-0.1).validate()
    with pytest.raises(BenchmarkError, match=r"chunk_size must be an integer >= 1"):
        get_method("scorecam").config_class(chunk_size=0).validate()
    assert "target_layer" not in FullGradConfig.parameter_names()


def test_target_class_label_uses_known_labels_and_top1_otherwise():
    predicted = torch.tensor([3, 1, 4])
    batch = {"label": torch.tensor([0, -1, 2])}
    top1 = get_method("gradcam")(_tiny())
    label = get_method("gradcam")(_tiny(), CAMConfig(target_class="label"))
    assert top1.choose_classes(batch, predicted).tolist() == [3, 1, 4]
    assert label.choose_classes(batch, predicted).tolist() == [0, 1, 2]
    assert label.choose_classes({}, predicted).tolist() == [3, 1, 4]


# -- Random-CAM seeding ----------------------------------------------------------------------


def _explain_with_ids(method, images, ids):
    method.current_sample_ids = torch.tensor(ids)
    try:
        return method.explain(images, _top1(method.classifier, images))
    finally:
        method.current_sample_ids = None


def test_random_cam_is_seeded_per_sample_not_per_batch():
    model = _tiny()
    images = _images(batch=4)
    method = get_method("random")(model, seed=7)
    together = _explain_with_ids(method, images, [10, 11, 12, 13])
    for i in range(4):
        alone = _explain_with_ids(get_method("random")(model, seed=7), images[i : i + 1], [10 + i])
        torch.testing.assert_close(alone[0], together[i], rtol=0, atol=1e-5)
    # a different order of the same samples gives each its own map
    reordered = _explain_with_ids(method, images.flip(0), [13, 12, 11, 10])
    torch.testing.assert_close(reordered.flip(0), together, rtol=0, atol=1e-5)
    # numpy's global RNG plays no part
    np.random.seed(0)
    again = _explain_with_ids(method, images, [10, 11, 12, 13])
    assert torch.equal(again, together)
    other_seed = _explain_with_ids(get_method("random")(model, seed=8), images, [10, 11, 12, 13])
    assert not torch.allclose(other_seed, together)


def test_random_cam_weights_are_uniform_from_the_sample_generator():
    model = _tiny()
    method = get_method("random")(model, CAMConfig(backend="grad-cam"), seed=3)
    method.explain(_images(batch=1), torch.tensor([0]))  # builds the CAM object
    cam = method._cam
    cam.sample_seeds = [sample_seed(3, 5, cam.seed_stream)]
    weights = cam.get_cam_weights(None, None, None, np.zeros((1, 8, 4, 4), np.float32), None)
    expected = np.random.default_rng(sample_seed(3, 5, 1)).uniform(-1, 1, size=8)
    np.testing.assert_array_equal(weights[0], expected)


# -- SmoothGrad-CAM++ ------------------------------------------------------------------------


def _gradcampp_reference(model, layer, images, classes):
    with GradCAMPlusPlus(model, [layer]) as cam:
        return cam(images.clone().requires_grad_(True), [ClassifierOutputTarget(int(c)) for c in classes])


def test_smoothgradcampp_without_noise_is_gradcampp():
    model = _tiny()
    images = _images(batch=3)
    classes = _top1(model, images)
    ours = get_method("smoothgradcampp")(model, SmoothGradCAMppConfig(n_samples=3, noise_std=0.0))
    np.testing.assert_allclose(
        ours.explain(images, classes).numpy(),
        _gradcampp_reference(model, model.net.features[2], images, classes),
        atol=2e-6,
    )


def test_smoothgradcampp_noise_has_no_effect_when_the_head_is_linear_in_the_layer():
    # y^c = fc(mean(A)): dy^c/dA = W[c] / HW whatever the input, so every noisy gradient is
    # the clean one and the map is Grad-CAM++'s for any noise.
    model = _tiny(relu_after_target=False)
    images = _images(batch=2)
    classes = _top1(model, images)
    noisy = get_method("smoothgradcampp")(model, SmoothGradCAMppConfig(n_samples=4, noise_std=0.5))
    np.testing.assert_allclose(
        noisy.explain(images, classes).numpy(),
        _gradcampp_reference(model, model.net.features[2], images, classes),
        atol=2e-6,
    )


def test_smoothgradcampp_averages_the_gradient_powers_over_the_noisy_copies():
    model = _tiny()
    layer = model.net.features[2]
    images = _images(batch=2)
    classes = _top1(model, images)
    n, std, seeds = 3, 0.2, [sample_seed(0, 4, 2), sample_seed(0, 9, 2)]
    cam = SeededSmoothGradCAMPlusPlus(model, [layer], n_samples=n, noise_std=std)
    cam.sample_seeds = seeds
    with torch.enable_grad():
        d1, d2, d3 = cam.averaged_gradients(images, [ClassifierOutputTarget(int(c)) for c in classes])
    cam.activations_and_grads.release()

    generators = [torch.Generator().manual_seed(s) for s in seeds]
    grads = []
    for _ in range(n):
        noise = torch.stack([torch.randn(3, 32, 32, generator=g) for g in generators]) * std
        captured = []
        handle = layer.register_forward_hook(lambda m, a, out, captured=captured: captured.append(out))
        logits = model((images + noise).requires_grad_(True))
        handle.remove()
        (grad,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), captured[0])
        grads.append(grad.double().numpy())
    grads = np.stack(grads)
    np.testing.assert_allclose(d1, grads.mean(0), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(d2, (grads**2).mean(0), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(d3, (grads**3).mean(0), rtol=1e-4, atol=1e-14)
    assert not np.allclose(d2, d1**2)  # the noise really varied the gradients


def test_smoothgradcampp_noise_is_seeded_per_sample():
    model = _tiny()
    images = _images(batch=4)
    config = SmoothGradCAMppConfig(n_samples=4, noise_std=0.3)
    method = get_method("smoothgradcampp")(model, config, seed=1)
    together = _explain_with_ids(method, images, [0, 1, 2, 3])
    alone = _explain_with_ids(get_method("smoothgradcampp")(model, config, seed=1), images[2:3], [2])
    torch.testing.assert_close(alone[0], together[2], rtol=0, atol=1e-5)
    assert torch.equal(_explain_with_ids(method, images, [0, 1, 2, 3]), together)  # re-seeded per call
    other = _explain_with_ids(get_method("smoothgradcampp")(model, config, seed=2), images, [0, 1, 2, 3])
    assert not torch.allclose(other, together)
    clean = get_method("smoothgradcampp")(model, SmoothGradCAMppConfig(n_samples=1, noise_std=0.0))
    assert not torch.allclose(_explain_with_ids(clean, images, [0, 1, 2, 3]), together)


# -- through the pipeline (methods/base.py hooks) --------------------------------------------


def _loader(images, labels, batch_size):
    items = [{"image": images[i], "sample_id": i, "label": int(labels[i])} for i in range(len(images))]

    def collate(batch):
        return {
            "image": torch.stack([b["image"] for b in batch]),
            "sample_id": torch.tensor([b["sample_id"] for b in batch]),
            "label": torch.tensor([b["label"] for b in batch]),
            "failures": [],
        }

    return DataLoader(items, batch_size=batch_size, collate_fn=collate)


def _test_run(method, loader):
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        inference_mode=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(method, dataloaders=loader, verbose=False)
    return method.results


def test_pipeline_explains_the_label_class_scores_top1_and_passes_sample_ids():
    model = _tiny()
    images = _images(batch=4)
    top1 = _top1(model, images)
    labels = torch.tensor([(int(top1[0]) + 1) % 5, -1, (int(top1[2]) + 2) % 5, -1])
    method = get_method("gradcam")(model, CAMConfig(target_class="label"), scorer=SaliencyScorer(n_steps=4))
    calls = []
    original = method.explain

    def recording(images_, classes_):
        calls.append((classes_.tolist(), method.current_sample_ids.tolist()))
        return original(images_, classes_)

    method.explain = recording
    results = _test_run(method, _loader(images, labels, batch_size=2))
    expected = [int(labels[0]), int(top1[1]), int(labels[2]), int(top1[3])]
    # each batch: explain(x) and explain(x * M) for Coherency, same classes, same sample ids
    assert calls == [(expected[:2], [0, 1])] * 2 + [(expected[2:], [2, 3])] * 2
    assert method.current_sample_ids is None
    assert results.columns["pred_class"] == [float(c) for c in top1.tolist()]  # metrics: top-1
    assert all(np.isfinite(v) for v in results.metrics.values())


def test_random_cam_through_the_pipeline_is_the_same_for_batch_sizes_1_and_4():
    model = _tiny()
    images = _images(batch=4)
    labels = torch.full((4,), -1)
    maps, coherency = {}, {}
    for batch_size in (1, 4):
        method = get_method("random")(model, scorer=SaliencyScorer(n_steps=4), save_maps=True, seed=5)
        results = _test_run(method, _loader(images, labels, batch_size))
        maps[batch_size] = torch.stack([results.maps[i] for i in range(4)])
        coherency[batch_size] = results.columns["coherency"]
    torch.testing.assert_close(maps[1], maps[4], rtol=0, atol=1e-5)
    # the x * M maps are seeded alike (a constant map leaves Coherency undefined: NaN)
    np.testing.assert_allclose(coherency[1], coherency[4], atol=1e-3, equal_nan=True)


def test_scorecam_is_called_one_image_at_a_time_with_the_batchs_maps(monkeypatch):
    """grad-cam's Score-CAM builds the masked copies [B, C, 3, H, W] of the whole batch at once
    (ResNet-50 at batch 8: ~10 GB): the wrapper calls it per image; the maps are the batch call's."""
    from benchmark.methods import cam as cam_module

    model = _tiny(seed=3)
    images, classes = _images(batch=3), torch.tensor([0, 1, 2])
    config = get_method("scorecam").config_class(target_layer="features.2", backend="grad-cam")
    method = get_method("scorecam")(model, config)
    seen = []
    grad_cam_object = method.cam_object(images.device)
    original = type(grad_cam_object).__call__
    monkeypatch.setattr(
        type(grad_cam_object),
        "__call__",
        lambda self, inputs, targets: seen.append(inputs.shape[0]) or original(self, inputs, targets),
    )
    assert cam_module.CAM_METHODS["scorecam"].images_per_call == 1
    per_image = method.explain(images, classes)
    assert seen == [1, 1, 1]
    monkeypatch.setattr(type(method), "images_per_call", None)
    seen.clear()
    whole = method.explain(images, classes)
    assert seen == [3]
    torch.testing.assert_close(per_image, whole, atol=1e-6, rtol=0)


def test_the_device_backends_named_in_the_help_are_the_classes_that_have_one():
    """``--method.backend``'s help and its error name the methods with a device backend; each
    class says whether it has one (``has_device_backend``): the two lists must agree."""
    from benchmark.methods.cam.config import DEVICE_BACKEND_METHODS

    assert sorted(DEVICE_BACKEND_METHODS.split(", ")) == sorted(DEVICE_METHODS)
    assert DEVICE_BACKEND_METHODS in CAMConfig.__dataclass_fields__["backend"].metadata["help"]


def test_each_cam_is_a_class_named_for_its_method_in_its_own_module():
    """``class GradCAM`` in ``methods/cam/gradcam.py``: one registered class per module."""
    from benchmark.methods.cam import CAM_CLASSES

    modules = [cls.__module__ for cls in CAM_CLASSES]
    assert len(set(modules)) == len(modules) == len(CAM_METHODS)
    assert [name for name in method_names() if name in CAM_METHODS] == list(CAM_METHODS)
    for name, cls in CAM_METHODS.items():
        assert get_method(name) is cls and cls.method_name == name
