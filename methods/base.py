"""The explainer pipeline shared by every saliency method: predict, explain, score.

A method is a LightningModule that supplies only ``explain(images, classes) -> maps``
(maps ``[B, H, W]`` in [0, 1] at input resolution). The pipeline here predicts the top-1
class ``c`` on each image, times ``explain``, scores the maps with the metrics (which never
know which method made a map) and keeps per-sample records that sync across processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from benchmark.errors import BenchmarkError
from benchmark.records import RecordWriter, SampleRecord, read_saved_maps
from methods.distributed import gather_objects
from metrics import SaliencyScorer
from metrics.functional.bootstrap import bootstrap_ci
from metrics.functional.image import map_problems
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


#: Per-sample columns every method records, besides the metrics and the method's extras
#: (``map_problem``: 0 usable, 1 constant, 2 NaN/Inf; see ``metrics.functional.map_problems``).
BASE_COLUMNS = ("label", "pred_class", "pred_prob", "ms_per_map", "map_problem")


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
        run_dir: Path | Callable[[], Path] | None = None,
        resumed: dict[int, SampleRecord] | None = None,
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
        #: Where per-sample records are written as they are computed (``None``: nowhere); a
        #: function is called on rank 0 at the start and its path sent to the other ranks.
        self.run_dir_source = run_dir
        self.run_dir: Path | None = None
        #: Records of a killed run being resumed: put back into the states on rank 0.
        self.resumed = resumed or {}
        self._writer: RecordWriter | None = None

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
        if self.run_dir_source is not None:
            self._open_records()
        if self.resumed and self.global_rank == 0:
            self._restore(self.resumed)

    def _open_records(self) -> None:
        source = self.run_dir_source
        path = None
        if self.global_rank == 0:
            path = source() if callable(source) else Path(source)
            path.mkdir(parents=True, exist_ok=True)
        trainer = self._trainer
        self.run_dir = Path(trainer.strategy.broadcast(path, src=0) if trainer is not None else path)
        self._writer = RecordWriter(self.run_dir, self.global_rank)

    def _restore(self, records: dict[int, SampleRecord]) -> None:
        """Put a killed run's per-sample results back into the states (rank 0 only)."""
        scored = [r for _, r in sorted(records.items()) if r.failed is None]
        self.failures.extend((r.sample_id, r.failed) for r in records.values() if r.failed is not None)
        if scored:
            ids = torch.tensor([r.sample_id for r in scored], dtype=torch.long)
            for name, column in self.columns.items():
                column.update(ids, torch.tensor([r.columns[name] for r in scored], dtype=torch.float32))
            self.scorer.restore(
                ids,
                {key: torch.tensor([r.metrics[key] for r in scored], dtype=torch.float32) for key in scored[0].metrics},
                {key: torch.tensor([r.curves[key] for r in scored], dtype=torch.float32) for key in scored[0].curves},
            )
        wanted = [r.sample_id for r in scored] if self.save_maps else [r.sample_id for r in scored][: self.keep_maps]
        for sample_id, saved in read_saved_maps(self.run_dir, wanted).items():
            self._kept_maps[sample_id] = saved["map"]
            if saved["image"] is not None and len(self._kept_images) < self.keep_maps:
                self._kept_images[sample_id] = saved["image"]

    def finish_without_images(self) -> None:
        """The epoch hooks alone, for a resumed run whose images were all done before the kill."""
        self.on_test_epoch_start()
        self.on_test_epoch_end()
        self.on_test_end()

    def on_test_end(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write_records(self, sample_ids: Tensor, values: dict[str, Tensor], scores: dict[str, Tensor]) -> None:
        if self._writer is None:
            return
        curves = {key: c.tolist() for key, c in self.scorer.last_curves.items()}
        records = [
            SampleRecord(
                int(sample_id),
                columns={name: float(values[name][row]) for name in self.columns},
                metrics={key: float(scores[key][row]) for key in self.scorer.keys},
                curves={key: c[row] for key, c in curves.items()},
            )
            for row, sample_id in enumerate(sample_ids.tolist())
        ]
        self._writer.write(records)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._record_failures(batch.get("failures", []))
        batch = self._without_skipped(batch)
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
            scores = self.scorer.update(
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
            "map_problem": map_problems(maps),
            **explanation.extras,
        }
        values = {name: values[name].detach().float().cpu() for name in self.columns}
        for name, column in self.columns.items():
            column.update(sample_ids, values[name])
        self._keep(sample_ids, images, maps)
        self._write_records(sample_ids, values, scores)

    def _record_failures(self, failures: list[tuple[int, str]]) -> None:
        """Images that are not scored, with the reason: kept for results.json and the records."""
        self.failures.extend(failures)
        if self._writer is not None:
            self._writer.write([SampleRecord(sample_id, failed=reason) for sample_id, reason in failures])

    def _without_skipped(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch without the images :meth:`skip_sample` leaves out (recorded as skipped)."""
        reasons = [self.skip_sample(int(i)) for i in batch["sample_id"].tolist()]
        if not any(reasons):
            return batch
        self._record_failures([(int(i), r) for i, r in zip(batch["sample_id"].tolist(), reasons) if r])
        keep = torch.tensor([r is None for r in reasons])
        boxes = batch.get("boxes")
        return {
            **batch,
            "image": batch["image"][keep.to(batch["image"].device)],
            "sample_id": batch["sample_id"][keep.to(batch["sample_id"].device)],
            "label": batch["label"][keep.to(batch["label"].device)],
            "boxes": None if boxes is None else [b for b, k in zip(boxes, keep.tolist()) if k],
        }

    def _keep(self, sample_ids: Tensor, images: Tensor, maps: Tensor) -> None:
        for position, sample_id in enumerate(sample_ids.tolist()):
            first = len(self._kept_images) < self.keep_maps
            image = images[position].detach().float().cpu() if first else None
            if first:
                self._kept_images[sample_id] = image
            if first or self.save_maps:
                self._kept_maps[sample_id] = maps[position].detach().float().cpu()
                if self._writer is not None:
                    self._writer.save_map(sample_id, self._kept_maps[sample_id], image)

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
