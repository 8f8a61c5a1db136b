"""ROAD (metrics/functional/road.py, metrics/road.py): the imputed pixels of small cases worked
out by hand, the imputation equal to grad-cam's NoisyLinearImputer (scipy's sparse solve), the
scores equal to grad-cam's ROADMostRelevantFirst / ROADLeastRelevantFirst with the noise off,
the noise seeded per sample id, and the options' one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.metrics import SaliencyScorer
from benchmark.metrics.functional.road import linear_imputation, removal_counts, removed_pixels, road_scores
from tests.methods.test_cam import _images, _tiny, _top1

E, D = 1 / 6, 1 / 12  # edge and diagonal neighbour weights
# grad-cam compares a torch map with a numpy threshold (NumPy 2 deprecation inside grad-cam)
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")


def _grid(seed: int = 0, size: int = 3) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _impute(image: torch.Tensor, removed: list[tuple[int, int]]) -> torch.Tensor:
    mask = torch.zeros(1, 1, *image.shape[-2:], dtype=torch.bool)
    for row, col in removed:
        mask[0, 0, row, col] = True
    return linear_imputation(image, mask, tolerance=1e-12)[0, 0]


def test_a_removed_centre_is_the_weighted_mean_of_its_eight_neighbours():
    v = _grid(1)[0]
    got = _impute(v[None], [(1, 1)])
    expected = E * (v[:, 0, 1] + v[:, 1, 0] + v[:, 1, 2] + v[:, 2, 1]) + D * (
        v[:, 0, 0] + v[:, 0, 2] + v[:, 2, 0] + v[:, 2, 2]
    )
    torch.testing.assert_close(got[:, 1, 1], expected, atol=1e-12, rtol=0)
    kept = torch.ones(3, 3, dtype=torch.bool)
    kept[1, 1] = False
    assert torch.equal(got[:, kept], v[:, kept])  # kept pixels are untouched


def test_a_removed_corner_renormalizes_the_weights_of_the_neighbours_inside_the_image():
    v = _grid(2)[0]
    got = _impute(v[None], [(0, 0)])
    # neighbours inside: (0,1) and (1,0) with 1/6, (1,1) with 1/12 -> weights 2/5, 2/5, 1/5
    expected = (2 * v[:, 0, 1] + 2 * v[:, 1, 0] + v[:, 1, 1]) / 5
    torch.testing.assert_close(got[:, 0, 0], expected, atol=1e-12, rtol=0)


def test_two_adjacent_removed_pixels_are_solved_jointly():
    v = _grid(3)[0]
    got = _impute(v[None], [(1, 1), (0, 1)])
    # centre c (all 8 neighbours inside, weights sum 1) and top t = (0, 1) (5 neighbours: 1/6 +
    # 1/6 + 1/12 + 1/12 + 1/6 = 2/3), each its neighbours' weighted mean:
    #   c = (1/6) t + k_c,          k_c = the known neighbours of c
    #   (2/3) t = (1/6) c + k_t,    k_t = the known neighbours of t
    k_c = E * (v[:, 1, 0] + v[:, 1, 2] + v[:, 2, 1]) + D * (v[:, 0, 0] + v[:, 0, 2] + v[:, 2, 0] + v[:, 2, 2])
    k_t = E * (v[:, 0, 0] + v[:, 0, 2]) + D * (v[:, 1, 0] + v[:, 1, 2])
    t = (k_t + k_c / 6) / (2 / 3 - 1 / 36)  # substitute c into the second equation
    c = t / 6 + k_c
    torch.testing.assert_close(got[:, 0, 1], t, atol=1e-12, rtol=0)
    torch.testing.assert_close(got[:, 1, 1], c, atol=1e-12, rtol=0)


def test_the_imputation_equals_grad_cams_sparse_solve():
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    images = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    maps = torch.rand(2, 20, 24, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    percentages = (10, 50, 90)
    for most_relevant_first in (True, False):
        removed = removed_pixels(maps, percentages, most_relevant_first)
        ours = linear_imputation(images, removed, tolerance=1e-10)
        imputer = NoisyLinearImputer(noise=0.0)
        for b in range(2):
            for p in range(len(percentages)):
                keep = (~removed[b, p]).double()  # grad-cam's mask: 1 = kept
                theirs = imputer(images[b].float(), keep.float())
                torch.testing.assert_close(ours[b, p].float(), theirs, atol=2e-6, rtol=0)


def _blob(size: int, seed: int) -> torch.Tensor:
    """A CAM-like map: one smooth bump off the centre (its top and bottom share are contiguous holes)."""
    rows = torch.arange(size, dtype=torch.float64)[:, None]
    columns = torch.arange(size, dtype=torch.float64)[None, :]
    bump = torch.exp(-((rows - 0.4 * size) ** 2 + (columns - 0.55 * size) ** 2) / (2 * (0.25 * size) ** 2))
    return bump[None] + 1e-3 * torch.rand(
        1, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def test_large_contiguous_holes_equal_grad_cams_sparse_solve_in_few_multigrid_steps(monkeypatch):
    """The case the multigrid is for: a CAM's holes up to 90% of a 96 x 96 image (five grids).
    Jacobi-preconditioned conjugate gradients (the solver before) took 350-400 steps here; the multigrid <= 30."""
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    from benchmark.metrics.functional import road as road_functional

    cycles = []
    v_cycle = road_functional._v_cycle
    monkeypatch.setattr(
        road_functional,
        "_v_cycle",
        lambda grids, residual, level=0: (
            cycles.append(level) if level == 0 else None,
            v_cycle(grids, residual, level),
        )[1],
    )
    images = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    maps = _blob(96, seed=15)
    imputer = NoisyLinearImputer(noise=0.0)
    for most_relevant_first in (True, False):
        removed = removed_pixels(maps, (10, 50, 90), most_relevant_first)
        assert len(road_functional._grids(removed[:, :, None].reshape(-1, 1, 96, 96).double())) == 5
        cycles.clear()
        ours = linear_imputation(images, removed, tolerance=1e-10)
        assert 0 < cycles.count(0) <= 30, cycles.count(0)
        for p in range(3):
            theirs = imputer(images[0].float(), (~removed[0, p]).float())
            torch.testing.assert_close(ours[0, p].float(), theirs, atol=2e-6, rtol=0)
        # the float32 default (tolerance 1e-5) stays far below the imputation noise (0.01)
        default = linear_imputation(images.float(), removed)
        assert (default.double() - ours).abs().max() < 1e-3


def test_a_system_solved_by_the_first_guess_leaves_the_batch_at_once():
    """A constant image is solved by the first guess; it leaving the batch before the first
    step wrote the solution into itself (a RuntimeError, on an ImageNet image's Grad-CAM++ map)."""
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(18))
    images[0] = 0.5
    maps = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(19))
    removed = removed_pixels(maps, (50,), True)
    imputed = linear_imputation(images, removed)
    assert torch.equal(imputed[0], torch.full_like(imputed[0], 0.5))
    torch.testing.assert_close(imputed[1:], linear_imputation(images[1:], removed[1:]))


def test_the_multigrid_transfers_are_each_others_transpose():
    """Conjugate gradients need a symmetric preconditioner: <R r, y> = <r, P y> on odd and even grids."""
    from benchmark.metrics.functional.road import _prolong, _restrict

    for fine, coarse in (((12, 10), (6, 5)), ((13, 7), (7, 4))):
        r = torch.rand(2, 1, *fine, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
        y = torch.rand(2, 1, *coarse, generator=torch.Generator().manual_seed(17), dtype=torch.float64)
        assert torch.isclose((_restrict(r, coarse) * y).sum(), (r * _prolong(y, fine)).sum(), rtol=1e-12)
    # bilinear on a cell-centred grid: a constant stays constant inside, 3/4 + 1/4 taps by hand
    assert torch.equal(
        _prolong(torch.ones(1, 1, 3, 3, dtype=torch.float64), (6, 6))[0, 0, 1:-1, 1:-1],
        torch.ones(4, 4, dtype=torch.float64),
    )
    impulse = torch.zeros(1, 1, 2, 4, dtype=torch.float64)
    impulse[0, 0, 0, 1] = 1  # row 0 -> coarse row 0 with 3/4; column 1 -> coarse 0 with 3/4, coarse 1 with 1/4
    assert _restrict(impulse, (1, 2)).tolist() == [[[[0.75 * 0.75, 0.75 * 0.25]]]]


def test_the_scores_equal_grad_cams_road_with_the_noise_off():
    """grad-cam's percentile q removes the pixels at or above the q-th percentile (MoRF), i.e.
    100 - q percent; the counts are checked equal before the scores are compared."""
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        PerturbationConfidenceMetric,
        RemoveLeastRelevantFirst,
        RemoveMostRelevantFirst,
    )
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model = _tiny(seed=6)
    images = _images(batch=3, size=32, seed=7)
    maps = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(8))  # no ties
    classes = _top1(model, images)

    def probability(x, c):
        with torch.no_grad():
            return model(x).softmax(dim=-1).gather(1, c[:, None]).squeeze(1)

    percentages = (12.5, 25, 50, 75, 87.5)  # grad-cam's and this count agree for these on 32 x 32
    for most_relevant_first, removal in ((True, RemoveMostRelevantFirst), (False, RemoveLeastRelevantFirst)):
        ours = road_scores(probability, images, maps, classes, percentages, most_relevant_first)
        for k, p in enumerate(percentages):
            q = 100 - p
            pixels = (maps >= torch.from_numpy(np.percentile(maps.numpy(), q, axis=(1, 2)))[:, None, None]).sum((1, 2))
            if not most_relevant_first:
                inverse = 1 - maps
                pixels = (
                    inverse >= torch.from_numpy(np.percentile(inverse.numpy(), q, axis=(1, 2)))[:, None, None]
                ).sum((1, 2))
            assert pixels.tolist() == [removal_counts(32 * 32, [p])[0]] * 3, (p, pixels)
            metric = PerturbationConfidenceMetric(removal(q, NoisyLinearImputer(noise=0.0)))
            targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes]
            theirs = metric(images, maps.numpy(), targets, model, return_diff=False)
            np.testing.assert_allclose(ours[:, k].numpy(), theirs, atol=2e-5, rtol=0)


def test_road_through_the_scorer_is_seeded_per_sample_and_kept_as_curves():
    model = _tiny(seed=9)
    images = _images(batch=4, size=32, seed=10)
    maps = torch.rand(4, 32, 32, generator=torch.Generator().manual_seed(11))
    classes = _top1(model, images)
    with torch.no_grad():
        base = model(images).softmax(-1).gather(1, classes[:, None]).squeeze(1)

    def score(ids, rows, noise=0.01, percentages=(20, 60)):
        scorer = SaliencyScorer(
            n_steps=4, extra=["road_morf", "road_lerf"], road_noise=noise, road_percentages=list(percentages)
        )
        values = scorer.update(model, lambda x, c: maps[rows], ids, images[rows], maps[rows], classes[rows], base[rows])
        return values, scorer

    whole, scorer = score([0, 1, 2, 3], [0, 1, 2, 3])
    pair, _ = score([2, 3], [2, 3])
    for key in ("road_morf", "road_lerf"):
        torch.testing.assert_close(pair[key], whole[key][2:], atol=1e-5, rtol=0)  # batch-independent noise
        assert scorer.last_curves[key].shape == (4, 2)
        torch.testing.assert_close(scorer.last_curves[key].mean(dim=1) * 100, whole[key], atol=1e-4, rtol=0)
    quiet, _ = score([0, 1, 2, 3], [0, 1, 2, 3], noise=0.0)
    assert not torch.equal(quiet["road_morf"], whole["road_morf"])  # the noise is there, and seeded
    again, _ = score([0, 1, 2, 3], [0, 1, 2, 3])
    assert torch.equal(again["road_morf"], whole["road_morf"])
    assert scorer.info()["road_morf"] == {"title": "ROAD MoRF", "higher_is_better": False}
    assert scorer.info()["road_lerf"] == {"title": "ROAD LeRF", "higher_is_better": True}


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"road_percentages": [0, 50]},
            "--metrics.road_percentages: road percentages must be distinct numbers in (0, 100)",
        ),
        ({"road_percentages": [50, 50]}, "--metrics.road_percentages: road percentages must be distinct numbers"),
        ({"road_noise": -0.1}, "--metrics.road_noise: road noise must be a standard deviation >= 0"),
    ],
)
def test_bad_road_options_are_one_line_errors(options, message):
    with pytest.raises(BenchmarkError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SaliencyScorer(**options)


@pytest.mark.slow
def test_road_through_test_writes_its_curves_figure_and_records(tmp_path):
    import json

    from tests.support.cli_runs import run_in_process

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
            "--metrics.extra",
            "road_morf,road_lerf",
            "--metrics.road_percentages",
            "25,50,75",
            "--output",
            str(tmp_path / "runs"),
        ]
    )
    assert run.code == 0, run.err
    results = json.loads((run.run_dir / "results.json").read_text())
    for key in ("road_morf", "road_lerf"):
        assert len(results["mean_curves"][key]) == 3
        assert results["metrics"][key] == pytest.approx(100 * sum(results["mean_curves"][key]) / 3, abs=1e-3)
    assert results["metric_info"]["road_morf"] == {"title": "ROAD MoRF", "higher_is_better": False}
    assert (run.run_dir / "road.png").stat().st_size > 0
    records = [
        json.loads(line) for line in (run.run_dir / "records").glob("*.jsonl").__next__().read_text().splitlines()
    ]
    assert all(len(record["curves"]["road_lerf"]) == 3 for record in records)
    assert "ROAD MoRF" in run.out and "ROAD LeRF" in run.out


@pytest.mark.slow
def test_a_killed_run_with_the_new_metrics_resumes_to_the_same_values(tmp_path):
    import json

    from tests.support.cli_runs import run_in_process

    args = [
        "test",
        "--method",
        "gradcam",
        "--limit",
        "3",
        "--batch-size",
        "1",
        "--metrics.n_steps",
        "4",
        "--logger",
        "none",
        "--overlay-images",
        "0",
        "--metrics.road_percentages",
        "50",
        "--metrics.extra",
        "road_morf,random_logit,max_sensitivity,randomization",
        "--metrics.sensitivity_samples",
        "2",
        "--metrics.randomization_steps",
        "2",
        "--output",
        str(tmp_path),
    ]
    first = run_in_process(args)
    assert first.code == 0, first.err
    expected = json.loads((first.run_dir / "results.json").read_text())
    (first.run_dir / "results.json").unlink()  # what a kill after the first image leaves
    records = first.run_dir / "records" / "rank0.jsonl"
    records.write_text(records.read_text().splitlines()[0] + "\n")
    resumed = run_in_process(["test", "--resume", str(first.run_dir)])
    assert resumed.code == 0, resumed.err
    assert "1 of 3 images done, 2 to go" in resumed.err
    got = json.loads((first.run_dir / "results.json").read_text())
    for key in ("road_morf", "random_logit", "max_sensitivity", "randomization"):
        assert got["metrics"][key] == pytest.approx(expected["metrics"][key], abs=1e-6), key
    assert got["metric_details"]["randomization"]["spearman_per_stage"] == pytest.approx(
        expected["metric_details"]["randomization"]["spearman_per_stage"], abs=1e-6
    )
    assert got["mean_curves"]["road_morf"] == pytest.approx(expected["mean_curves"]["road_morf"], abs=1e-7)


def test_the_imputation_runs_in_full_precision_under_bf16_autocast():
    """Without switching autocast off, its convolutions ran in bfloat16 (pixels off by 6e-3)."""
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(12))
    removed = removed_pixels(torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(13)), (50,), True)
    plain = linear_imputation(images, removed)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_bf16 = linear_imputation(images, removed)
    assert under_bf16.dtype == torch.float32
    torch.testing.assert_close(under_bf16, plain)
