"""The explainer pipeline shared by every saliency method: predict, explain, score.

A method is a LightningModule that supplies only ``explain(images, classes) -> maps``
(maps ``[B, H, W]`` in [0, 1] at input resolution). The pipeline here predicts the top-1
class ``c`` on each image, times ``explain``, scores the maps with the metrics (which never
know which method made a map) and keeps per-sample records that sync across processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from benchmark.errors import BenchmarkError
from methods.distributed import gather_objects
from metrics import SaliencyScorer
from metrics.functional.bootstrap import bootstrap_ci
from metrics.per_sample import PerSampleMetric


@dataclass
class MethodConfig:
    """Parameters of a method (``--method.<name>``). Subclasses add fields (with a ``help``
    entry in their metadata) and check them in :meth:`validate`, which runs before any model
    work and raises :class:`BenchmarkError` naming the valid range."""

    def validate(self) -> None:
        """Check the values; raise BenchmarkError naming the bad one and its valid range."""

    @classmethod
    def parameter_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class Explanation:
    """What ``explain`` may return when a method has per-sample extras to report (for
    instance LOTS's iterations); a plain ``Tensor`` of maps is accepted too."""

    maps: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)

    @classmethod
    def of(cls, result: "Tensor | Explanation") -> "Explanation":
        return result if isinstance(result, Explanation) else cls(result)


class SampleColumn(PerSampleMetric):
    """One column of the per-sample table (prediction, timing, method extras)."""

    def update(self, sample_ids: Tensor, values: Tensor) -> None:
        self._store(sample_ids, values)


#: Per-sample columns every method records, besides the metrics and the method's extras.
BASE_COLUMNS = ("label", "pred_class", "pred_prob", "ms_per_map")


@dataclass
class RunResults:
    """Everything a test run produced, gathered from all processes (identical on each)."""

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


class Explainer(pl.LightningModule):
    """Base LightningModule: ``test_step`` predicts, explains and scores one batch.

    Subclasses set ``config_class`` (a :class:`MethodConfig`), optionally
    ``extra_columns`` (names of per-sample extras their :class:`Explanation` carries), and
    implement :meth:`explain`.
    """

    method_name: ClassVar[str] = ""
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    extra_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        classifier: nn.Module,
        config: MethodConfig | None = None,
        scorer: SaliencyScorer | None = None,
        keep_maps: int = 8,
        save_maps: bool = False,
        seed: int = 0,
        show_progress: bool = True,
    ) -> None:
        super().__init__()
        self.classifier = classifier
        self.config = config if config is not None else self.config_class()
        self.config.validate()
        self.scorer = scorer if scorer is not None else SaliencyScorer()
        self.columns = nn.ModuleDict(
            {name: SampleColumn() for name in BASE_COLUMNS + self.extra_columns}
        )
        self.keep_maps = keep_maps
        self.save_maps = save_maps
        self.seed = seed
        self.show_progress = show_progress
        self.failures: list[tuple[int, str]] = []
        self._kept_maps: dict[int, Tensor] = {}
        self._kept_images: dict[int, Tensor] = {}
        self.results: RunResults | None = None
        #: Ids of the samples in the batch being explained, set by ``test_step`` around its
        #: ``explain`` calls (also the one on ``x * M`` for Coherency), ``None`` otherwise.
        #: Methods with per-sample randomness seed it from ``(seed, sample id)``.
        self.current_sample_ids: Tensor | None = None

    # -- the one hook a method supplies -----------------------------------------------------

    def explain(self, images: Tensor, classes: Tensor) -> Tensor | Explanation:
        """Maps ``[B, H, W]`` in [0, 1] for ``images[B, 3, H, W]`` (pixel space) and the
        classes ``classes[B]`` to explain."""
        raise NotImplementedError

    def choose_classes(self, batch: dict[str, Any], predicted: Tensor) -> Tensor:
        """The classes ``explain`` is asked about; default: the top-1 ``predicted`` classes.
        The metrics always score the top-1 class."""
        return predicted

    def describe(self) -> dict[str, Any]:
        """Method facts for ``results.json`` beyond its config (e.g. the CAM layer used)."""
        return {}

    # -- pipeline -------------------------------------------------------------------------

    @property
    def progress_enabled(self) -> bool:
        return self.show_progress and self.global_rank == 0

    def explain_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        """``explain`` reduced to its maps, checked (used by Coherency for x * M)."""
        return self._checked(Explanation.of(self.explain(images, classes)), images).maps

    def _checked(self, explanation: Explanation, images: Tensor) -> Explanation:
        maps = explanation.maps
        expected = (images.shape[0], *images.shape[-2:])
        if tuple(maps.shape) != expected:
            raise RuntimeError(
                f"{self.method_name} returned maps of shape {tuple(maps.shape)}, expected {expected}"
            )
        return explanation

    def _timed_explain(self, images: Tensor, classes: Tensor) -> tuple[Explanation, float]:
        if images.is_cuda:
            torch.cuda.synchronize(images.device)
        start = time.perf_counter()
        explanation = Explanation.of(self.explain(images, classes))
        if images.is_cuda:
            torch.cuda.synchronize(images.device)
        elapsed_ms = (time.perf_counter() - start) * 1000
        return self._checked(explanation, images), elapsed_ms

    def predict_top1(self, images: Tensor, sample_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Top-1 class and its softmax probability on the original images."""
        with torch.no_grad():
            logits = self.classifier(images)
        finite = torch.isfinite(logits).all(dim=1)
        if not finite.all():
            raise BenchmarkError(
                f"the model output NaN/Inf for sample id(s) {sample_ids[~finite].tolist()}: "
                "check the model weights and those images"
            )
        probabilities, classes = logits.softmax(dim=-1).max(dim=-1)
        return classes, probabilities

    def on_test_epoch_start(self) -> None:
        self.scorer.reset()
        for column in self.columns.values():
            column.reset()
        self.failures, self._kept_maps, self._kept_images, self.results = [], {}, {}, None

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.failures.extend(batch.get("failures", []))
        images: Tensor = batch["image"]
        if images.shape[0] == 0:
            return
        sample_ids: Tensor = batch["sample_id"]
        classes, base_prob = self.predict_top1(images, sample_ids)
        explained = self.choose_classes(batch, classes)
        self.current_sample_ids = sample_ids
        try:
            explanation, elapsed_ms = self._timed_explain(images, explained)
            maps = explanation.maps.detach().to(images.dtype)
            self.scorer.update(
                self.classifier,
                lambda inputs, _top1: self.explain_maps(inputs, explained),
                sample_ids, images, maps, classes, base_prob,
                boxes=batch.get("boxes"),
            )
        finally:
            self.current_sample_ids = None
        batch_size = images.shape[0]
        values = {
            "label": batch["label"],
            "pred_class": classes,
            "pred_prob": base_prob,
            "ms_per_map": torch.full((batch_size,), elapsed_ms / batch_size),
            **explanation.extras,
        }
        for name, column in self.columns.items():
            column.update(sample_ids, values[name].detach().float())
        self._keep(sample_ids, images, maps)

    def _keep(self, sample_ids: Tensor, images: Tensor, maps: Tensor) -> None:
        for position, sample_id in enumerate(sample_ids.tolist()):
            first = len(self._kept_images) < self.keep_maps
            if first:
                self._kept_images[sample_id] = images[position].detach().float().cpu()
            if first or self.save_maps:
                self._kept_maps[sample_id] = maps[position].detach().float().cpu()

    def on_test_epoch_end(self) -> None:
        """Gather everything on every rank (all ranks must take part in the collectives)."""
        metrics = {key: float(value) for key, value in self.scorer.compute().items()}
        per_sample = self.scorer.per_sample()
        undefined = self.scorer.undefined_counts()
        mean_curves = {k: v.tolist() for k, v in self.scorer.mean_curves().items()}
        columns = {name: column.per_sample() for name, column in self.columns.items()}
        sample_ids = columns["label"][0].tolist()
        table = {name: values.tolist() for name, (_, values) in columns.items()}
        for key in self.scorer.keys:
            ids, values = per_sample[key]
            if ids.tolist() != sample_ids:
                raise RuntimeError(f"per-sample ids of {key} do not match the sample table")
            table[key] = values.tolist()
        failures = sorted(f for part in gather_objects(self.failures) for f in part)
        kept = gather_objects((self._kept_maps, self._kept_images))
        maps = {k: v for part, _ in kept for k, v in part.items()}
        first_ids = sorted({k for _, part in kept for k in part})[: self.keep_maps]
        images = {k: v for _, part in kept for k, v in part.items() if k in first_ids}
        if not self.save_maps:
            maps = {k: maps[k] for k in first_ids}
        self.results = RunResults(
            metrics=metrics,
            undefined=undefined,
            sample_ids=sample_ids,
            columns=table,
            mean_curves=mean_curves,
            failures=failures,
            maps=dict(sorted(maps.items())),
            images=dict(sorted(images.items())),
            intervals={
                key: bootstrap_ci(table[key], self.scorer.bootstrap, seed=self.seed) for key in self.scorer.keys
            },
        )
