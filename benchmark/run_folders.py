"""Finished run folders read back: their results.json, per-sample values, sample fingerprint and
kept maps, for tables and reports assembled from runs made anywhere (one SLURM job per method).
A table folder stands for the run folders of its methods: those inside it (``table``), or those
its ``sources.json`` names (``table --from``, which leaves the runs where they are)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from benchmark.core.errors import BenchmarkError
from benchmark.metrics.functional.image import MAP_PROBLEM_NAMES
from benchmark.records import MAPS, RECORDS, RESULTS, SAMPLES, differing, read_saved_maps

PER_SAMPLE = "per_sample.csv"
#: The file of an assembled table folder (``table --from``) naming the run folders it was made from.
SOURCES = "sources.json"


@dataclass
class FolderResults:
    """The per-sample side of a finished run, as :class:`benchmark.metrics.results.RunResults` has it."""

    sample_ids: list[int]
    columns: dict[str, list[float]]
    files: dict[int, str]
    maps: dict[int, Tensor] = field(default_factory=dict)
    images: dict[int, Tensor] = field(default_factory=dict)


@dataclass
class FinishedRun:
    """One finished run folder: ``content`` = its results.json, ``results`` = its per-sample
    values and kept maps, ``fingerprint`` = its images (count and hash)."""

    run_dir: Path
    content: dict
    results: FolderResults
    fingerprint: dict

    @property
    def method(self) -> str:
        return self.content["method"]

    @property
    def model(self) -> str:
        return self.content["model"]


def _number(cell: str) -> float:
    return float(cell) if cell not in ("", None) else math.nan


def read_per_sample(path: Path) -> tuple[list[int], dict[str, list[float]], dict[int, str]]:
    """``(sample ids, columns, files)`` of a ``per_sample.csv`` (an empty cell is NaN; the
    written floats are ``repr``s, so the values are the run's exactly)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ids = [int(r["sample_id"]) for r in rows]
    names = [n for n in (rows[0].keys() if rows else []) if n not in ("sample_id", "file", "map_problem")]
    columns = {n: [_number(r[n]) for r in rows] for n in names}
    codes = {name: float(code) for code, name in MAP_PROBLEM_NAMES.items()}
    columns["map_problem"] = [codes.get(r.get("map_problem") or "", 0.0) for r in rows]
    return ids, columns, {i: r["file"] for i, r in zip(ids, rows)}


def read_finished_run(folder: Path, with_maps: bool = True) -> FinishedRun:
    """The finished run in ``folder``; BenchmarkError naming what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchmarkError(f"{folder}: no such folder; pass run folders written by `test` (or table folders)")
    if not (folder / RESULTS).is_file():
        hint = (
            f"it is a killed run: finish it with `python -m benchmark test --resume {folder}`"
            if (folder / RECORDS).is_dir()
            else "pass a run folder written by `test`"
        )
        raise BenchmarkError(f"{folder}: not a finished run (no {RESULTS}); {hint}")
    content = json.loads((folder / RESULTS).read_text())
    if not (folder / PER_SAMPLE).is_file():
        raise BenchmarkError(f"{folder}: {PER_SAMPLE} is missing; the run folder is incomplete")
    ids, columns, files = read_per_sample(folder / PER_SAMPLE)
    samples_file = folder / RECORDS / SAMPLES
    fingerprint = json.loads(samples_file.read_text()) if samples_file.is_file() else {"images": None, "sha256": None}
    results = FolderResults(ids, columns, files)
    if with_maps:
        _read_maps(folder, results)
    return FinishedRun(folder, content, results, fingerprint)


def _read_maps(folder: Path, results: FolderResults) -> None:
    """Every map the run kept: maps.pt (all of them, with ``--save-maps``) and the records' kept
    maps, with the images saved for figures."""
    if (folder / "maps.pt").is_file():
        saved = torch.load(folder / "maps.pt", map_location="cpu", weights_only=True)
        results.maps.update({int(i): m for i, m in zip(saved["sample_ids"].tolist(), saved["maps"])})
    kept_ids = sorted(int(p.stem) for p in (folder / RECORDS / MAPS).glob("*.pt") if p.stem.isdigit())
    for sample_id, kept in read_saved_maps(folder, kept_ids).items():
        results.maps.setdefault(sample_id, kept["map"])
        if kept.get("image") is not None:
            results.images[sample_id] = kept["image"]


def expand_folders(paths: list[str | Path]) -> list[Path]:
    """Run folders of ``paths``: a run folder as it is, a table folder as its method folders
    (in its table's order), an assembled table folder as the run folders its ``sources.json``
    names (in that order)."""
    folders: list[Path] = []
    for path in map(Path, paths):
        if (path / RESULTS).is_file() or (path / RECORDS).is_dir():
            folders.append(path)
        elif (path / SOURCES).is_file():
            folders.extend(_sources_of(path))
        elif (path / "table.json").is_file() or any((child / RESULTS).is_file() for child in path.glob("*/")):
            order = []
            if (path / "table.json").is_file():
                order = [m["method"] for m in json.loads((path / "table.json").read_text()).get("methods", [])]
            children = [c for c in sorted(path.iterdir()) if c.is_dir() and (c / RESULTS).is_file()]
            by_method = {json.loads((c / RESULTS).read_text())["method"]: c for c in children}
            folders.extend(by_method[m] for m in order if m in by_method)
            folders.extend(c for m, c in by_method.items() if m not in order)
        else:
            folders.append(path)  # read_finished_run says what is wrong with it
    return folders


def _sources_of(table_dir: Path) -> list[Path]:
    """The run folders an assembled table folder's ``sources.json`` names; BenchmarkError for
    one that is no longer there (moved or deleted since the table was made)."""
    listed = [Path(run["folder"]) for run in json.loads((table_dir / SOURCES).read_text())["runs"]]
    missing = [str(folder) for folder in listed if not folder.is_dir()]
    if missing:
        raise BenchmarkError(
            f"{table_dir}: its {SOURCES} names run folders that are not there ({', '.join(missing)}); "
            "pass the run folders where they are now"
        )
    return listed


def compared_settings(run: FinishedRun) -> dict:
    """What the runs of one table must share: the images, the model, the metric settings and
    the seed (the bootstrap's)."""
    return {
        "images (sample fingerprint)": run.fingerprint.get("sha256"),
        "image count": run.content["images"] + run.content.get("skipped", 0),
        "model": run.model,
        **{f"metrics.{k}": v for k, v in sorted(run.content["config"].get("metrics", {}).items())},
        "seed": run.content.get("seed"),
    }


def differences(runs: list[FinishedRun]) -> list[str]:
    """``setting: value (folder) vs value (folder)`` for every compared setting that differs
    from the first run's."""
    reference = compared_settings(runs[0])
    return sorted(
        f"{name}: {first!r} ({runs[0].run_dir}) vs {other!r} ({run.run_dir})"
        for run in runs[1:]
        for name, first, other in differing(reference, compared_settings(run))
    )
