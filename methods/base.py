"""The explainer pipeline shared by every saliency method: predict, explain, score.

A method is a LightningModule that supplies only ``explain(images, classes) -> maps``
(maps ``[B, H, W]`` in [0, 1] at input resolution). ``test_step`` predicts the top-1 class
``c`` on each image, times ``explain`` and scores the maps with the metrics (which never know
which method made a map); nothing else. What it learnt of a batch is returned as a
:class:`BatchOutcome` for the callbacks (the run's records on disk, progress); the states are
gathered into :class:`~metrics.results.RunResults` at the end of the epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from benchmark.core.errors import BenchmarkError
from benchmark.metrics import SaliencyScorer
from benchmark.metrics.functional.image import map_problems
from benchmark.metrics.per_sample import PerSampleMetric
from benchmark.metrics.results import RunResults, gather_results


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
    def of(cls, result: Tensor | Explanation) -> Explanation:
        return result if isinstance(result, Explanation) else cls(result)


@dataclass(frozen=True)
class ExtraColumn:
    """A per-sample extra a method reports (e.g. LOTS's ``iterations``): its ``name`` in
    ``per_sample.csv`` and ``results.json``, its ``title`` in printed tables, whether its values
    are ``integer`` (written as such), and whether its mean belongs in the results table
    (``in_table``). A method lists them in ``extra_columns`` (a plain name means a float column
    titled by its name, not in the table)."""

    name: str
    title: str = ""
    integer: bool = False
    in_table: bool = False

    @classmethod
    def of(cls, column: ExtraColumn | str) -> ExtraColumn:
        return column if isinstance(column, ExtraColumn) else cls(column)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title or self.name, "integer": self.integer, "in_table": self.in_table}


@dataclass
class BatchOutcome:
    """What ``test_step`` learnt about one batch, for the callbacks (the run's records): per
    scored image its ``columns``, ``metrics`` and ``curves`` (lists aligned with ``sample_ids``),
    the images left out with their reasons (``failures``), and the maps kept for figures or
    ``--save-maps`` (``kept``: sample id -> ``(map, image or None)``)."""

    sample_ids: list[int] = field(default_factory=list)
    columns: dict[str, list[float]] = field(default_factory=dict)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    curves: dict[str, list[list[float]]] = field(default_factory=dict)
    failures: list[tuple[int, str]] = field(default_factory=list)
    kept: dict[int, tuple[Tensor, Tensor | None]] = field(default_factory=dict)


class SampleColumn(PerSampleMetric):
    """One column of the per-sample table (prediction, timing, method extras)."""

    def update(self, sample_ids: Tensor, values: Tensor) -> None:
        self._store(sample_ids, values)


#: Devices whose first backward pays a one-time start-up (cuDNN/cuBLAS handles, autograd's
#: device threads) that must not go into the first batch's ``ms_per_map``.
WARM_UP_DEVICES = ("cuda",)

#: Per-sample columns every method records, besides the metrics and the method's extras
#: (``map_problem``: 0 usable, 1 constant, 2 NaN/Inf; see ``metrics.functional.map_problems``).
BASE_COLUMNS = ("label", "pred_class", "pred_prob", "ms_per_map", "map_problem")


class Explainer(pl.LightningModule):
    """Base LightningModule: ``test_step`` predicts, explains and scores one batch.

    Subclasses set ``config_class`` (a :class:`MethodConfig`), optionally
    ``extra_columns`` (the per-sample extras their :class:`Explanation` carries, as
    :class:`ExtraColumn` or plain names), and implement :meth:`explain`.
    """

    method_name: ClassVar[str] = ""
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    extra_columns: ClassVar[tuple[ExtraColumn | str, ...]] = ()

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
        self.columns = nn.ModuleDict({name: SampleColumn() for name in BASE_COLUMNS + self.extra_column_names()})
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
        self._forward_only: Callable[[Tensor], Tensor] | None = None
        reason = self.class_independence()
        if reason is not None:
            self.scorer.mark_unavailable("method_for_classes", f"not applicable: {reason}")

    def forward_only(self, images: Tensor) -> Tensor:
        """``classifier(images)`` for a pass that needs neither hooks nor gradients: compiled
        under the ``compiled`` execution (in pieces of the scorer's chunk), else the classifier."""
        return self._forward_only_for(images.device)(images)

    def forward_only_layer(self) -> nn.Module | None:
        """A layer whose output the method reads in forward-only passes (through
        :meth:`forward_with_layer`), or ``None`` (default): under the ``compiled`` execution the
        run's one compiled graph then returns it with the logits."""
        return None

    def forward_with_layer(self, images: Tensor) -> tuple[Tensor, Tensor] | None:
        """The logits and :meth:`forward_only_layer`'s output on ``images`` from the run's compiled
        forward, or ``None`` when the execution does not compile or the method reads no layer
        (it then runs its own hooked pass, as under ``eager`` and ``channels_last``)."""
        with_layer = getattr(self._forward_only_for(images.device), "with_layer", None)
        if with_layer is None or self.forward_only_layer() is None:
            return None
        return with_layer(images)

    def _forward_only_for(self, device: torch.device) -> Callable[[Tensor], Tensor]:
        if self._forward_only is None:
            from benchmark.models.execution import forward_only

            self._forward_only = forward_only(
                self.classifier, self.scorer.chunk_size_for(device), layer=self.forward_only_layer()
            )
        return self._forward_only

    def execution_facts(self) -> dict[str, Any]:
        """How the forward-only passes ran (results.json), under the ``compiled`` execution."""
        describe = getattr(self._forward_only, "describe", None)
        return describe() if describe is not None else {}

    @classmethod
    def extra_column_specs(cls) -> tuple[ExtraColumn, ...]:
        """The method's per-sample extras with their titles and types."""
        return tuple(ExtraColumn.of(c) for c in cls.extra_columns)

    @classmethod
    def extra_column_names(cls) -> tuple[str, ...]:
        return tuple(c.name for c in cls.extra_column_specs())

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

    def class_independence(self) -> str | None:
        """Why this method's maps do not depend on the class asked about (then the random logit
        test does not apply), or ``None``: they may. Default ``None``."""
        return None

    @classmethod
    def check_data(cls, config: MethodConfig, samples: list, size: tuple[int, int]) -> list[str]:
        """Check what the method needs of the run's images (``samples``, cropped to ``size``)
        before any model work; raise BenchmarkError, or return notes to print. Default: nothing."""
        return []

    def skip_sample(self, sample_id: int) -> str | None:
        """A reason to leave this image out (it is counted and named as skipped), or ``None``."""
        return None

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
            raise RuntimeError(f"{self.method_name} returned maps of shape {tuple(maps.shape)}, expected {expected}")
        return explanation

    def warm_up(self, images: Tensor) -> None:
        """One untimed forward and backward of the classifier on the first image."""
        with torch.inference_mode(False), torch.enable_grad():
            inputs = images[:1].detach().clone().requires_grad_(True)
            self.classifier(inputs).sum().backward()
        self._warmed_up = True

    def prepare(self, images: Tensor) -> None:
        """One-time work a method does before its first map is timed (building a kernel,
        compiling a graph), so that a run's ``ms_per_map`` is the maps' own time and the
        progress output shows that work apart; ``images``: the first batch. Nothing by default."""

    def _timed_explain(self, images: Tensor, classes: Tensor) -> tuple[Explanation, float]:
        if images.device.type in WARM_UP_DEVICES and not getattr(self, "_warmed_up", False):
            self.warm_up(images)
        if not getattr(self, "_prepared", False):
            self.prepare(images)
            self._prepared = True
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
            logits = self.forward_only(images)
        finite = torch.isfinite(logits).all(dim=1)
        if not finite.all():
            raise BenchmarkError(
                f"the model output NaN/Inf for sample id(s) {sample_ids[~finite].tolist()}: "
                "check the model weights and those images"
            )
        probabilities, classes = logits.softmax(dim=-1).max(dim=-1)
        return classes, probabilities

    def on_test_start(self) -> None:
        self.reset_results()

    def reset_results(self) -> None:
        """Forget every sample (the start of an evaluation)."""
        self.scorer.reset()
        for column in self.columns.values():
            column.reset()
        self.failures, self._kept_maps, self._kept_images, self.results = [], {}, {}, None

    def restore(
        self,
        sample_ids: Sequence[int],
        columns: dict[str, list[float]],
        metrics: dict[str, list[float]],
        curves: dict[str, list[list[float]]],
        failures: Sequence[tuple[int, str]] = (),
        kept: dict[int, tuple[Tensor, Tensor | None]] | None = None,
    ) -> None:
        """Put back per-sample results computed earlier (a killed run's records, on one rank):
        the values of every column, metric and curve aligned with ``sample_ids``, the unscored
        images and the kept maps (with the images of the first ones)."""
        self.failures.extend(failures)
        if sample_ids:
            ids = torch.tensor(list(sample_ids), dtype=torch.long)
            for name, column in self.columns.items():
                column.update(ids, torch.tensor(columns[name], dtype=torch.float32))
            self.scorer.restore(
                ids,
                {key: torch.tensor(values, dtype=torch.float32) for key, values in metrics.items()},
                {key: torch.tensor(values, dtype=torch.float32) for key, values in curves.items()},
            )
        for sample_id, (map_, image) in (kept or {}).items():
            self._kept_maps[sample_id] = map_
            if image is not None and len(self._kept_images) < self.keep_maps:
                self._kept_images[sample_id] = image

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> BatchOutcome:
        outcome = BatchOutcome(failures=list(batch.get("failures", [])))
        batch = self._without_skipped(batch, outcome.failures)
        self.failures.extend(outcome.failures)
        images: Tensor = batch["image"]
        if images.shape[0] == 0:
            return outcome
        sample_ids: Tensor = batch["sample_id"]
        classes, base_prob = self.predict_top1(images, sample_ids)
        explained = self.choose_classes(batch, classes)
        self.current_sample_ids = sample_ids
        try:
            explanation, elapsed_ms = self._timed_explain(images, explained)
            maps = explanation.maps.detach().to(images.dtype)
            scores = self.scorer.update(
                self.classifier,
                lambda inputs, _top1: self.explain_maps(inputs, explained),
                sample_ids,
                images,
                maps,
                classes,
                base_prob,
                boxes=batch.get("boxes"),
                forward_only=self.forward_only,
                method=lambda inputs, wanted: self.explain_maps(inputs, explained if wanted is None else wanted),
            )
        finally:
            self.current_sample_ids = None
        batch_size = images.shape[0]
        values = {
            "label": batch["label"],
            "pred_class": classes,
            "pred_prob": base_prob,
            "ms_per_map": torch.full((batch_size,), elapsed_ms / batch_size),
            "map_problem": map_problems(maps),
            **explanation.extras,
        }
        values = {name: values[name].detach().float().cpu() for name in self.columns}
        for name, column in self.columns.items():
            column.update(sample_ids, values[name])
        outcome.sample_ids = sample_ids.tolist()
        outcome.columns = {name: value.tolist() for name, value in values.items()}
        outcome.metrics = {key: scores[key].tolist() for key in self.scorer.keys}
        outcome.curves = {key: curve.tolist() for key, curve in self.scorer.last_curves.items()}
        outcome.kept = self._keep(sample_ids, images, maps)
        return outcome

    def _without_skipped(self, batch: dict[str, Any], failures: list[tuple[int, str]]) -> dict[str, Any]:
        """The batch without the images :meth:`skip_sample` leaves out (added to ``failures``)."""
        reasons = [self.skip_sample(int(i)) for i in batch["sample_id"].tolist()]
        if not any(reasons):
            return batch
        failures.extend((int(i), r) for i, r in zip(batch["sample_id"].tolist(), reasons) if r)
        keep = torch.tensor([r is None for r in reasons])
        boxes = batch.get("boxes")
        return {
            **batch,
            "image": batch["image"][keep.to(batch["image"].device)],
            "sample_id": batch["sample_id"][keep.to(batch["sample_id"].device)],
            "label": batch["label"][keep.to(batch["label"].device)],
            "boxes": None if boxes is None else [b for b, k in zip(boxes, keep.tolist()) if k],
        }

    def _keep(self, sample_ids: Tensor, images: Tensor, maps: Tensor) -> dict[int, tuple[Tensor, Tensor | None]]:
        """Keep the maps (and images) of the first ``keep_maps`` images, every map with
        ``save_maps``; returns this batch's kept ones."""
        kept = {}
        for position, sample_id in enumerate(sample_ids.tolist()):
            first = len(self._kept_images) < self.keep_maps
            image = images[position].detach().float().cpu() if first else None
            if first:
                self._kept_images[sample_id] = image
            if first or self.save_maps:
                self._kept_maps[sample_id] = maps[position].detach().float().cpu()
                kept[sample_id] = (self._kept_maps[sample_id], image)
        return kept

    def on_test_epoch_end(self) -> None:
        """Gather everything on every rank (all ranks must take part in the collectives)."""
        self.results = gather_results(
            self.scorer,
            self.columns,
            self.failures,
            self._kept_maps,
            self._kept_images,
            keep_maps=self.keep_maps,
            save_maps=self.save_maps,
            seed=self.seed,
        )
