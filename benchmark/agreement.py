"""The metric agreement of a ``table``: Kendall's tau-b between the method rankings of every
pair of metrics, with bootstrap intervals, and how often each method keeps its rank (computed
by :func:`benchmark.metrics.functional.agreement.metric_agreement`); as markdown under the table, a dict
for ``table.json`` / W&B, and a figure (``agreement.png``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.markdown_table import markdown_table, metric_header
from benchmark.metrics.functional.agreement import Agreement, metric_agreement
from benchmark.metrics.selection import HIGHER_IS_BETTER


@dataclass(frozen=True)
class MethodScores:
    """One method's per-image values: ``columns[metric]`` aligned with ``sample_ids``."""

    method: str
    sample_ids: Sequence[int]
    columns: dict[str, Sequence[float]]

    @classmethod
    def of(cls, evaluation) -> MethodScores:
        """The per-image values of an evaluation (``benchmark.run_results.Evaluation`` or a finished run
        folder read back): its ``content["method"]`` and ``results``."""
        return cls(evaluation.content["method"], evaluation.results.sample_ids, evaluation.results.columns)


@dataclass(frozen=True)
class MetricAgreement:
    """The agreement of ``metrics`` over ``methods`` (see :class:`Agreement`)."""

    metrics: list[str]
    methods: list[str]
    result: Agreement
    left_out: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """For table.json: tau-b with its interval per metric pair, ranks and their stability."""
        r = self.result

        def number(value: float) -> float | None:
            return None if math.isnan(value) else round(float(value), 6)

        pairs = [
            {
                "metric_a": a,
                "metric_b": b,
                "kendall_tau_b": number(r.tau[i, j]),
                "ci95": [number(r.low[i, j]), number(r.high[i, j])],
            }
            for i, a in enumerate(self.metrics)
            for j, b in enumerate(self.metrics)
            if i < j
        ]
        ranks = {
            metric: {
                method: {
                    "rank": None if math.isnan(r.ranks[k, m]) else int(r.ranks[k, m]),
                    "stability": number(r.stability[k, m]),
                }
                for m, method in enumerate(self.methods)
            }
            for k, metric in enumerate(self.metrics)
        }
        return {
            "metrics": self.metrics,
            "methods": self.methods,
            "images": r.images,
            "resamples": r.resamples,
            "pairs": pairs,
            "ranks": ranks,
            "left_out": self.left_out,
        }


def agreement_of(
    scores: list[MethodScores], keys: Sequence[str], n_resamples: int, seed: int
) -> MetricAgreement | None:
    """The agreement of the metrics ``keys`` over the methods of ``scores``, on the images every
    method scored; ``None`` with fewer than 2 methods or 2 metrics. A metric no method could
    compute (all undefined, or not computable) is left out, with the reason."""
    if len(scores) < 2:
        return None
    common = sorted(set.intersection(*(set(s.sample_ids) for s in scores)))
    if not common:
        return None
    left_out: dict[str, str] = {}
    usable = []
    for key in keys:
        defined = [s.method for s in scores if any(math.isfinite(v) for v in s.columns[key])]
        if len(defined) < 2:
            left_out[key] = f"defined for {len(defined)} method(s)"
        else:
            usable.append(key)
    if len(usable) < 2:
        return None
    rows = {s.method: {i: r for r, i in enumerate(s.sample_ids)} for s in scores}
    values = torch.tensor(
        [[[float(s.columns[key][rows[s.method][i]]) for i in common] for s in scores] for key in usable],
        dtype=torch.float64,
    )
    values = torch.where(torch.isfinite(values), values, torch.full_like(values, float("nan")))
    result = metric_agreement(values, [HIGHER_IS_BETTER[k] for k in usable], n_resamples, seed)
    return MetricAgreement(usable, [s.method for s in scores], result, left_out)


def tau_cell(agreement: MetricAgreement, i: int, j: int) -> str:
    """``+0.71 [+0.43, +1.00]``: tau-b of metrics i and j with its interval ("1" on the diagonal)."""
    r = agreement.result
    if i == j:
        return "1"
    tau, low, high = (float(x[i, j]) for x in (r.tau, r.low, r.high))
    if math.isnan(tau):
        return "-"
    return f"{tau:+.2f} [{low:+.2f}, {high:+.2f}]"


def agreement_markdown(agreement: MetricAgreement) -> str:
    """Two markdown tables: tau-b between the metrics' rankings, then each method's rank and the
    share of resamples keeping it."""
    r = agreement.result
    titles = [metric_header(k) for k in agreement.metrics]
    tau_rows = [[titles[i], *(tau_cell(agreement, i, j) for j in range(len(titles)))] for i in range(len(titles))]
    rank_rows = []
    for m, method in enumerate(agreement.methods):
        cells = []
        for k in range(len(titles)):
            rank, share = float(r.ranks[k, m]), float(r.stability[k, m])
            cells.append("-" if math.isnan(rank) else f"{int(rank)} ({share:.0%})")
        rank_rows.append([method, *cells])
    text = (
        f"Metric agreement: Kendall's tau-b between the two metrics' rankings of the {len(agreement.methods)} methods "
        f"(+1 same order, -1 reversed), "
        f"[95% bootstrap interval over the {r.images} images, {r.resamples} resamples]:\n\n"
        + markdown_table(["", *titles], tau_rows)
        + "\n\nRank of each method under each metric (1 = best) and the share of resamples in which it keeps that "
        "rank:\n\n" + markdown_table(["method", *titles], rank_rows) + "\n"
    )
    if agreement.left_out:
        text += (
            "\nLeft out of the agreement: "
            + "; ".join(f"{metric_header(k)} ({why})" for k, why in agreement.left_out.items())
            + "\n"
        )
    return text


def agreement_figure(agreement: MetricAgreement, path: Path, title: str = "") -> Path:
    """``agreement.png``: :func:`draw_agreement` saved to ``path``."""
    from benchmark.figures import save_figure

    return save_figure(draw_agreement(agreement), path, title, title_size=9)


def draw_agreement(agreement: MetricAgreement):
    """The figure of the metric-by-metric tau-b matrix (left) and the rank stability (right),
    annotated."""
    import numpy as np

    from benchmark.figures import plt

    r = agreement.result
    titles = [metric_header(k) for k in agreement.metrics]
    k = len(titles)
    fig, (left, right) = plt.subplots(
        1,
        2,
        figsize=(3.5 + 1.25 * k + 0.9 * k, 2.2 + 0.75 * max(k, len(agreement.methods))),
        gridspec_kw={"width_ratios": [1.2 * k, k]},
    )
    image = left.imshow(r.tau.numpy(), cmap="RdBu", vmin=-1, vmax=1)
    for i in range(k):
        for j in range(k):
            dark = abs(float(r.tau[i, j])) > 0.6 if i != j else True
            left.text(
                j,
                i,
                "1" if i == j else tau_cell(agreement, i, j).replace(" [", "\n["),
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if dark else "black",
            )
    left.set_xticks(range(k), titles, rotation=45, ha="right", fontsize=7)
    left.set_yticks(range(k), titles, fontsize=7)
    left.set_title("Kendall's tau-b of the method rankings", fontsize=8)
    fig.colorbar(image, ax=left, shrink=0.7)
    stability = r.stability.T.numpy()  # [M, K]
    right.imshow(np.nan_to_num(stability, nan=0.0), cmap="Greens", vmin=0, vmax=1)
    for m in range(stability.shape[0]):
        for j in range(k):
            rank = float(r.ranks[j, m])
            text = "-" if math.isnan(rank) else f"#{int(rank)}\n{stability[m, j]:.0%}"
            right.text(
                j,
                m,
                text,
                ha="center",
                va="center",
                fontsize=6.5,
                color="white" if np.nan_to_num(stability[m, j]) > 0.6 else "black",
            )
    right.set_xticks(range(k), titles, rotation=45, ha="right", fontsize=7)
    right.set_yticks(range(len(agreement.methods)), agreement.methods, fontsize=7)
    right.set_title("rank (share of resamples keeping it)", fontsize=8)
    return fig
