"""Which differences between methods in a ``table`` are noise: paired bootstrap over the
images all methods were scored on (see :mod:`benchmark.metrics.functional.bootstrap`).

For every metric and every pair of methods the per-image differences are resampled; a pair
whose 95% interval of the mean difference contains 0 is *not significantly different*. The
table marks, per metric column, the best method and every method that is not significantly
different from it, and lists all such pairs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import combinations

from benchmark.markdown_table import metric_header
from benchmark.metrics.functional.bootstrap import CONFIDENCE_LEVEL, paired_bootstrap
from benchmark.metrics.selection import HIGHER_IS_BETTER

BEST_MARK = "*"
TIED_MARK = "~"


@dataclass(frozen=True)
class PairTest:
    """``mean(a) - mean(b)`` of one metric over the images both scored, with its interval."""

    metric: str
    method_a: str
    method_b: str
    difference: float
    low: float
    high: float
    images: int
    significant: bool

    def as_dict(self) -> dict:
        return asdict(self)


def pair_tests(evaluations: list, keys: list[str], n_resamples: int, seed: int) -> list[PairTest]:
    """Every pair of methods for every metric (``evaluations`` = benchmark.run_results.Evaluation)."""
    tests = []
    for key in keys:
        for a, b in combinations(evaluations, 2):
            result = paired_bootstrap(
                a.results.sample_ids,
                a.results.columns[key],
                b.results.sample_ids,
                b.results.columns[key],
                n_resamples=n_resamples,
                seed=seed,
            )
            tests.append(
                PairTest(
                    key,
                    a.content["method"],
                    b.content["method"],
                    result.difference,
                    result.low,
                    result.high,
                    result.images,
                    result.significant,
                )
            )
    return tests


def best_method(contents: list[dict], key: str) -> str | None:
    """The method with the best mean of ``key`` (first one on a tie), ``None`` if all undefined."""
    defined = [c for c in contents if c["metrics"].get(key) is not None and math.isfinite(c["metrics"][key])]
    if not defined:
        return None
    sign = 1 if HIGHER_IS_BETTER[key] else -1
    return max(defined, key=lambda c: sign * c["metrics"][key])["method"]


def marks(contents: list[dict], keys: list[str], tests: list[PairTest]) -> dict[tuple[str, str], str]:
    """``(method, metric) -> mark``: BEST_MARK for the best, TIED_MARK for a method not
    significantly different from the best, "" otherwise."""
    lookup = {(t.metric, frozenset((t.method_a, t.method_b))): t for t in tests}
    result: dict[tuple[str, str], str] = {}
    for key in keys:
        best = best_method(contents, key)
        for content in contents:
            method = content["method"]
            if best is None:
                mark = ""
            elif method == best:
                mark = BEST_MARK
            else:
                test = lookup.get((key, frozenset((method, best))))
                mark = TIED_MARK if test is not None and test.images and not test.significant else ""
            result[(method, key)] = mark
    return result


def legend(n_resamples: int, images: int) -> str:
    return (
        f"{BEST_MARK} best in the column; {TIED_MARK} not significantly different from the best "
        f"(paired bootstrap over the same {images} images, {n_resamples} resamples, "
        f"{CONFIDENCE_LEVEL:.0%} interval of the mean difference contains 0)."
    )


def not_significant_lines(tests: list[PairTest], keys: list[str]) -> list[str]:
    """Markdown lines listing, per metric, the pairs whose difference is not significant."""
    lines = []
    for key in keys:
        pairs = [t for t in tests if t.metric == key and t.images and not t.significant]
        if pairs:
            text = "; ".join(
                f"{t.method_a} ~ {t.method_b} ({t.difference:+.2f} [{t.low:+.2f}, {t.high:+.2f}])" for t in pairs
            )
            lines.append(f"- {metric_header(key)}: {text}")
    return lines
