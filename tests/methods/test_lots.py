"""LOTS (SPEC sections 4 and 5) against hand computations and the literal one-image loop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.methods.lots import lots_attack, lots_attack_reference, lots_map
from benchmark.methods.lots_explainer import LOTSConfig
from tests.support.helpers import LinearModel


def _linear_case(dtype=torch.float64):
    torch.manual_seed(0)
    weight = torch.randn(2, 3 * 2 * 2, dtype=dtype)
    images = torch.rand(3, 3, 2, 2, dtype=dtype) * 0.5 + 0.25
    return LinearModel(weight), weight, images


def test_one_step_matches_the_formula_by_hand():
    model, weight, images = _linear_case()
    alpha = 0.01
    result = lots_attack(model, images, torch.zeros(3, 2, dtype=torch.float64), iterations=1, tau=0.0, alpha=alpha)

    x = images.flatten(1).numpy()
    w = weight.numpy()
    gradient = (w.T @ (w @ x.T)).T  # d/dx 0.5 ||W x||^2 = W^T W x
    expected = np.clip(x - alpha * gradient / np.abs(gradient).max(axis=1, keepdims=True), 0, 1)
    np.testing.assert_allclose(result.adversarial.flatten(1).numpy(), expected, rtol=0, atol=1e-15)
    assert result.iterations.tolist() == [1, 1, 1]
    # final distance: one extra forward after the last update
    np.testing.assert_allclose(result.final_distance.numpy(), np.linalg.norm(expected @ w.T, axis=1), atol=1e-12)


def test_batched_equals_the_literal_loop_with_per_sample_convergence():
    model, _, images = _linear_case()
    target = torch.zeros(3, 2, dtype=torch.float64)
    start = model(images).norm(dim=1)
    tau = float(start.min()) * 0.6  # reachable: samples converge after different iterations
    batched = lots_attack(model, images, target, iterations=200, tau=tau, alpha=0.004)
    for i in range(3):
        single = lots_attack_reference(model, images[i], target[i], iterations=200, tau=tau, alpha=0.004)
        torch.testing.assert_close(batched.adversarial[i], single.adversarial[0], rtol=0, atol=1e-12)
        assert int(batched.iterations[i]) == int(single.iterations[0])
        torch.testing.assert_close(batched.final_distance[i], single.final_distance[0])
    assert len(set(batched.iterations.tolist())) > 1, "the case should converge at different steps"
    assert bool((batched.final_distance <= tau).all())


def test_a_converged_sample_stops_changing():
    model, _, images = _linear_case()
    target = model(images).detach().clone()
    target[1] += 100.0  # sample 1 is far away; samples 0 and 2 start at their target
    result = lots_attack(model, images, target, iterations=5, tau=0.1, alpha=0.01)
    assert result.iterations.tolist() == [0, 5, 0]
    assert torch.equal(result.adversarial[0], images[0])
    assert torch.equal(result.adversarial[2], images[2])
    assert not torch.equal(result.adversarial[1], images[1])


def test_zero_gradient_gives_a_zero_step_not_nan():
    model = LinearModel(torch.zeros(2, 12, dtype=torch.float64))
    images = torch.rand(2, 3, 2, 2, dtype=torch.float64)
    result = lots_attack(model, images, torch.ones(2, 2, dtype=torch.float64), iterations=3, tau=0.0)
    assert torch.equal(result.adversarial, images)
    assert torch.isfinite(result.final_distance).all()


def test_steps_are_clamped_to_pixel_range():
    model, _, images = _linear_case()
    result = lots_attack(model, images, torch.zeros(3, 2, dtype=torch.float64), iterations=50, tau=0, alpha=0.5)
    assert float(result.adversarial.min()) >= 0 and float(result.adversarial.max()) <= 1


def test_cosine_distance_with_zero_target_is_a_clear_error():
    model, _, images = _linear_case()
    with pytest.raises(BenchmarkError, match="cosine"):
        lots_attack(model, images, torch.zeros(3, 2, dtype=torch.float64), distance="cosine")
    with pytest.raises(BenchmarkError, match="cosine"):
        LOTSConfig(distance="cosine", target="zero").validate()


def test_cosine_distance_by_hand():
    model, _, images = _linear_case()
    target = torch.tensor([[1.0, 0.0]] * 3, dtype=torch.float64)
    result = lots_attack(model, images, target, iterations=1, tau=2.0, distance="cosine")
    features = model(images)
    expected = 1 - features[:, 0] / features.norm(dim=1)  # 1 - cos(F_s, e_1)
    assert result.iterations.tolist() == [0, 0, 0]
    torch.testing.assert_close(result.final_distance, expected)


@pytest.mark.parametrize(
    "field,value",
    [
        ("iterations", 0),
        ("iterations", -3),
        ("tau", -0.1),
        ("alpha", 0.0),
        ("kernel_size", 4),
        ("kernel_size", 0),
        ("target", "nonsense"),
        ("distance", "manhattan"),
    ],
)
def test_bad_parameters_are_rejected_with_the_option_name(field, value):
    with pytest.raises(BenchmarkError, match=rf"^--method\.{field} "):
        LOTSConfig(**{field: value}).validate()


def test_map_of_a_one_pixel_perturbation_peaks_at_that_pixel():
    images = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    adversarial = images.clone()
    adversarial[0, :, 20, 7] = 1 - adversarial[0, :, 20, 7]
    saliency = lots_map(images, adversarial, kernel_size=7)
    assert saliency.shape == (1, 32, 32)
    flat_argmax = int(saliency[0].flatten().argmax())
    assert divmod(flat_argmax, 32) == (20, 7)
    assert float(saliency.max()) == pytest.approx(1.0) and float(saliency.min()) == 0.0


def test_map_equals_algorithm_2_computed_with_opencv():
    rng = np.random.default_rng(3)
    images = torch.from_numpy(rng.random((2, 3, 40, 40)))
    adversarial = (images + torch.from_numpy(rng.normal(0, 0.02, (2, 3, 40, 40)))).clamp(0, 1)
    ours = lots_map(images, adversarial, kernel_size=15).numpy()
    for i in range(2):
        gray = lambda t: 0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]  # noqa: E731
        p = np.abs(gray(adversarial[i].numpy()) - gray(images[i].numpy()))
        p = (p - p.min()) / (p.max() - p.min())
        p = cv2.GaussianBlur(p, (15, 15), 0, borderType=cv2.BORDER_REFLECT_101)
        expected = (p - p.min()) / (p.max() - p.min())
        np.testing.assert_allclose(ours[i], expected, atol=1e-6)


def test_map_of_no_perturbation_is_all_zeros():
    images = torch.rand(2, 3, 16, 16)
    saliency = lots_map(images, images.clone(), kernel_size=3)
    assert torch.equal(saliency, torch.zeros(2, 16, 16))


def _masked_every_iteration(features_fn, images, targets, iterations, tau, alpha):
    """The loop before the sync-free change: boolean-mask indexing in every iteration."""
    from benchmark.methods.lots import _loss_and_gradient, _scaled_step

    adversarial = images.detach().clone()
    used = torch.zeros(images.shape[0], dtype=torch.long)
    active = torch.arange(images.shape[0])
    for _ in range(iterations):
        if active.numel() == 0:
            break
        dist, gradient = _loss_and_gradient(features_fn, adversarial[active], targets[active], "euclidean")
        keep = ~(dist <= tau)
        stepped = (adversarial[active][keep] - _scaled_step(gradient[keep], alpha)).clamp_(0, 1)
        active = active[keep]
        adversarial[active] = stepped
        used[active] += 1
    return adversarial, used


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_sync_free_loop_gives_the_masked_loops_images(dtype):
    model, _, images = _linear_case(dtype)
    target = torch.zeros(3, 2, dtype=dtype)
    tau = float(model(images).norm(dim=1).min()) * 0.6
    got = lots_attack(model, images, target, iterations=200, tau=tau, alpha=0.004)
    expected, used = _masked_every_iteration(model, images, target, 200, tau, 0.004)
    assert torch.equal(got.adversarial, expected) and torch.equal(got.iterations, used)
    assert len(set(used.tolist())) > 1


def test_no_mask_indexing_while_nothing_converges():
    """Boolean-mask indexing runs aten::nonzero (a device-to-host sync on a GPU); while no sample
    converges the loop must not run it."""
    from torch.profiler import ProfilerActivity, profile

    model, _, images = _linear_case()
    with profile(activities=[ProfilerActivity.CPU]) as never:
        lots_attack(model, images, torch.zeros(3, 2, dtype=torch.float64), iterations=5, tau=0.0, alpha=0.004)
    assert not [e for e in never.events() if e.name == "aten::nonzero"]
    tau = float(model(images).norm(dim=1).min()) * 1.01  # one sample converges at once
    with profile(activities=[ProfilerActivity.CPU]) as some:
        lots_attack(model, images, torch.zeros(3, 2, dtype=torch.float64), iterations=5, tau=tau, alpha=0.004)
    assert [e for e in some.events() if e.name == "aten::nonzero"], "the profiler should see the masked path"
