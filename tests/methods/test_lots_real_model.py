"""LOTS on the real EfficientNet-Lite0: batched equals the literal loop in float64."""

from __future__ import annotations

import pytest
import torch

from benchmark.datamodules import ImageNetDataModule
from benchmark.methods.lots import lots_attack, lots_attack_reference
from benchmark.models import build_classifier
from benchmark.models.features import FeatureExtractor


@pytest.fixture(scope="module")
def model_and_images():
    model = build_classifier("efficientnet_lite0")
    batch = next(iter(ImageNetDataModule(limit=3, batch_size=3).test_dataloader()))
    return model, batch["image"]


@pytest.mark.slow
def test_batched_lots_equals_the_one_image_loop_in_float64(model_and_images):
    model, images = model_and_images
    model64, images64 = model.double(), images.double()
    try:
        targets = torch.zeros(3, 1000, dtype=torch.float64)
        batched = lots_attack(model64, images64, targets, iterations=4, tau=0.1, alpha=1 / 255)
        for i in range(3):
            single = lots_attack_reference(model64, images64[i], targets[i], iterations=4, tau=0.1, alpha=1 / 255)
            assert float((batched.adversarial[i] - single.adversarial[0]).abs().max()) < 1e-6
            assert int(batched.iterations[i]) == int(single.iterations[0]) == 4
            torch.testing.assert_close(batched.final_distance[i], single.final_distance[0], rtol=1e-9, atol=1e-9)
        # the perturbation really moved the images and lowered the distance to the zero target
        assert float((batched.adversarial - images64).abs().max()) > 0
        assert bool((batched.final_distance < model64(images64).norm(dim=1)).all())
    finally:
        model.float()


@pytest.mark.slow
@pytest.mark.parametrize("layer,dim", [("logits", 1000), ("penultimate", 1280), ("conv_head", 1280 * 7 * 7)])
def test_feature_layers(model_and_images, layer, dim):
    model, images = model_and_images
    features = FeatureExtractor(model, layer)
    x = images[:1].clone().requires_grad_(True)
    out = features(x)
    assert out.shape == (1, dim)
    (gradient,) = torch.autograd.grad(out.pow(2).sum(), x)  # the graph reaches the input
    assert gradient.abs().sum() > 0


def test_penultimate_is_the_input_of_the_classifier(model_and_images):
    model, images = model_and_images
    with torch.no_grad():
        pooled = FeatureExtractor(model, "penultimate")(images)
        logits = model.net.classifier(pooled)
        torch.testing.assert_close(logits, model(images))
