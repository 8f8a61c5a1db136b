"""The five thesis metrics (and, on request, Complexity, ADCC and the pointing games) behind
one object that also runs the forward passes they need."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from metrics.average_drop import AverageDrop
from metrics.average_increase import AverageIncrease
from metrics.coherency import Coherency
from metrics.complexity import ADCC, Complexity
from metrics.functional.bootstrap import DEFAULT_RESAMPLES
from metrics.functional.image import MAP_NON_FINITE, map_problems
from metrics.functional.localization import Boxes
from metrics.functional.insertion_deletion import (
    check_blur,
    check_chunk_size,
    check_n_steps,
    check_score,
    insertion_deletion_curves,
)
from metrics.insertion_deletion import Deletion, Insertion
from metrics.per_sample import PerSampleMetric
from metrics.pointing_game import EnergyPointingGame, PointingGame
from benchmark.errors import BenchmarkError

#: The thesis's five metrics, always computed, in the order of every dict this module returns.
METRIC_KEYS = ("avg_drop", "avg_increase", "coherency", "insertion", "deletion")
#: Metrics beyond the thesis, computed when named in ``extra`` (``--metrics.extra``).
EXTRA_METRIC_KEYS = ("complexity", "adcc", "pointing_game", "energy_pointing_game")
#: Extras that need bounding boxes.
BOX_METRIC_KEYS = ("pointing_game", "energy_pointing_game")

_CLASSES: dict[str, type[PerSampleMetric]] = {
    "avg_drop": AverageDrop,
    "avg_increase": AverageIncrease,
    "coherency": Coherency,
    "insertion": Insertion,
    "deletion": Deletion,
    "complexity": Complexity,
    "adcc": ADCC,
    "pointing_game": PointingGame,
    "energy_pointing_game": EnergyPointingGame,
}

#: Whether a higher value of each metric is better.
HIGHER_IS_BETTER: dict[str, bool] = {
    key: bool(_CLASSES[key].higher_is_better) for key in METRIC_KEYS + EXTRA_METRIC_KEYS
}


#: Images per forward along the Insertion/Deletion curves when ``--metrics.chunk_size`` is not
#: given. CPU: per-image forward time grows with the batch beyond about 16 (perf/README.md);
#: CUDA: large batches are what a GPU is fast at, bounded to keep memory modest.
DEFAULT_CHUNK_SIZE = {"cpu": 16, "cuda": 128}


def _option(name: str, check, *values):
    """``check(*values)`` with a failure naming the option ``--metrics.<name>``."""
    try:
        return check(*values)
    except BenchmarkError as error:
        raise BenchmarkError(f"--metrics.{name}: {error}") from None


def check_extra(extra: Sequence[str] | None) -> tuple[str, ...]:
    """The extra metric keys in canonical order (ADCC brings Complexity); unknown: error."""
    names = [str(name).strip() for name in (extra or []) if str(name).strip()]
    unknown = [name for name in names if name not in EXTRA_METRIC_KEYS]
    if unknown:
        raise BenchmarkError(
            f"--metrics.extra: unknown metric(s) {', '.join(unknown)}; choose from: {', '.join(EXTRA_METRIC_KEYS)}"
        )
    chosen = set(names) | ({"complexity"} if "adcc" in names else set())
    return tuple(key for key in EXTRA_METRIC_KEYS if key in chosen)


def _softmax(logits: Tensor) -> Tensor:
    return logits.softmax(dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))


class SaliencyScorer(torch.nn.Module):
    """Average Drop, Average Increase, Coherency, Insertion and Deletion of saliency maps.

    The metrics are submodules (``self.metrics[key]``), so moving the scorer (e.g. by
    Lightning) moves their states. ``update()`` needs the classifier and the explanation
    method only as callables; it never knows which method made a map.

    Args:
        n_steps: Insertion/Deletion steps; ``None`` = the image side (224 for 224x224).
        score: ``"original_class"`` (probability of c) or ``"max_class"`` (highest probability,
            the thesis's variant) along the Insertion/Deletion curves.
        chunk_size: images per classifier forward when scoring the curves; ``None`` = the
            device's default (:data:`DEFAULT_CHUNK_SIZE`, measured in ``perf/README.md``).
        blur_kernel, blur_sigma: the Gaussian blur of the Insertion/Deletion baseline (odd
            kernel; sigma 0 = OpenCV's rule for the kernel).
        extra: metrics beyond the thesis: ``complexity``, ``adcc`` (adds complexity),
            ``pointing_game``, ``energy_pointing_game`` (these two need bounding boxes).
        tolerance: the pointing game's tolerance in pixels of the 224x224 map (TorchRay: 15).
        bootstrap: resamples of the 95% bootstrap interval of every metric mean.

    Raises:
        BenchmarkError: an option out of range.
    """

    def __init__(
        self,
        n_steps: int | None = None,
        score: str = "original_class",
        chunk_size: int | None = None,
        blur_kernel: int = 11,
        blur_sigma: float = 5.0,
        extra: list[str] | None = None,
        tolerance: float = 15,
        bootstrap: int = DEFAULT_RESAMPLES,
    ) -> None:
        super().__init__()
        self.score = _option("score", check_score, score)
        self.chunk_size = None if chunk_size is None else _option("chunk_size", check_chunk_size, chunk_size)
        self.n_steps = _option("n_steps", check_n_steps, n_steps)
        _option("blur_kernel/blur_sigma", check_blur, blur_kernel, blur_sigma)
        self.blur_kernel = blur_kernel
        self.blur_sigma = blur_sigma
        self.extra = check_extra(extra)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
            raise BenchmarkError(f"--metrics.tolerance must be a number of pixels >= 0, got {tolerance!r}")
        if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 1:
            raise BenchmarkError(f"--metrics.bootstrap must be a number of resamples >= 1, got {bootstrap!r}")
        self.tolerance = tolerance
        self.bootstrap = bootstrap
        #: The metric keys of this scorer: the thesis's five, then the extras.
        self.keys: tuple[str, ...] = METRIC_KEYS + self.extra
        self.metrics = torch.nn.ModuleDict(
            {
                key: PointingGame(tolerance=tolerance) if key == "pointing_game" else _CLASSES[key]()
                for key in self.keys
            }
        )
        #: Metrics that cannot be computed for the method being scored, with the reason (e.g.
        #: Coherency for saved maps): their values stay undefined and are not counted as such.
        self.not_computable: dict[str, str] = {}

    def mark_not_computable(self, key: str, reason: str) -> None:
        """Declare that ``key`` cannot be computed (ADCC, built on Coherency, follows it)."""
        self.not_computable[key] = reason
        if key == "coherency" and "adcc" in self.keys:
            self.not_computable["adcc"] = f"ADCC combines Coherency, which is not computable: {reason}"

    def chunk_size_for(self, device: torch.device) -> int:
        """Images per forward along the curves on ``device``: the option, else the device's
        fixed default (fixed, not tuned at run time, so runs stay reproducible)."""
        if self.chunk_size is not None:
            return self.chunk_size
        return DEFAULT_CHUNK_SIZE.get(device.type, DEFAULT_CHUNK_SIZE["cpu"])

    @property
    def needs_boxes(self) -> bool:
        """Whether an extra metric needs bounding boxes."""
        return any(key in BOX_METRIC_KEYS for key in self.keys)

    def update(
        self,
        classifier: Callable[[Tensor], Tensor],
        explain_fn: Callable[[Tensor, Tensor], Tensor],
        sample_ids: Tensor | Sequence[int],
        images: Tensor,
        maps: Tensor,
        classes: Tensor,
        base_prob: Tensor,
        boxes: Boxes | None = None,
    ) -> dict[str, Tensor]:
        """Score a batch and add it to every metric; returns the per-sample values (CPU).

        ``classifier(images) -> logits``; ``explain_fn(images, classes) -> maps[B, H, W]``
        (the method that made ``maps``: it is called on ``x * M``, with grad mode as it is).
        ``images[B, 3, H, W]`` in [0, 1] pixel space, ``maps[B, H, W]`` in [0, 1],
        ``classes[B]`` = c (top-1 on ``images``), ``base_prob[B]`` = softmax probability of c.
        ``boxes`` (pointing games): per sample a ``[K, 4]`` tensor of boxes in map pixels, or
        ``None`` (no box: the sample is left out of those metrics and counted).
        """
        batch, _, height, width = images.shape
        if maps.shape != (batch, height, width):
            raise ValueError(
                f"expected maps of shape {(batch, height, width)}, got {tuple(maps.shape)}"
            )
        maps = maps.detach().to(device=images.device, dtype=images.dtype)
        # A map with NaN/Inf has no defined metric: score a zero map in its place (so nothing
        # NaN reaches the model) and mark all its values undefined below.
        non_finite = map_problems(maps) == MAP_NON_FINITE
        if non_finite.any():
            maps = torch.where(non_finite[:, None, None], torch.zeros_like(maps), maps)
        classes = classes.to(device=images.device, dtype=torch.long)
        explanation = images.detach() * maps.unsqueeze(1)

        with torch.no_grad():
            probs = _softmax(classifier(explanation))
        explanation_prob = probs.gather(1, classes.to(probs.device).unsqueeze(1)).squeeze(1)
        base_prob = base_prob.detach().to(explanation_prob.device)

        if "coherency" in self.not_computable:  # the method cannot explain x * M
            maps_of_explanation = torch.full_like(maps, float("nan"))
        else:
            maps_of_explanation = torch.as_tensor(explain_fn(explanation, classes)).detach()

        def score_fn(inputs: Tensor) -> Tensor:
            with torch.no_grad():
                return _softmax(classifier(inputs))

        insertion, deletion = insertion_deletion_curves(
            score_fn,
            images,
            maps,
            classes,
            n_steps=self.n_steps,
            chunk_size=self.chunk_size_for(images.device),
            blur_kernel=self.blur_kernel,
            blur_sigma=self.blur_sigma,
            score=self.score,
        )

        self.metrics["avg_drop"].update(sample_ids, base_prob, explanation_prob)
        self.metrics["avg_increase"].update(sample_ids, base_prob, explanation_prob)
        self.metrics["coherency"].update(sample_ids, maps, maps_of_explanation.to(maps.device))
        self.metrics["insertion"].update(sample_ids, insertion)
        self.metrics["deletion"].update(sample_ids, deletion)
        self._update_extra(sample_ids, maps, boxes)
        if non_finite.any():
            for key in self.keys:
                self.metrics[key].values[-1][non_finite.to(self.metrics[key].values[-1].device)] = float("nan")
        #: The batch's Insertion and Deletion curves ``[B, S + 1]`` (for the run's records).
        self.last_curves = {"insertion": insertion.detach().cpu(), "deletion": deletion.detach().cpu()}
        return {key: self.metrics[key].values[-1].detach().cpu() for key in self.keys}

    def restore(self, sample_ids: Tensor, values: dict[str, Tensor], curves: dict[str, Tensor]) -> None:
        """Put back per-sample values computed earlier (a resumed run's records): ``values[key]
        [N]`` for every metric key, ``curves["insertion"|"deletion"][N, S + 1]``."""
        missing = [key for key in self.keys if key not in values]
        if missing:
            raise BenchmarkError(f"the records lack the metric(s) {', '.join(missing)}; start a new run")
        for key in self.keys:
            extra = {"curves": curves[key]} if key in curves else {}
            self.metrics[key].restore(sample_ids, values[key], **extra)

    def _update_extra(self, sample_ids, maps: Tensor, boxes: Boxes | None) -> None:
        if "complexity" in self.keys:
            self.metrics["complexity"].update(sample_ids, maps)
        if "adcc" in self.keys:
            latest = {key: self.metrics[key].values[-1] for key in ("coherency", "complexity", "avg_drop")}
            self.metrics["adcc"].update(sample_ids, latest["coherency"], latest["complexity"], latest["avg_drop"])
        if self.needs_boxes:
            boxes = list(boxes) if boxes is not None else [None] * maps.shape[0]
            for key in BOX_METRIC_KEYS:
                if key in self.keys:
                    self.metrics[key].update(sample_ids, maps, boxes)

    def compute(self) -> dict[str, float]:
        """Mean of each metric over all samples (and processes: every rank must call it)."""
        return {key: float(self.metrics[key].compute()) for key in self.keys}

    def mean_curves(self) -> dict[str, Tensor]:
        """Mean Insertion and Deletion curves ``[S + 1]`` (every rank must call it)."""
        return {key: self.metrics[key].mean_curve() for key in ("insertion", "deletion")}

    def per_sample(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``(ids, values)`` of each metric, sorted by id (every rank must call it)."""
        return {key: self.metrics[key].per_sample() for key in self.keys}

    def undefined_counts(self) -> dict[str, int]:
        """Samples with an undefined value per metric (every rank must call it)."""
        return {key: 0 if key in self.not_computable else self.metrics[key].undefined_count() for key in self.keys}

    def reset(self) -> None:
        """Forget every sample."""
        for metric in self.metrics.values():
            metric.reset()
