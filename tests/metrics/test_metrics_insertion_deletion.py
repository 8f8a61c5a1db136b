"""Insertion / Deletion (SPEC section 7) on images small enough to work out by hand."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.metrics import Deletion, Insertion
from benchmark.metrics.functional import (
    curve_auc,
    gaussian_blur,
    insertion_deletion_curves,
    pixel_order,
    pixel_rank,
    steps_for,
)

# sigma with exp(-1 / (2 sigma^2)) = 1/2: the 3-tap kernel is exactly (1/4, 1/2, 1/4), and on a
# 2x2 image with the reflect-101 border ([a, b] -> [b, a, b, a]) every pixel blurs to the mean.
HALF_SIGMA = 1 / math.sqrt(2 * math.log(2))


# --- the blur ----------------------------------------------------------------------------


@pytest.mark.parametrize(("kernel", "sigma", "cv2_sigma"), [(11, 5.0, 5.0), (49, None, 0)])
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-12), (torch.float32, 5e-6)])
def test_gaussian_blur_matches_opencv(kernel, sigma, cv2_sigma, dtype, atol):
    # float64 agrees to ~1e-15; float32 differs only by summation order (k=49: ~2e-6).
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 60, 70, generator=generator, dtype=dtype)
    ours = gaussian_blur(images, kernel, sigma)
    for image, blurred in zip(images, ours):
        hwc = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        reference = cv2.GaussianBlur(hwc, (kernel, kernel), cv2_sigma)  # BORDER_REFLECT_101
        np.testing.assert_allclose(blurred.permute(1, 2, 0).numpy(), reference, rtol=0, atol=atol)
    assert (ours - images).abs().max() > 0.1  # it does blur


def test_half_sigma_blur_of_two_by_two_is_the_mean():
    image = torch.tensor([[[1.0, 0.0], [0.6, 0.2]]])
    torch.testing.assert_close(gaussian_blur(image, 3, HALF_SIGMA), torch.full_like(image, 0.45))


# --- ranking and steps ----------------------------------------------------------------------


def test_pixel_order_is_descending_and_ties_keep_row_major_order():
    maps = torch.tensor(
        [
            [[0.5, 0.9, 0.5], [0.1, 0.9, 0.0]],
            [[0.3, 0.3, 0.3], [0.3, 0.3, 0.3]],  # constant: row-major order
        ]
    )
    assert pixel_order(maps).tolist() == [[1, 4, 0, 2, 3, 5], [0, 1, 2, 3, 4, 5]]
    # rank[p] = position of p in the order
    assert pixel_rank(maps).tolist() == [[2, 0, 3, 4, 1, 5], [0, 1, 2, 3, 4, 5]]


def test_pixel_order_ties_on_a_large_map():
    maps = torch.zeros(1, 224, 224)
    maps[0, 100:, :] = 1.0
    order = pixel_order(maps)[0]
    expected = torch.cat([torch.arange(100 * 224, 224 * 224), torch.arange(100 * 224)])
    assert torch.equal(order, expected)


def test_steps_for():
    assert steps_for(224, 224) == (224, 224)
    assert steps_for(4, 4, 5) == (5, 4)  # ceil(16 / 5) = 4: counts 0, 4, 8, 12, 16, 16
    assert steps_for(2, 3) == (3, 2)  # not square: max side
    assert steps_for(2, 3, 4) == (4, 2)
    assert steps_for(2, 2, 10) == (10, 1)
    for bad in (0, -1, 2.5):
        with pytest.raises(BenchmarkError):
            steps_for(4, 4, bad)


# --- curves worked out by hand ----------------------------------------------------------

# One 2x2 image (per-pixel channel mean v, the channels differ) whose blur is its mean 0.45.
V = torch.tensor([[1.0, 0.0], [0.6, 0.2]])
D = torch.tensor([[-0.1, 0.1], [0.2, -0.1]])
IMAGE = torch.stack([V, V + D, V - D])
WEIGHTS = torch.tensor([0.4, 0.3, 0.2, 0.1])  # p(class 0) = sum_p w_p * mean_c x[c, p]


def linear_two_class(images: torch.Tensor) -> torch.Tensor:
    p0 = (images.mean(1).flatten(1) * WEIGHTS).sum(1)
    return torch.stack([p0, 1 - p0], dim=1)


# Sample 0: class 0, map with a tie -> order 1, 2, 3, 0. Sample 1: class 1, constant map ->
# order 0, 1, 2, 3. With p0(x) = 0.4*1 + 0.2*0.6 + 0.1*0.2 = 0.54 and p0(blurred) = 0.45, each
# step moves one pixel p between v_p and 0.45, changing p0 by w_p * (new - old).
MAPS = torch.stack([torch.tensor([[0.2, 0.9], [0.9, 0.5]]), torch.full((2, 2), 0.7)])
CLASSES = torch.tensor([0, 1])
DELETION = [[0.54, 0.675, 0.645, 0.67, 0.45], [1 - 0.54, 1 - 0.32, 1 - 0.455, 1 - 0.425, 1 - 0.45]]
INSERTION = [[0.45, 0.315, 0.345, 0.32, 0.54], [1 - 0.45, 1 - 0.67, 1 - 0.535, 1 - 0.565, 1 - 0.54]]


def _curves(n_steps=None, score="original_class", chunk_size=16, score_fn=linear_two_class, sigma=HALF_SIGMA):
    return insertion_deletion_curves(
        score_fn,
        IMAGE.expand(2, 3, 2, 2),
        MAPS,
        CLASSES,
        n_steps=n_steps,
        chunk_size=chunk_size,
        blur_kernel=3,
        blur_sigma=sigma,
        score=score,
    )


def test_curves_by_hand():
    insertion, deletion = _curves(n_steps=4)
    torch.testing.assert_close(deletion, torch.tensor(DELETION))
    torch.testing.assert_close(insertion, torch.tensor(INSERTION))


def test_curves_when_steps_do_not_divide_the_pixels():
    # 4 pixels, 3 steps: ceil(4 / 3) = 2 pixels per step, counts 0, 2, 4, 4.
    insertion, deletion = _curves(n_steps=3)
    torch.testing.assert_close(deletion[0], torch.tensor([0.54, 0.645, 0.45, 0.45]))
    torch.testing.assert_close(insertion[0], torch.tensor([0.45, 0.345, 0.54, 0.54]))
    # default n_steps for 2x2 = 2: one pixel pair per step
    insertion, deletion = _curves()
    torch.testing.assert_close(deletion[1], torch.tensor([0.46, 1 - 0.455, 0.55]))


def test_max_class_scores_the_top_probability():
    insertion, deletion = _curves(n_steps=4, score="max_class")
    torch.testing.assert_close(deletion[0], torch.tensor([0.54, 0.675, 0.645, 0.67, 0.55]))
    torch.testing.assert_close(insertion[0], torch.tensor([0.55, 0.685, 0.655, 0.68, 0.54]))
    torch.testing.assert_close(insertion[1], torch.tensor([0.55, 0.67, 0.535, 0.565, 0.54]))


def test_chunk_size_does_not_change_the_curves_and_bounds_the_batch():
    seen: list[int] = []

    def recording(images):
        seen.append(len(images))
        return linear_two_class(images)

    reference = _curves(n_steps=4, chunk_size=1000)
    for chunk_size in (1, 3, 7):
        seen.clear()
        curves = _curves(n_steps=4, chunk_size=chunk_size, score_fn=recording)
        assert torch.equal(curves[0], reference[0]) and torch.equal(curves[1], reference[1])
        assert max(seen) == chunk_size and sum(seen) == 2 * 2 * 5  # (image, step, curve)


def test_curve_auc_by_hand():
    curves = torch.tensor([[1.0, 0.5, 0.0], [0.2, 0.4, 0.6], [0.3, 0.3, 0.3]])
    # trapezoids of width 1/2: (0.75 + 0.25) / 2 = 0.5; (0.3 + 0.5) / 2 = 0.4; 0.3
    torch.testing.assert_close(curve_auc(curves), torch.tensor([50.0, 40.0, 30.0]))
    # the hand curves: (sum - first/2 - last/2) / 4
    torch.testing.assert_close(curve_auc(torch.tensor(DELETION[:1] + INSERTION[:1])), torch.tensor([62.125, 36.875]))
    with pytest.raises(ValueError):
        curve_auc(torch.tensor([[0.5]]))


def test_insertion_deletion_metric_classes():
    insertion, deletion = _curves(n_steps=4)
    ins, dele = Insertion(), Deletion()
    ins.update(torch.tensor([7, 3]), insertion)
    dele.update(torch.tensor([7, 3]), deletion)
    dele.update(torch.tensor([7]), torch.zeros(1, 5))  # a repeat of id 7: ignored
    ins_auc, del_auc = curve_auc(insertion), curve_auc(deletion)
    assert ins.compute().item() == pytest.approx(ins_auc.mean().item())
    assert dele.compute().item() == pytest.approx(del_auc.mean().item())
    assert dele.per_sample()[0].tolist() == [3, 7]
    torch.testing.assert_close(dele.per_sample()[1], del_auc.flip(0))
    torch.testing.assert_close(dele.mean_curve(), deletion.mean(0))
    torch.testing.assert_close(ins.mean_curve(), insertion.mean(0))
    assert Insertion.higher_is_better is True and Deletion.higher_is_better is False


# --- a 4x4 case against a straightforward loop with OpenCV's blur --------------------------


def test_curves_match_a_loop_with_opencv_blur():
    generator = torch.Generator().manual_seed(3)
    images = torch.rand(2, 3, 4, 4, generator=generator, dtype=torch.float64)  # cv2 agrees to 1e-15
    maps = torch.tensor(
        [
            [
                [0.1, 0.8, 0.8, 0.0],
                [0.5, 0.5, 0.9, 0.2],
                [0.5, 0.3, 0.0, 0.7],
                [0.6, 0.1, 0.4, 0.5],
            ],
            [[0.2] * 4] * 4,  # constant map: row-major order
        ]
    )
    orders = [[6, 1, 2, 11, 12, 4, 5, 8, 15, 14, 9, 7, 0, 13, 3, 10], list(range(16))]
    assert pixel_order(maps).tolist() == orders
    # 3 classes, logits linear in the pixels
    weights = torch.rand(3, 48, generator=generator, dtype=torch.float64)

    def score_fn(batch):
        return (torch.einsum("nchw,kchw->nk", batch, weights.view(3, 3, 4, 4)) * 3).softmax(1)

    classes = torch.tensor([2, 0])
    insertion, deletion = insertion_deletion_curves(
        score_fn, images, maps, classes, n_steps=5, blur_kernel=3, blur_sigma=0.8
    )
    assert insertion.shape == deletion.shape == (2, 6)  # 16 pixels, 4 per step, last saturates

    for b in range(2):
        hwc = np.ascontiguousarray(images[b].permute(1, 2, 0).numpy())
        blurred = torch.from_numpy(cv2.GaussianBlur(hwc, (3, 3), 0.8)).permute(2, 0, 1)
        for k, count in enumerate([0, 4, 8, 12, 16, 16]):
            chosen = orders[b][:count]
            removed, inserted = images[b].clone().view(3, 16), blurred.clone().view(3, 16)
            removed[:, chosen] = blurred.reshape(3, 16)[:, chosen]
            inserted[:, chosen] = images[b].reshape(3, 16)[:, chosen]
            probs = score_fn(torch.stack([inserted.view(3, 4, 4), removed.view(3, 4, 4)]))
            expected_ins, expected_del = probs[:, classes[b]]
            assert insertion[b, k].item() == pytest.approx(expected_ins.item(), abs=1e-12)
            assert deletion[b, k].item() == pytest.approx(expected_del.item(), abs=1e-12)
    assert (deletion[:, 0] - deletion[:, -1]).abs().min() > 1e-3  # the perturbation matters


def test_option_checks():
    with pytest.raises(BenchmarkError):
        _curves(score="highest")
    with pytest.raises(BenchmarkError):
        _curves(chunk_size=0)
    with pytest.raises(BenchmarkError):
        insertion_deletion_curves(linear_two_class, IMAGE[None], MAPS[:1], CLASSES[:1], blur_kernel=2)
    # sigma 0 = OpenCV's rule for k = 3: 0.8, as cv2.GaussianBlur(x, (3, 3), 0)
    zero, explicit = _curves(n_steps=4, sigma=0.0), _curves(n_steps=4, sigma=0.8)
    assert torch.equal(zero[1], explicit[1]) and not torch.equal(zero[1], _curves(n_steps=4)[1])
    with pytest.raises(BenchmarkError):  # the default 11x11 blur does not fit a 2x2 image
        insertion_deletion_curves(linear_two_class, IMAGE[None], MAPS[:1], CLASSES[:1])
