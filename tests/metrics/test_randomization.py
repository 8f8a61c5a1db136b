"""The cascading model parameter randomization test: which layers each stage randomizes (by
hand), the seeded weights, the trained weights always put back (also when the method fails,
and through a whole scored batch: nothing leaks into the other metrics), the value and SSIM by
hand and against scikit-image, and the per-stage similarities against Quantus's ``MPRT`` on the
same maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.metrics import SaliencyScorer
from benchmark.metrics.functional import randomization as randomization_module
from benchmark.metrics.functional.randomization import CascadingRandomization, layers_in_forward_order, stage_groups
from benchmark.metrics.randomization import ModelRandomization, map_ssim


class Shuffled(nn.Module):
    """Layers defined in one order and called in another; ``scale`` holds a parameter itself
    but has no ``reset_parameters`` (never randomized, as in Quantus)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.second = nn.Conv2d(4, 4, 3, padding=1)
        self.first = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.scale = nn.Parameter(torch.ones(1))
        self.unused = nn.Linear(2, 2)
        with torch.no_grad():  # as if trained: not the values reset_parameters gives
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.running_var.fill_(2.0)

    def forward(self, x):
        x = torch.relu(self.norm(self.first(x)))
        x = torch.relu(self.second(x)) * self.scale
        return self.head(x.mean(dim=(2, 3)))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_layers_are_found_in_forward_order_and_cut_from_the_output():
    model = Shuffled().eval()
    layers, kept = layers_in_forward_order(model, torch.rand(1, 3, 8, 8))
    assert [name for name, _ in layers] == ["first", "norm", "second", "head"]
    assert kept == [""]  # the model itself holds `scale`; `unused` is never called
    names = [[name for name, _ in group] for group in stage_groups(layers, 3)]
    assert names == [["head", "second"], ["norm"], ["first"]]
    assert [[n for n, _ in g] for g in stage_groups(list(zip("abcdefg", range(7))), 3)] == [
        ["g", "f", "e"],
        ["d", "c"],
        ["b", "a"],
    ]
    with pytest.raises(BenchmarkError, match="--metrics.randomization_steps 5 exceeds the 4 layers"):
        stage_groups(layers, 5)


def test_each_stage_randomizes_its_groups_and_the_trained_weights_come_back():
    model = Shuffled().eval()
    trained = _state(model)
    stages = CascadingRandomization.build(model, torch.rand(1, 3, 8, 8), steps=2)
    assert _same(_state(model), trained)  # drawing the weights changes nothing
    seen = []
    with stages.cascade() as cascade:
        for _ in cascade:
            now = _state(model)
            seen.append(
                {
                    name
                    for name in ("first", "norm", "second", "head")
                    if not torch.equal(now[f"{name}.weight"], trained[f"{name}.weight"])
                }
            )
            assert torch.equal(now["scale"], trained["scale"])
    assert seen == [{"head", "second"}, {"head", "second", "norm", "first"}]
    assert _same(_state(model), trained)
    # BatchNorm's reset_parameters also resets its running statistics
    random_norm = stages.random[id(model.norm)]
    assert torch.equal(random_norm["b:running_var"], torch.ones(4)) and torch.equal(
        random_norm["p:weight"], torch.ones(4)
    )


def test_the_trained_weights_come_back_when_the_method_fails():
    model = Shuffled().eval()
    trained = _state(model)
    stages = CascadingRandomization.build(model, torch.rand(1, 3, 8, 8), steps=4)
    with pytest.raises(RuntimeError, match="method failed"):
        with stages.cascade() as cascade:
            for number in cascade:
                if number == 3:
                    raise RuntimeError("method failed")
    assert _same(_state(model), trained)


def test_the_random_weights_are_seeded_per_layer():
    a, b = Shuffled().eval(), Shuffled().eval()
    b.load_state_dict(a.state_dict())
    first = CascadingRandomization.build(a, torch.rand(1, 3, 8, 8), steps=2)
    torch.manual_seed(12345)  # the global generator plays no part
    again = CascadingRandomization.build(b, torch.rand(2, 3, 8, 8), steps=2)
    for (_, ma), (_, mb) in zip(sum(first.groups, []), sum(again.groups, [])):
        for key, value in first.random[id(ma)].items():
            assert torch.equal(value, again.random[id(mb)][key]), key
    assert not torch.equal(first.random[id(a.first)]["p:bias"], first.random[id(a.second)]["p:bias"])


def test_the_value_is_the_spearman_correlation_at_full_randomization_by_hand():
    """A method that returns M while the first layer is trained and 1 - M once it is random:
    correlation 100 at stage 1 (only the head and second conv random), -100 at stage 2."""
    model = Shuffled().eval()
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    maps = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(1))
    trained_first = model.first.weight.detach().clone()

    def method(x, classes):
        return maps if torch.equal(model.first.weight, trained_first) else 1 - maps

    metric = ModelRandomization(randomization_steps=2)
    metric.update([3, 4], maps=maps, images=images, method=method, classifier=model)
    torch.testing.assert_close(metric.values[-1], torch.full((2,), -100.0))
    ssim_inverse = map_ssim(maps, 1 - maps)
    expected = torch.cat([torch.tensor([[100.0, -100.0]] * 2), 100 * torch.stack([torch.ones(2), ssim_inverse], 1)], 1)
    torch.testing.assert_close(metric.batch_curves, expected.float(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(metric.mean_curve(), expected.mean(0).float(), rtol=1e-5, atol=1e-4)
    assert metric.example["sample_id"] == 3 and metric.example["maps"].shape == (3, 16, 16)
    assert torch.equal(metric.example["maps"][1], maps[0]) and torch.equal(metric.example["maps"][2], 1 - maps[0])


def test_map_ssim_equals_scikit_image_with_the_gaussian_window():
    from skimage.metrics import structural_similarity

    generator = torch.Generator().manual_seed(2)
    a = torch.rand(3, 40, 40, generator=generator)
    b = (a + 0.3 * torch.rand(3, 40, 40, generator=generator)).clamp(0, 1)
    ours = map_ssim(a, b)
    theirs = [
        structural_similarity(
            x.numpy().astype(np.float64),
            y.numpy().astype(np.float64),
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for x, y in zip(a, b)
    ]
    # torchmetrics averages over the valid (unpadded) window positions, scikit-image over all
    # pixels with reflected borders: they differ by the border, measured < 0.02 at 40x40
    torch.testing.assert_close(ours, torch.tensor(theirs, dtype=torch.float64), atol=0.02, rtol=0)
    assert torch.isnan(map_ssim(a[:, :8, :8], b[:, :8, :8])).all()  # smaller than the window


def _gradcam_maps(model: nn.Module, layer: nn.Module, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with torch.enable_grad():
        cam = GradCAM(model, [layer])
        try:
            return torch.tensor(cam(images, targets=[ClassifierOutputTarget(int(c)) for c in classes]))
        finally:
            cam.activations_and_grads.release()


def test_per_stage_similarities_equal_quantus_mprt_on_the_same_maps(monkeypatch):
    """Quantus 0.6's MPRT, top-down, randomizes one layer more per step, each reset after
    ``torch.manual_seed(seed + 1)``. With one layer per stage and our per-layer seed set to the
    same number, both randomize to the same weights: Grad-CAM's maps are then the same and our
    per-stage Spearman correlations equal Quantus's per-layer scores."""
    import quantus

    torch.manual_seed(2)  # a model whose Grad-CAM maps are nowhere all zero (Quantus refuses those)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 4),
    ).eval()
    images = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    classes = model(images).argmax(1)
    maps = _gradcam_maps(model, model[2], images, classes)
    trained = _state(model)

    def explain(model, inputs, targets, **kwargs):
        batch = torch.as_tensor(inputs)
        return _gradcam_maps(model, model[2], batch, torch.as_tensor(targets))[:, None].numpy()

    mprt = quantus.MPRT(
        layer_order="top_down",
        seed=42,
        abs=True,
        normalise=True,
        disable_warnings=True,
        return_sample_correlation=False,
    )
    theirs = mprt(
        model=model,
        x_batch=images.numpy(),
        y_batch=classes.numpy(),
        a_batch=maps[:, None].numpy(),
        explain_func=explain,
        device="cpu",
    )
    layer_scores = [v for k, v in theirs.items() if k != "original"]  # one list per layer, output first

    monkeypatch.setattr(randomization_module, "layer_seed", lambda position, seed=0: 42 + 1)
    ours = ModelRandomization(randomization_steps=3)
    ours.update(
        [0, 1, 2],
        maps=maps,
        images=images,
        classifier=model,
        method=lambda x, c: _gradcam_maps(model, model[2], x, classes),
    )
    assert len(layer_scores) == 3
    expected = 100 * torch.tensor(layer_scores, dtype=torch.float64).T  # [B, stages]
    torch.testing.assert_close(ours.batch_curves[:, :3].double(), expected, rtol=1e-5, atol=1e-4)
    assert _same(_state(model), trained)


@pytest.mark.parametrize("name", ["gradcam", "lots", "scorecam"])
def test_randomization_never_leaks_into_the_other_metrics(name):
    """The same batch scored with and without the randomization test: every other metric's
    values are identical and the model ends with its trained weights."""
    from tests.methods.test_cam import _images, _tiny

    model = _tiny()
    trained = _state(model)
    images = _images(batch=3)
    from benchmark.methods import get_method

    values = {}
    for extra in ([], ["randomization"]):
        explainer = get_method(name)(model, scorer=SaliencyScorer(n_steps=4, extra=extra, randomization_steps=2))
        outcome = explainer.test_step({"image": images, "sample_id": torch.arange(3), "label": torch.zeros(3)}, 0)
        values[tuple(extra)] = outcome.metrics
        assert _same(_state(model), trained)
    with_test = values[("randomization",)]
    similarity = with_test.pop("randomization")
    if name != "scorecam":  # Score-CAM's maps on this random tiny model are constant: no ranking, NaN
        assert np.isfinite(similarity).all()
    np.testing.assert_equal(with_test, values[()])  # NaN (an undefined Coherency) equals NaN


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_bad_randomization_steps_are_one_line_errors(steps):
    with pytest.raises(BenchmarkError, match="--metrics.randomization_steps must be an integer >= 1"):
        SaliencyScorer(extra=["randomization"], randomization_steps=steps)


def test_left_undefined_a_sample_gets_nan_curves_of_both_similarities_and_other_curve_metrics_refuse():
    """Maps made elsewhere: the randomization is undefined, with a NaN curve of its S Spearman
    and S SSIM points; a curve metric that does not know its curve's width (ROAD) refuses."""
    from benchmark.metrics.road import RoadMostRelevantFirst

    metric = ModelRandomization(randomization_steps=3)
    metric.update_undefined([4, 7], 2)
    assert metric.batch_curves.shape == (2, 6) and bool(metric.batch_curves.isnan().all())
    assert bool(metric.values[-1].isnan().all()) and metric.values[-1].shape == (2,)
    assert bool(metric.compute().isnan())
    with pytest.raises(ValueError, match="cannot be left undefined"):
        RoadMostRelevantFirst(road_percentages=[50]).update_undefined([1], 1)
