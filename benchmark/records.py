"""Per-sample records written while a run is going, so that a killed run keeps its work and
``--resume RUN_DIR`` can finish it.

Layout inside a run folder::

    config.yaml                 the resolved settings, written before the first image
    records/rank<R>.jsonl       one JSON line per scored or skipped image, per process
    records/maps/<id>.pt        maps kept for figures (and every map with --save-maps)

A line is ``{"id": 12, "columns": {...}, "metrics": {...}, "curves": {"insertion": [...],
"deletion": [...]}}`` for a scored image and ``{"id": 12, "failed": "reason"}`` for a skipped
one. Values are float32 numbers written exactly (``repr`` of a float round-trips), so restored
metric states equal the ones computed. Each process appends whole batches and flushes them to
disk, so a kill loses at most the batch being written; a torn last line is ignored on reading
(a full disk cuts the file back to its last whole batch and raises ``DiskFull``).
A batch's kept maps are saved before its records, so a record implies its map.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml

from benchmark.core.errors import BenchmarkError
from benchmark.files import DiskFull, atomic_path, is_disk_full, write_text_atomic

RECORDS = "records"
MAPS = "maps"
CONFIG = "config.yaml"
RESULTS = "results.json"
SAMPLES = "samples.json"
#: ``records/elapsed.json``: the run's seconds of work up to its last recorded batch, over all
#: its parts (a resumed run adds its own), so a killed run's time is not lost.
ELAPSED = "elapsed.json"

#: Settings that may change between a run and its resumption: the number of processes (each
#: record says how many computed it), where the run folder is, how it is logged and pictured.
#: Everything else may change numbers and is refused: the accelerator (CPU float32 and GPU
#: results in one run), the precision, TF32, the threads, the seed.
RESUMABLE_CHANGES = {
    "output",
    "logger",
    "num_workers",
    "overlay_images",
    "log_images",
    "devices",
    "estimate",
    "quiet",
    "num_nodes",
    "strategy",
    "ddp_timeout",
    "wandb.project",
    "wandb.entity",
    "wandb.group",
    "wandb.tags",
}


def _encode_one(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _encode(values: Iterable[float]) -> list[float | str | None]:
    """JSON numbers; NaN as ``null`` and infinities as strings (JSON has neither)."""
    return [_encode_one(v) for v in values]


def _decode(value: Any) -> float:
    if value is None:
        return float("nan")
    return float(value)


@dataclass
class SampleRecord:
    """What a run learnt about one image: its per-sample columns, metric values and curves,
    or the reason it was skipped."""

    sample_id: int
    columns: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    failed: str | None = None
    #: How many processes the run had when this image was computed (a resumed run may differ).
    processes: int | None = None

    def to_json(self) -> str:
        if self.failed is not None:
            return json.dumps({"id": self.sample_id, "failed": self.failed})
        return json.dumps(
            {
                "id": self.sample_id,
                "columns": dict(zip(self.columns, _encode(self.columns.values()))),
                "metrics": dict(zip(self.metrics, _encode(self.metrics.values()))),
                "curves": {k: _encode(v) for k, v in self.curves.items()},
                **({"processes": self.processes} if self.processes is not None else {}),
            }
        )

    @classmethod
    def from_json(cls, line: str) -> SampleRecord:
        data = json.loads(line)
        if "failed" in data:
            return cls(int(data["id"]), failed=str(data["failed"]))
        return cls(
            int(data["id"]),
            columns={k: _decode(v) for k, v in data["columns"].items()},
            metrics={k: _decode(v) for k, v in data["metrics"].items()},
            curves={k: [_decode(x) for x in v] for k, v in data["curves"].items()},
            processes=data.get("processes"),
        )


def drop_torn_last_line(path: Path) -> None:
    """Cut a records file back to its last complete line (a kill may have torn the one after)."""
    if not path.is_file():
        return
    with path.open("rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


class RecordWriter:
    """Appends one process's records to ``records/rank<R>.jsonl`` (whole batches, flushed)."""

    def __init__(self, run_dir: Path, rank: int) -> None:
        self.folder = Path(run_dir) / RECORDS
        (self.folder / MAPS).mkdir(parents=True, exist_ok=True)
        self.rank = rank
        self.path = self.folder / f"rank{rank}.jsonl"
        drop_torn_last_line(self.path)  # else the next record would be glued onto it
        # unbuffered: a write the disk refuses leaves no bytes behind to be flushed again at close
        self._handle = self.path.open("ab", buffering=0)

    def write(self, records: list[SampleRecord]) -> None:
        if not records:
            return
        data = memoryview("".join(r.to_json() + "\n" for r in records).encode("utf-8"))
        whole = self._handle.seek(0, os.SEEK_END)  # the end of the last whole batch
        try:
            while data:
                data = data[self._handle.write(data) :]
            os.fsync(self._handle.fileno())
        except OSError as error:
            if not is_disk_full(error):
                raise
            self._handle.truncate(whole)  # the batches written before stay whole, none half
            raise DiskFull(self.path) from error

    def save_map(self, sample_id: int, map_: torch.Tensor, image: torch.Tensor | None) -> None:
        """Keep one map (and its image, for the overlay figure) on disk."""
        # clone: a row of the batch is a view, and torch.save writes a view's whole storage (the
        # batch's images and maps in every sample's file)
        image = None if image is None else image.detach().float().cpu().clone()
        # never half a file; written through a Python file, so that a full disk is told by its errno
        with atomic_path(self.folder / MAPS / f"{sample_id}.pt") as partial, partial.open("wb") as handle:
            torch.save({"map": map_.detach().float().cpu().clone(), "image": image}, handle)

    def close(self) -> None:
        self._handle.close()


class RunRecorder(pl.Callback):
    """Keeps a run's per-sample records on disk while it goes, and puts a killed run's back.

    At ``setup`` the run folder is made on rank 0 (``folder`` is its path, or a function making
    it) and its path sent to the other ranks: the processes of a multi-node run can agree on
    one folder only once they are connected, which is inside ``trainer.test``. After each
    batch its :class:`~benchmark.methods.base.BatchOutcome` is appended to ``records/rank<R>.jsonl`` and
    the kept maps saved; a resumption's ``resumed`` records are put back into the module (rank
    0) at the start of the epoch. The module knows none of this.
    """

    def __init__(
        self, folder: Path | Callable[[], Path], resumed: dict[int, SampleRecord] | None = None, earlier_s: float = 0.0
    ) -> None:
        self.folder = folder
        self.resumed = resumed or {}
        self.earlier_s = earlier_s  # the seconds of the parts before this one (a resumed run)
        self.run_dir: Path | None = None
        self.processes: int | None = None
        self._writer: RecordWriter | None = None
        self._clock = time.perf_counter()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        path = None
        if trainer.global_rank == 0:
            path = self.folder() if callable(self.folder) else Path(self.folder)
            path.mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(trainer.strategy.broadcast(path, src=0))
        self._writer = RecordWriter(self.run_dir, trainer.global_rank)
        self.processes = trainer.world_size

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.resumed and trainer.global_rank == 0:
            restore_records(pl_module, self.run_dir, self.resumed)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._writer is None or outputs is None:
            return
        # maps first: a record on disk then means its kept map is on disk too (a kill between
        # the two would otherwise resume an image whose map is lost from maps.pt and figures)
        for sample_id, (map_, image) in outputs.kept.items():
            self._writer.save_map(sample_id, map_, image)
        self._writer.write([SampleRecord(sample_id, failed=reason) for sample_id, reason in outputs.failures])
        self._writer.write(
            [
                SampleRecord(
                    sample_id,
                    columns={name: values[row] for name, values in outputs.columns.items()},
                    metrics={key: values[row] for key, values in outputs.metrics.items()},
                    curves={key: curves[row] for key, curves in outputs.curves.items()},
                    processes=self.processes,
                )
                for row, sample_id in enumerate(outputs.sample_ids)
            ]
        )
        if self._writer.rank == 0:
            elapsed = self.earlier_s + time.perf_counter() - self._clock
            write_text_atomic(self.run_dir / RECORDS / ELAPSED, json.dumps({"seconds": round(elapsed, 2)}) + "\n")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def restore_records(module, run_dir: Path, records: dict[int, SampleRecord]) -> None:
    """Put a killed run's records (and its saved maps) back into the explainer ``module``."""
    scored = [r for _, r in sorted(records.items()) if r.failed is None]
    ids = [r.sample_id for r in scored]
    wanted = ids if module.save_maps else ids[: module.keep_maps]
    saved = read_saved_maps(run_dir, wanted)
    module.restore(
        ids,
        columns={name: [r.columns[name] for r in scored] for name in module.columns},
        metrics={key: [r.metrics[key] for r in scored] for key in (scored[0].metrics if scored else {})},
        curves={key: [r.curves[key] for r in scored] for key in (scored[0].curves if scored else {})},
        failures=[(r.sample_id, r.failed) for r in records.values() if r.failed is not None],
        kept={sample_id: (s["map"], s["image"]) for sample_id, s in saved.items()},
    )


def read_records(run_dir: Path) -> dict[int, SampleRecord]:
    """Every record of a run folder, one per sample id (the first written wins). A torn last
    line of a killed process is ignored."""
    folder = Path(run_dir) / RECORDS
    records: dict[int, SampleRecord] = {}
    for path in sorted(folder.glob("rank*.jsonl")):
        lines = path.read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = SampleRecord.from_json(line)
            except (ValueError, KeyError, TypeError):
                if number >= len(lines) - 1:  # the last line, cut by a kill
                    continue
                raise BenchmarkError(
                    f"--resume: {path} line {number} is not a record; the folder was edited or is not a run folder"
                ) from None
            records.setdefault(record.sample_id, record)
    return records


def recorded_seconds(run_dir: Path) -> float:
    """The seconds of work a run folder's parts recorded up to their last batch (0 without any)."""
    path = Path(run_dir) / RECORDS / ELAPSED
    try:
        return float(json.loads(path.read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def images_by_processes(run_dir: Path) -> dict[str, int]:
    """How many scored images of a run folder were computed with how many processes."""
    counts: dict[str, int] = {}
    for record in read_records(run_dir).values():
        if record.failed is None:
            key = str(record.processes) if record.processes is not None else "unrecorded"
            counts[key] = counts.get(key, 0) + 1
    return counts


def recorded_images(run_dir: Path) -> tuple[int, int | None]:
    """``(images recorded, images of the run)`` of a run folder (the total from its sample
    fingerprint; ``None`` when that is missing)."""
    samples_file = Path(run_dir) / RECORDS / SAMPLES
    total = json.loads(samples_file.read_text())["images"] if samples_file.is_file() else None
    return len(read_records(run_dir)), total


def read_saved_maps(run_dir: Path, sample_ids: Iterable[int]) -> dict[int, dict[str, torch.Tensor | None]]:
    """The maps (and images) saved for ``sample_ids`` by an earlier part of the run."""
    folder = Path(run_dir) / RECORDS / MAPS
    saved = {}
    for sample_id in sample_ids:
        path = folder / f"{sample_id}.pt"
        if path.is_file():
            saved[sample_id] = torch.load(path, map_location="cpu", weights_only=True)
    return saved


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def differing(first: dict[str, Any], second: dict[str, Any], ignore=()) -> list[tuple[str, Any, Any]]:
    """``(name, first's value, second's value)`` for every key of the two flat dicts whose
    values differ (a missing key counts as ``None``), by name, leaving out ``ignore``."""
    return [
        (name, first.get(name), second.get(name))
        for name in sorted(first.keys() | second.keys())
        if name not in ignore and first.get(name) != second.get(name)
    ]


def settings_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``name: stored -> current`` for every setting that changes results."""
    return [
        f"{name}: {old!r} -> {new!r}"
        for name, old, new in differing(flatten(stored), flatten(current), ignore=RESUMABLE_CHANGES)
    ]


def refuse_other_settings(folder: Path, differences: list[str], what: str = "run") -> None:
    """:class:`BenchmarkError` naming every setting that differs from the stored ``what``."""
    if differences:
        raise BenchmarkError(
            f"--resume {folder}: the settings differ from the {what}'s ({'; '.join(differences)}); "
            f"resume with the {what}'s settings (leave these options out) or start a new {what}"
        )


def samples_fingerprint(samples) -> dict[str, Any]:
    """The images of a run, summarised: their count and a hash of (id, file name, label)."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(f"{s.sample_id}\t{Path(s.file).name}\t{s.label}\n".encode())
    return {"images": len(samples), "sha256": digest.hexdigest()}


def start_run_folder(run_dir: Path, settings: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """Write what a resumption checks against before the first image is evaluated."""
    write_text_atomic(Path(run_dir) / CONFIG, yaml.safe_dump(settings, sort_keys=False))
    (Path(run_dir) / RECORDS).mkdir(exist_ok=True)
    write_text_atomic(Path(run_dir) / RECORDS / SAMPLES, json.dumps(fingerprint) + "\n")


def check_resumable(
    run_dir: Path, settings: dict[str, Any], fingerprint: dict[str, Any], complete_ok: bool = False
) -> dict[int, SampleRecord]:
    """The records of ``run_dir`` to resume with ``settings``; :class:`BenchmarkError` when the
    folder is not a run, is complete (unless ``complete_ok``: a method of a resumed table) or
    the settings differ."""
    run_dir = Path(run_dir)
    config = run_dir / CONFIG
    if not run_dir.is_dir():
        raise BenchmarkError(f"--resume {run_dir}: folder does not exist; pass the run folder printed by the run")
    if (run_dir / RESULTS).exists() and not complete_ok:
        raise BenchmarkError(f"--resume {run_dir}: this run is complete (it has {RESULTS}); start a new run instead")
    if not config.is_file() or not (run_dir / RECORDS).is_dir():
        raise BenchmarkError(
            f"--resume {run_dir}: not a run folder (no {CONFIG} and {RECORDS}/); pass the folder a killed run printed"
        )
    stored = yaml.safe_load(config.read_text()) or {}
    differences = settings_differences(stored, settings)
    samples_file = run_dir / RECORDS / SAMPLES
    then = json.loads(samples_file.read_text()) if samples_file.is_file() else {}
    if then and then != fingerprint:
        differences.append(
            f"images: {then['images']} -> {fingerprint['images']}"
            if then["images"] != fingerprint["images"]
            else "images: the same number, but other files or labels"
        )
    refuse_other_settings(run_dir, differences)
    return read_records(run_dir)
