"""The model registry: real EfficientNet-Lite0 weights, torchvision backbones offline, errors."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.datamodules import ImageNetDataModule
from benchmark.models import build_classifier, get_model_spec, model_names
from benchmark.models.efficientnet_lite import map_in_order
from benchmark.models.weights import load_state_dict
from tests.support.helpers import shared_sample_dir


@pytest.mark.slow
def test_efficientnet_lite0_predicts_the_sample_images():
    folder = shared_sample_dir()
    datamodule = ImageNetDataModule(data=str(folder), limit=10, batch_size=10)
    batch = next(iter(datamodule.test_dataloader()))
    model = build_classifier("efficientnet_lite0")
    with torch.no_grad():
        predicted = model(batch["image"]).argmax(dim=1)
    correct = int((predicted == batch["label"]).sum())
    assert len(batch["label"]) == 10
    assert correct >= 8, f"only {correct}/10 correct: weights or normalization are wrong"


def test_registry_lists_the_thesis_backbones_and_the_offline_default():
    names = model_names()
    for name in ("efficientnet_lite0", "alexnet", "resnet50", "densenet121", "convnext_tiny"):
        assert name in names
    spec = get_model_spec("efficientnet_lite0")
    assert spec.mean == spec.std == (0.5, 0.5, 0.5)
    assert spec.cam_layer == "conv_head"


def test_unknown_model_suggests_close_names():
    with pytest.raises(BenchmarkError, match="did you mean .*efficientnet_lite0"):
        get_model_spec("efficientnet_lite")


def test_classifier_normalizes_inside_and_is_frozen():
    model = build_classifier("efficientnet_lite0")
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(images), model.net((images - 0.5) / 0.5))
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())


def test_torchvision_backbone_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BenchmarkError) as error:
        build_classifier("resnet50")
    message = str(error.value)
    assert "resnet50-11ad3fa6.pth" in message and "--model.weights" in message
    assert str(tmp_path) in message and "\n" not in message


def test_torchvision_backbone_loads_a_local_weights_file(tmp_path):
    import torchvision

    reference = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet.pth"
    torch.save(reference.state_dict(), path)
    model = build_classifier("alexnet", str(path))
    for key, value in reference.state_dict().items():
        assert torch.equal(model.net.state_dict()[key], value)


def test_wrong_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"a.weight": torch.zeros(2)}, path)
    with pytest.raises(BenchmarkError, match="do not fit"):
        build_classifier("alexnet", str(path))


def test_in_order_mapping_checks_shapes():
    with pytest.raises(BenchmarkError, match="does not fit"):
        map_in_order({"a": torch.zeros(2)}, ["b"], {"b": torch.Size([3])})
    with pytest.raises(BenchmarkError, match="tensors"):
        map_in_order({"a": torch.zeros(2)}, ["b", "c"], {})


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with path.open("wb") as handle:
        pickle.dump({"weight": _RunsCode()}, handle, protocol=2)
    with pytest.raises(BenchmarkError, match="cannot be loaded safely"):
        load_state_dict(path)


def test_bad_layer_name_lists_close_names():
    model = build_classifier("efficientnet_lite0")
    with pytest.raises(BenchmarkError, match="conv_head"):
        model.submodule("conv_haed")
    assert model.submodule("blocks[-1]") is model.net.blocks[-1]
