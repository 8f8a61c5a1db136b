"""Bootstrap intervals against brute force and the normal closed form; paired comparisons."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from benchmark.metrics.functional.bootstrap import bootstrap_ci, bootstrap_means, paired_bootstrap
from benchmark.significance import BEST_MARK, TIED_MARK, marks, pair_tests


def test_interval_matches_the_exact_bootstrap_distribution_by_brute_force():
    values = np.array([0.0, 1.0, 3.0, 7.0, 20.0])
    n = len(values)
    # every one of the n^n resamples is equally likely: the exact distribution of the mean
    exact = np.sort([values[list(index)].mean() for index in itertools.product(range(n), repeat=n)])
    low, high = bootstrap_ci(torch.tensor(values), n_resamples=40_000, seed=1)

    def cdf(x):
        return np.searchsorted(exact, x, side="right") / len(exact)

    slack = 0.004  # Monte Carlo error of 40k resamples around the 2.5% / 97.5% quantiles
    for bound, q in ((low, 0.025), (high, 0.975)):
        # ``bound`` is a q-quantile of the exact distribution: P(X < bound) <= q <= P(X <= bound)
        assert cdf(bound - 1e-9) <= q + slack
        assert cdf(bound) >= q - slack


def test_interval_matches_the_normal_closed_form_for_many_images():
    rng = np.random.default_rng(0)
    values = rng.normal(40.0, 10.0, size=1500)
    low, high = bootstrap_ci(torch.tensor(values), n_resamples=4000, seed=0)
    half = 1.959964 * values.std(ddof=0) / math.sqrt(len(values))
    assert low == pytest.approx(values.mean() - half, abs=0.06 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.06 * half)


def test_seeded_and_undefined_values_left_out():
    values = [1.0, float("nan"), 2.0, 5.0, float("inf")]
    assert bootstrap_ci(values, 500, seed=3) == bootstrap_ci(values, 500, seed=3)
    assert bootstrap_ci(values, 500, seed=3) == bootstrap_ci([1.0, 2.0, 5.0], 500, seed=3)
    assert bootstrap_ci([4.0], 100) == (4.0, 4.0)
    assert all(math.isnan(v) for v in bootstrap_ci([float("nan")], 100))
    means = bootstrap_means([1.0, 2.0], 1000, seed=0)
    assert set(means.unique().tolist()) <= {1.0, 1.5, 2.0}


def test_paired_bootstrap_is_the_bootstrap_of_the_per_image_differences():
    ids_a, a = [0, 1, 2, 3, 4], [10.0, 12.0, float("nan"), 9.0, 15.0]
    ids_b, b = [4, 3, 2, 1, 0], [11.0, 7.0, 8.0, 12.5, 6.0]  # another order; image 2 undefined in a
    result = paired_bootstrap(ids_a, a, ids_b, b, n_resamples=2000, seed=5)
    diffs = [10 - 6.0, 12 - 12.5, 9 - 7.0, 15 - 11.0]
    assert result.images == 4
    assert result.difference == pytest.approx(np.mean(diffs))
    assert (result.low, result.high) == bootstrap_ci(diffs, 2000, seed=5)


def test_identical_methods_are_never_significantly_different():
    rng = np.random.default_rng(1)
    for trial in range(20):
        values = rng.uniform(0, 100, size=int(rng.integers(2, 40))).tolist()
        ids = list(range(len(values)))
        result = paired_bootstrap(ids, values, ids, values, n_resamples=300, seed=trial)
        assert not result.significant and result.low == result.high == 0.0


def test_a_clear_difference_is_significant():
    ids = list(range(30))
    a = [50.0 + i % 3 for i in ids]
    result = paired_bootstrap(ids, a, ids, [v - 10 for v in a], n_resamples=500)
    assert result.significant and result.low > 0


class _Results:
    def __init__(self, values):
        self.sample_ids = list(range(len(values)))
        self.columns = {"insertion": values}


class _Evaluation:
    def __init__(self, name, values):
        self.results = _Results(values)
        self.content = {"method": name, "metrics": {"insertion": float(np.mean(values))}}


def test_table_marks_the_best_and_the_ties():
    base = [30.0, 35.0, 40.0, 45.0, 38.0, 33.0]
    evaluations = [
        _Evaluation("good", base),
        _Evaluation("copy", list(base)),  # the same method under another name
        _Evaluation("bad", [v - 20 for v in base]),
    ]
    tests = pair_tests(evaluations, ["insertion"], n_resamples=500, seed=0)
    assert len(tests) == 3
    got = marks([e.content for e in evaluations], ["insertion"], tests)
    assert got[("good", "insertion")] == BEST_MARK
    assert got[("copy", "insertion")] == TIED_MARK
    assert got[("bad", "insertion")] == ""
