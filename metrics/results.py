"""A run's results gathered from every process: the metric means with their bootstrap
intervals, the per-sample table, the mean curves, the unscored images and the kept maps.

The explainer module only fills the scorer and the per-sample columns; :func:`gather_results`
turns them into one :class:`RunResults`, identical on every rank except for the kept maps and
images, which only rank 0 (the one writing files) receives: with ``--save-maps`` on the whole
validation set they are gigabytes per process (every rank must call it: the states are
gathered with collectives).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import Tensor

from benchmark.core.distributed import gather_objects, gather_objects_to_rank_zero
from benchmark.metrics.functional.bootstrap import bootstrap_ci
from benchmark.metrics.per_sample import PerSampleMetric


@dataclass
class RunResults:
    """Everything a test run produced, gathered from all processes (identical on each, except
    ``maps`` and ``images``: rank 0 only, empty elsewhere)."""

    metrics: dict[str, float]
    undefined: dict[str, int]
    sample_ids: list[int]
    columns: dict[str, list[float]]  # per-sample values aligned with sample_ids
    mean_curves: dict[str, list[float]]
    failures: list[tuple[int, str]]
    maps: dict[int, Tensor]  # sample id -> map [H, W] (the first ones, or all with save_maps)
    images: dict[int, Tensor]  # sample id -> image [3, H, W] for the first `keep_maps` ids
    #: metric -> (low, high): 95% percentile bootstrap interval of its mean over the images
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: metric -> what it reports beyond its value (``details()``, e.g. the randomization test's
    #: per-stage means), identical on every rank
    details: dict[str, dict] = field(default_factory=dict)
    #: metric -> one image it explains in its own way (``example``, e.g. the maps across the
    #: randomization stages), from rank 0's images only
    examples: dict[str, dict] = field(default_factory=dict)


def gather_results(
    scorer,
    columns: Mapping[str, PerSampleMetric],
    failures: list[tuple[int, str]],
    kept_maps: dict[int, Tensor],
    kept_images: dict[int, Tensor],
    keep_maps: int,
    save_maps: bool,
    seed: int,
) -> RunResults:
    """The results of all processes. ``scorer`` = the :class:`~benchmark.metrics.scorer.SaliencyScorer`,
    ``columns`` = the per-sample columns (``label`` first), ``failures`` = ``(id, reason)`` of the
    unscored images, ``kept_maps``/``kept_images`` = this process's maps and images kept for
    figures (all maps with ``save_maps``; the first ``keep_maps`` sample ids are kept overall);
    ``seed`` seeds the bootstrap."""
    metrics = {key: float(value) for key, value in scorer.compute().items()}
    per_sample = scorer.per_sample()
    undefined = scorer.undefined_counts()
    mean_curves = {k: v.tolist() for k, v in scorer.mean_curves().items()}
    gathered = {name: column.per_sample() for name, column in columns.items()}
    sample_ids = next(iter(gathered.values()))[0].tolist()
    table = {name: values.tolist() for name, (_, values) in gathered.items()}
    for key in scorer.keys:
        ids, values = per_sample[key]
        if ids.tolist() != sample_ids:
            raise RuntimeError(f"per-sample ids of {key} do not match the sample table")
        table[key] = values.tolist()
    all_failures = sorted(f for part in gather_objects(failures) for f in part)
    kept = gather_objects_to_rank_zero((kept_maps, kept_images))
    maps = {k: v for part, _ in kept for k, v in part.items()}
    first_ids = sorted({k for _, part in kept for k in part})[:keep_maps]
    images = {k: v for _, part in kept for k, v in part.items() if k in first_ids}
    if not save_maps:
        maps = {k: maps[k] for k in first_ids}
    return RunResults(
        metrics=metrics,
        undefined=undefined,
        sample_ids=sample_ids,
        columns=table,
        mean_curves=mean_curves,
        failures=all_failures,
        maps=dict(sorted(maps.items())),
        images=dict(sorted(images.items())),
        intervals={key: bootstrap_ci(table[key], scorer.bootstrap, seed=seed) for key in scorer.keys},
        details=scorer.details(),
        examples=scorer.examples(),
    )
