"""A plain function, an object or a class with ``explain`` runs as a method (wrapped into an
Explainer), from the command line and from ``evaluate``; ``evaluate`` also takes an Explainer
instance (its config) and an ``nn.Module`` as the model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from benchmark import evaluate
from benchmark.methods import Explainer, get_method
from benchmark.methods.cam import CAMConfig
from benchmark.models import NormalizedClassifier
from tests.support.cli_runs import run_in_process
from tests.support.helpers import LinearModel

FAST = dict(limit=2, metrics={"n_steps": 4, "extra": ["complexity"]}, overlay_images=0)


def top_left_quarter(images, classes):
    """Top-left quarter: M = 1 there, 0 elsewhere (a test baseline)."""
    maps = images.new_zeros(images.shape[0], *images.shape[-2:])
    maps[:, : images.shape[-2] // 2, : images.shape[-1] // 2] = 1.0
    return maps


def input_gradient(images, classes, model):
    """|d logit_c / d x| summed over channels, min-max normalized per image (a test method using the model)."""
    images = images.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(images)
        logits.gather(1, classes[:, None]).sum().backward()
    maps = images.grad.abs().sum(dim=1)
    flat = maps.flatten(1)
    low, high = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return ((maps - low) / (high - low).clamp_min(1e-12)).detach()


class SeededNoise:
    """Seeded noise: one uniform map per sample id (numpy output, [B, 1, H, W])."""

    def __init__(self, model):
        self.model = model
        self.calls = 0

    def explain(self, images, classes, sample_ids):
        self.calls += 1
        maps = [torch.rand(1, *images.shape[-2:], generator=torch.Generator().manual_seed(int(i))) for i in sample_ids]
        return torch.stack(maps).numpy()


def test_a_function_an_object_and_a_class_are_wrapped_with_the_model_and_sample_ids():
    model = LinearModel(torch.randn(3, 3 * 8 * 8))
    images, classes = torch.rand(2, 3, 8, 8), torch.tensor([1, 2])
    quarter = get_method("tests.methods.test_wrapped_methods:top_left_quarter")(model)
    assert (
        isinstance(quarter, Explainer) and quarter.method_name == "tests.methods.test_wrapped_methods:top_left_quarter"
    )
    assert get_method("tests.methods.test_wrapped_methods:top_left_quarter").__doc__.startswith("Top-left quarter")
    assert quarter.explain(images, classes).sum().item() == 2 * 16  # 4x4 ones per image

    gradient = get_method("tests.methods.test_wrapped_methods:input_gradient")(model)
    got = gradient.explain(images, classes)
    assert got.shape == (2, 8, 8) and got.amin().item() == 0 and got.amax().item() == pytest.approx(1)

    noise = get_method("tests.methods.test_wrapped_methods:SeededNoise")(model)  # built as SeededNoise(model=model)
    assert noise._function.__self__.model is model
    noise.current_sample_ids = torch.tensor([5, 9])
    maps = noise.explain(images, classes)
    assert maps.shape == (2, 8, 8)  # [B, 1, H, W] numpy -> [B, H, W] tensor
    expected = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(9))[0]
    assert torch.equal(maps[1], expected)


@pytest.mark.slow
def test_a_function_runs_from_the_command_line_and_from_evaluate_with_the_same_numbers(tmp_path):
    run = run_in_process(
        [
            "test",
            "--method",
            "tests.methods.test_wrapped_methods:top_left_quarter",
            "--limit",
            "2",
            "--metrics.n_steps",
            "4",
            "--metrics.extra",
            "complexity",
            "--logger",
            "none",
            "--overlay-images",
            "0",
            "--output",
            str(tmp_path / "cli"),
        ]
    )
    assert run.code == 0, run.err
    expected = json.loads((run.run_dir / "results.json").read_text())
    assert expected["metrics"]["complexity"] == pytest.approx(25.0)
    results = evaluate(method=top_left_quarter, **FAST)
    assert results.metrics == expected["metrics"]


@pytest.mark.slow
def test_evaluate_takes_an_object_an_explainer_instance_and_a_module_as_the_model():
    noise = SeededNoise(model=None)
    results = evaluate(method=noise, **FAST)
    assert noise.calls == 2  # one batch of two images: the maps of x, then of x * M (Coherency)
    assert results.method.endswith("test_wrapped_methods:SeededNoise")

    # An Explainer instance: its class and config are used (the model comes from model=).
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 1000),
    )
    gradcam = get_method("gradcam")(NormalizedClassifier(net, (0.5,) * 3, (0.25,) * 3), CAMConfig(target_layer="2"))
    results = evaluate(method=gradcam, model=net, model_mean=[0.5, 0.5, 0.5], model_std=[0.25, 0.25, 0.25], **FAST)
    assert results.results["config"]["method"]["target_layer"] == "2"
    assert results.results["method_info"]["target_layer"] == "2"
    assert results.model.endswith(":Sequential")
    assert results.results["config"]["model"]["mean"] == [0.5, 0.5, 0.5]
    assert all(math.isfinite(results.metrics[k]) for k in ("avg_drop", "insertion", "deletion"))


def test_the_readme_function_example_is_the_tested_one():
    from tests.support.cli_runs import REPO

    readme = (REPO / "README.md").read_text()
    block = readme.split("```python\nimport torch\n\n\ndef input_gradient", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec("import torch\n\n\ndef input_gradient" + block, namespace)
    model = LinearModel(torch.randn(3, 3 * 8 * 8, generator=torch.Generator().manual_seed(0)))
    images, classes = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([1, 2])
    assert torch.allclose(namespace["input_gradient"](images, classes, model), input_gradient(images, classes, model))
