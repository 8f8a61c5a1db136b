"""The CAM methods on real networks: EfficientNet-Lite0 with its ImageNet weights on the
built-in photos, DenseNet-121's in-place ReLU, and one whole ``Trainer.test`` run."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchvision
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.datamodules import ImageNetDataModule
from benchmark.methods import get_method
from benchmark.methods.cam import CAM_METHODS, CAMConfig
from benchmark.metrics import SaliencyScorer
from benchmark.models import build_classifier
from benchmark.models.registry import NormalizedClassifier

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

#: Methods that run one forward pass per channel: on this CPU they get a layer with 80
#: channels instead of conv_head's 1280.
PER_CHANNEL = {"scorecam": "blocks.3", "ablationcam": "blocks.3"}


@pytest.fixture(scope="module")
def lite0():
    model = build_classifier("efficientnet_lite0")
    images = next(iter(ImageNetDataModule(limit=2, batch_size=2).test_dataloader()))["image"]
    return model, images


def _top1(model, images):
    with torch.no_grad():
        return model(images).argmax(1)


@pytest.mark.slow
def test_gradcam_on_efficientnet_lite0_at_224(lite0):
    model, images = lite0
    method = get_method("gradcam")(model)
    assert method.describe() == {"target_layer": "conv_head", "backend": "device"}
    maps = method.explain(images, _top1(model, images))
    assert maps.shape == (2, 224, 224)
    assert torch.isfinite(maps).all() and float(maps.min()) == 0.0 and float(maps.max()) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CAM_METHODS))
def test_every_method_on_efficientnet_lite0(lite0, name):
    model, images = lite0
    small = F.interpolate(images, size=(96, 96), mode="bilinear", antialias=True)
    cls = get_method(name)
    config = cls.config_class(target_layer=PER_CHANNEL[name]) if name in PER_CHANNEL else None
    method = cls(model, config)
    maps = method.explain(small, _top1(model, small))
    assert maps.shape == (2, 96, 96)
    assert torch.isfinite(maps).all()
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    assert float(maps.amax(dim=(1, 2)).min()) == 1.0, "every map should be a real (non-constant) map"
    assert all(not m._forward_hooks for m in model.modules())


def test_a_misspelled_layer_names_the_close_ones(lite0):
    model, _ = lite0
    with pytest.raises(BenchmarkError, match=r"'conv_hed' does not exist; close names: conv_head"):
        get_method("gradcam")(model, get_method("gradcam").config_class(target_layer="conv_hed"))


class _DenseNetWithoutInplaceReLU(nn.Module):
    """torchvision's DenseNet forward with ``F.relu(features)`` instead of ``inplace=True``
    (the same modules, hence the same weights)."""

    def __init__(self, densenet: nn.Module) -> None:
        super().__init__()
        self.features = densenet.features
        self.classifier = densenet.classifier

    def forward(self, x):
        out = F.relu(self.features(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1))


@pytest.mark.slow
def test_densenet_maps_do_not_depend_on_the_inplace_relu_after_norm5():
    torch.manual_seed(0)
    densenet = torchvision.models.densenet121(weights=None).eval()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    inplace = NormalizedClassifier(densenet, mean, std, name="densenet121").requires_grad_(False)
    copy = NormalizedClassifier(_DenseNetWithoutInplaceReLU(densenet), mean, std, name="densenet121").requires_grad_(
        False
    )
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    classes = _top1(inplace, images)
    assert torch.equal(classes, _top1(copy, images))

    # the problem: grad-cam alone keeps norm5's output, which the in-place ReLU then
    # overwrites on the CPU (on CUDA grad-cam's .cpu() copy protects it)
    targets = [ClassifierOutputTarget(int(c)) for c in classes]
    with GradCAM(inplace, [densenet.features.norm5]) as cam:
        raw_inplace = cam(images.clone().requires_grad_(True), targets)
    with GradCAM(copy, [densenet.features.norm5]) as cam:
        raw_copy = cam(images.clone().requires_grad_(True), targets)
    assert np.abs(raw_inplace - raw_copy).max() > 1e-3

    # the benchmark's maps are those of the non-inplace model (what CUDA gives), on both backends
    for backend, tolerance in (("grad-cam", 2e-6), ("device", 1e-5)):
        config = CAMConfig(backend=backend)
        for name in ("gradcam", "gradcampp"):
            ours_inplace = get_method(name)(inplace, config)
            assert ours_inplace.describe() == {"target_layer": "features.norm5", "backend": backend}
            torch.testing.assert_close(
                ours_inplace.explain(images, classes),
                get_method(name)(copy, config).explain(images, classes),
                rtol=0,
                atol=1e-6,
            )
        ours = get_method("gradcam")(inplace, config).explain(images, classes).numpy()
        np.testing.assert_allclose(ours, raw_copy, atol=tolerance)


@pytest.mark.slow
def test_gradcam_through_the_trainer(lite0):
    model, _ = lite0
    method = get_method("gradcam")(model, scorer=SaliencyScorer(n_steps=8), show_progress=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        inference_mode=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(method, datamodule=ImageNetDataModule(limit=2, batch_size=2), verbose=False)
    metrics = method.results.metrics
    assert set(metrics) == {"avg_drop", "avg_increase", "coherency", "insertion", "deletion"}
    assert all(np.isfinite(v) for v in metrics.values())
    assert method.results.sample_ids == [0, 1]
    assert all(m.shape == (224, 224) for m in method.results.maps.values())
    assert method.describe() == {"target_layer": "conv_head", "backend": "device"}
