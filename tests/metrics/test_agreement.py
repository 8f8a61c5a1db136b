"""Metric agreement (metrics/functional/agreement.py, benchmark/agreement.py): Kendall's tau-b
against scipy, ranks and their bootstrap stability by hand, NaN handling, and the table's
report (markdown, table.json, figure)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.agreement import MethodScores, agreement_markdown, agreement_of
from benchmark.metrics.functional.agreement import competition_ranks, kendall_tau_b, metric_agreement, oriented_means


def test_kendall_tau_b_equals_scipy_with_ties_and_missing_methods():
    from scipy.stats import kendalltau

    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (6, 7), generator=generator).double()  # many ties
    scores[2, 3] = float("nan")  # a method one metric cannot score
    ours = kendall_tau_b(scores)
    for i in range(6):
        for j in range(6):
            keep = torch.isfinite(scores[i]) & torch.isfinite(scores[j])
            theirs = kendalltau(scores[i][keep].numpy(), scores[j][keep].numpy()).statistic
            if math.isnan(theirs):
                assert math.isnan(ours[i, j])
            else:
                assert float(ours[i, j]) == pytest.approx(theirs, abs=1e-12), (i, j)
    batched = kendall_tau_b(torch.stack([scores, -scores]))  # any leading dimensions
    torch.testing.assert_close(batched[0], ours, equal_nan=True)
    torch.testing.assert_close(batched[1], ours, equal_nan=True)  # both reversed: same agreement


def test_ranks_are_oriented_and_share_ties():
    values = torch.tensor(
        [
            [[1.0, 3.0], [2.0, 2.0], [5.0, float("nan")]],  # higher is better
            [[1.0, 1.0], [4.0, 4.0], [1.0, 1.0]],
        ],
        dtype=torch.float64,
    )  # lower is better
    means = oriented_means(values, [True, False])
    torch.testing.assert_close(means, torch.tensor([[2.0, 2.0, 5.0], [-1.0, -4.0, -1.0]], dtype=torch.float64))
    assert competition_ranks(means).tolist() == [[2.0, 2.0, 1.0], [1.0, 3.0, 1.0]]


def test_two_metrics_that_order_the_methods_alike_agree_and_a_reversed_one_disagrees():
    # 3 methods, 40 images: metric 0 and 1 rank A > B > C clearly, metric 2 (lower is better) ranks C best
    generator = torch.Generator().manual_seed(1)
    base = torch.tensor([30.0, 20.0, 10.0])[:, None] + torch.randn(3, 40, generator=generator)
    values = torch.stack([base, 2 * base + 1, base])
    result = metric_agreement(values, [True, True, True], n_resamples=200, seed=0)
    assert result.tau[0, 1] == 1 and result.low[0, 1] == 1 and result.high[0, 1] == 1
    reversed_ = metric_agreement(torch.stack([base, -base]), [True, True], n_resamples=200, seed=0)
    assert reversed_.tau[0, 1] == -1
    oriented = metric_agreement(torch.stack([base, -base]), [True, False], n_resamples=200, seed=0)
    assert oriented.tau[0, 1] == 1  # lower is better: the same order once oriented
    assert result.ranks[0].tolist() == [1.0, 2.0, 3.0]
    assert (result.stability == 1).all()  # gaps of 10 standard deviations: every resample keeps the ranks


def test_rank_stability_is_the_share_of_resamples_keeping_the_rank_by_hand():
    """Two methods on 3 images: A = [1, 0, 0] (mean 1/3, rank 1), B = [0, 0, 0.5] (mean 1/6,
    rank 2). On a resample A keeps rank 1 when its mean is >= B's (a tie shares rank 1) and B
    keeps rank 2 only when A's is strictly greater; counted here on the same resamples."""
    values = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.5]]], dtype=torch.float64).repeat(2, 1, 1)
    result = metric_agreement(values, [True, True], n_resamples=300, seed=5)
    index = torch.randint(3, (300, 3), generator=torch.Generator().manual_seed(5))  # the same draws
    a, b = values[0, 0][index].mean(1), values[0, 1][index].mean(1)
    assert result.ranks[0].tolist() == [1.0, 2.0]
    assert float(result.stability[0, 0]) == pytest.approx(float((a >= b).double().mean()))
    assert float(result.stability[0, 1]) == pytest.approx(float((a > b).double().mean()))
    assert 0 < float((a > b).double().mean()) < float((a >= b).double().mean()) < 1  # ties occur: a real case


def test_the_report_leaves_out_metrics_too_few_methods_define():
    scores = [
        MethodScores(
            "a",
            [0, 1, 2],
            {"insertion": [3.0, 2.0, 1.0], "deletion": [1.0, 1.0, 1.0], "random_logit": [float("nan")] * 3},
        ),
        MethodScores(
            "b",
            [0, 1, 2, 3],
            {"insertion": [1.0, 1.0, 1.0, 9.0], "deletion": [2.0, 2.0, 2.0, 9.0], "random_logit": [5.0, 5.0, 5.0, 5.0]},
        ),
    ]
    agreement = agreement_of(scores, ["insertion", "deletion", "random_logit"], n_resamples=50, seed=0)
    assert agreement.metrics == ["insertion", "deletion"] and agreement.result.images == 3  # common images only
    assert agreement.left_out == {"random_logit": "defined for 1 method(s)"}
    # insertion: a (2.0) beats b (1.0); deletion (lower better): a (1.0) beats b (2.0) -> agree
    assert float(agreement.result.tau[0, 1]) == 1
    text = agreement_markdown(agreement)
    assert "Kendall's tau-b" in text and "Random Logit" in text and "1 (" in text
    as_dict = agreement.as_dict()
    assert as_dict["pairs"] == [
        {"metric_a": "insertion", "metric_b": "deletion", "kendall_tau_b": 1.0, "ci95": [1.0, 1.0]}
    ]
    assert as_dict["ranks"]["insertion"]["a"]["rank"] == 1
    assert agreement_of(scores[:1], ["insertion", "deletion"], 50, 0) is None
