"""``python -m benchmark report DIR... --output report.html``: one self-contained HTML page
(images embedded, no network, opens from disk) from table folders or run folders: the sortable
table with its significance marks, the metric agreement, the same images explained by every
method side by side (the first K and the K on which the methods disagree most), the mean
Insertion/Deletion curves, and per method its settings and problem images.

The page is rendered by Jinja2 from ``templates/report.html.j2`` (autoescaped); this module only
gathers the numbers and pictures.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from benchmark.agreement import MethodScores, agreement_of, draw_agreement, tau_cell
from benchmark.core.errors import BenchmarkError
from benchmark.files import write_text_atomic
from benchmark.markdown_table import NOT_COMPUTABLE, interval_text, metric_header, metric_keys, value_text
from benchmark.metrics.functional.image import MAP_PROBLEM_NAMES
from benchmark.outputs import package_versions
from benchmark.run_folders import FinishedRun, expand_folders, read_finished_run
from benchmark.significance import BEST_MARK, TIED_MARK, legend, marks, pair_tests
from benchmark.table_from import group_by_model

TEMPLATE = "report.html.j2"
#: The metrics whose mean curves are plotted for every method (one plot each), and their x axis.
CURVE_METRICS = {
    "insertion": "fraction of pixels inserted",
    "deletion": "fraction of pixels deleted",
    "road_morf": "fraction of pixels removed and imputed (most relevant first)",
    "road_lerf": "fraction of pixels removed and imputed (least relevant first)",
}


def _data_uri(picture: np.ndarray, kind: str = "JPEG") -> str:
    """``data:`` URI of an ``H x W x 3`` picture in [0, 1] (JPEG for photos, PNG for plots)."""
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray((np.clip(picture, 0, 1) * 255).round().astype(np.uint8))
    image.save(buffer, kind, **({"quality": 85} if kind == "JPEG" else {}))
    mime = "jpeg" if kind == "JPEG" else "png"
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure_uri(fig) -> str:
    from benchmark.figures import plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


# -- the table ---------------------------------------------------------------------------------


def _rows(group: list[FinishedRun], keys: list[str], cell_marks: dict) -> list[dict]:
    rows = []
    for run in group:
        content = run.content
        cells = []
        for key in keys:
            value = _number(content["metrics"].get(key))
            interval = content.get("ci95", {}).get(key) or [None, None]
            computable = key not in content.get("not_computable", {}) and math.isfinite(value)
            mark = cell_marks.get((run.method, key), "")
            cells.append(
                {
                    "text": value_text(value) if computable else "",
                    "interval": interval_text(interval) if computable else "",
                    "mark": mark,
                    "mark_class": {BEST_MARK: "best", TIED_MARK: "tied"}.get(mark, ""),
                    "sort": f"{value:.6g}" if computable else "",
                }
            )
        ms = content.get("ms_per_map")
        rows.append(
            {
                "method": run.method,
                "images": content["images"],
                "cells": cells,
                "ms": "-" if ms is None else f"{ms:.1f}",
                "ms_sort": "" if ms is None else f"{ms:.6g}",
            }
        )
    return rows


def _agreement(group: list[FinishedRun], keys: list[str], resamples: int, seed: int) -> dict | None:
    agreement = agreement_of([MethodScores.of(r) for r in group], keys, resamples, seed)
    if agreement is None:
        return None
    titles = [metric_header(k) for k in agreement.metrics]
    r = agreement.result
    figure = _figure_uri(draw_agreement(agreement))
    return {
        "titles": titles,
        "images": r.images,
        "resamples": r.resamples,
        "figure": figure,
        "tau_rows": [
            {"title": titles[i], "cells": [tau_cell(agreement, i, j) for j in range(len(titles))]}
            for i in range(len(titles))
        ],
        "rank_rows": [
            {
                "method": method,
                "cells": [
                    "-"
                    if math.isnan(float(r.ranks[k, m]))
                    else f"{int(r.ranks[k, m])} ({float(r.stability[k, m]):.0%})"
                    for k in range(len(titles))
                ],
            }
            for m, method in enumerate(agreement.methods)
        ],
    }


# -- the side-by-side images ---------------------------------------------------------------------


def _image_of(group: list[FinishedRun], sample_id: int, size: int) -> Tensor | None:
    """The image ``sample_id`` as the runs saw it: kept with a map, else loaded from its file."""
    for run in group:
        if sample_id in run.results.images:
            return run.results.images[sample_id]
    from benchmark.datamodules.dataset import ImageDataset
    from benchmark.datamodules.samples import Sample

    file = group[0].results.files.get(sample_id)
    if not file:
        return None
    item = ImageDataset([Sample(sample_id, file, -1)], resize=round(size * 256 / 224), crop=size)[0]
    return None if item["error"] else item["image"]


def disagreeing_ids(group: list[FinishedRun], candidates: Sequence[int], by: str, count: int) -> list[int]:
    """The ``count`` images of ``candidates`` with the largest spread (max - min over the
    methods) of metric ``by``, largest first (ties: lower id first); images where a method has
    no value are left out."""
    rows = [{i: r for r, i in enumerate(run.results.sample_ids)} for run in group]
    spreads = []
    for sample_id in candidates:
        values = [run.results.columns[by][row[sample_id]] for run, row in zip(group, rows)]
        if all(math.isfinite(v) for v in values):
            spreads.append((-(max(values) - min(values)), sample_id))
    return [sample_id for _, sample_id in sorted(spreads)[:count]]


def _image_name(run: FinishedRun, sample_id: int, position: dict[int, int]) -> str:
    """The image's class name where its label is known, else its file name (shortened)."""
    from benchmark.datamodules import imagenet_classes

    label = run.results.columns.get("label", [math.nan] * len(run.results.sample_ids))[position[sample_id]]
    if math.isfinite(label) and label >= 0:
        return imagenet_classes().name(int(label))[:28]
    return Path(run.results.files.get(sample_id, "")).name.replace("skimage:", "")[:28]


def _grid(group: list[FinishedRun], ids: list[int], key: str, title: str, note: str, by: str | None) -> dict | None:
    from benchmark.figures import overlay

    positions = [{i: r for r, i in enumerate(run.results.sample_ids)} for run in group]
    rows = []
    for sample_id in ids:
        size = group[0].results.maps[sample_id].shape[-1]
        image = _image_of(group, sample_id, size)
        if image is None:
            continue
        cells = []
        for run, position in zip(group, positions):
            value = run.results.columns[by][position[sample_id]] if by else None
            cells.append(
                {
                    "method": run.method,
                    "overlay": _data_uri(overlay(image, run.results.maps[sample_id])),
                    "caption": f"{metric_header(by)} {value:.1f}" if by and math.isfinite(value) else "",
                }
            )
        rows.append(
            {
                "sample_id": sample_id,
                "image": _data_uri(image.permute(1, 2, 0).numpy()),
                "caption": f"#{sample_id} {_image_name(group[0], sample_id, positions[0])}",
                "cells": cells,
            }
        )
    if not rows:
        return None
    return {"key": key, "title": title, "note": note, "methods": [r.method for r in group], "rows": rows}


def _grids(group: list[FinishedRun], count: int, by: str) -> list[dict]:
    common = sorted(set.intersection(*(set(r.results.maps) & set(r.results.sample_ids) for r in group)))
    full = all(r.content["config"].get("save_maps") for r in group)
    source = (
        "every image (the runs saved all maps)"
        if full
        else f"the {len(common)} image(s) whose maps every run kept (run with --save-maps for all)"
    )
    grids = []
    first = _grid(
        group,
        common[:count],
        "first",
        f"The first {min(count, len(common))} images",
        f"Rows: images; columns: the image, then each method's map over it. From {source}.",
        by,
    )
    if first:
        grids.append(first)
    if len(group) > 1:
        disagree = disagreeing_ids(group, common, by, count)
        grid = _grid(
            group,
            disagree,
            "disagree",
            f"The {len(disagree)} images on which the methods disagree most",
            f"Largest spread (max - min over the methods) of {metric_header(by)}, largest first; from {source}.",
            by,
        )
        if grid:
            grids.append(grid)
    return grids


# -- curves and settings -------------------------------------------------------------------------


def _curves(group: list[FinishedRun]) -> list[dict]:
    from benchmark.figures import plt
    from benchmark.metrics.functional.road import percentages_of

    plots = []
    for key, x_label in CURVE_METRICS.items():
        curves = [(r, r.content.get("mean_curves", {}).get(key)) for r in group]
        curves = [(run, curve) for run, curve in curves if curve]
        if not curves:
            continue
        road = key.startswith("road_")
        fig, ax = plt.subplots(figsize=(5.6, 3.8))
        for run, curve in curves:
            values = np.array([np.nan if v is None else v for v in curve], dtype=float)
            if road:  # one point per percentage
                x = np.array(percentages_of(run.content["config"].get("metrics", {})), dtype=float) / 100
            else:
                x = np.linspace(0, 1, len(values))
            ax.plot(
                x,
                values,
                marker="o" if road else None,
                markersize=3,
                label=f"{run.method} ({_number(run.content['metrics'][key]):.2f})",
            )
        ax.set_xlabel(x_label)
        ax.set_ylabel("mean class probability")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        what = "mean x 100" if road else "AUC x 100"
        ax.set_title(f"{metric_header(key)}: mean curves ({what})", fontsize=9)
        ax.legend(fontsize=7)
        plots.append({"title": f"{key} curves", "png": _figure_uri(fig)})
    return plots


def _settings(run: FinishedRun) -> list[tuple[str, str]]:
    c = run.content
    config = c.get("config", {})
    method = {k: v for k, v in config.get("method", {}).items() if k != "name"}
    versions = c.get("versions", {})
    rows = [
        ("run folder", str(run.run_dir)),
        ("model", f"{c['model']} (weights: {c.get('model_weights', 'default')})"),
        ("method parameters", ", ".join(f"{k}={v}" for k, v in method.items()) or "-"),
        ("method facts", ", ".join(f"{k}={v}" for k, v in c.get("method_info", {}).items()) or "-"),
        ("metric settings", ", ".join(f"{k}={v}" for k, v in config.get("metrics", {}).items())),
        ("data", str(c.get("data", "-"))),
        (
            "execution",
            f"{c.get('execution')}, precision {c.get('precision')}, {c.get('device')} x "
            f"{c.get('processes')} process(es), {c.get('threads')} thread(s)"
            + (f", allocator: {c['allocator']}" if c.get("allocator") else ""),
        ),
        ("seed", str(c.get("seed"))),
        ("started / took", f"{c.get('started')} / {c.get('duration_s')} s"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
    ]
    return rows


def _problems(run: FinishedRun) -> list[str]:
    lines = [
        f"skipped #{f['sample_id']} {Path(f['file']).name}: {f['reason']}" for f in run.content.get("skipped_files", [])
    ]
    for code, name in MAP_PROBLEM_NAMES.items():
        ids = [i for i, v in zip(run.results.sample_ids, run.results.columns["map_problem"]) if v == code]
        if ids:
            shown = ", ".join(f"#{i}" for i in ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
            lines.append(f"{len(ids)} {name} map(s): {shown}")
    for key, reason in run.content.get("not_computable", {}).items():
        lines.append(f"{metric_header(key)} not computable: {reason}")
    return lines


# -- the page ------------------------------------------------------------------------------------


@dataclass
class ReportOptions:
    """``--images K`` and ``--by METRIC`` of the report."""

    images: int = 8
    by: str = "deletion"


def _section(group: list[FinishedRun], options: ReportOptions) -> dict:
    contents = [r.content for r in group]
    keys = metric_keys(contents[0])
    if options.by not in keys:
        raise BenchmarkError(f"report --by {options.by}: not a metric of these runs; choose one of {', '.join(keys)}")
    resamples = int(contents[0]["config"]["metrics"]["bootstrap"])
    seed = int(contents[0].get("seed", 0))
    tests = pair_tests(group, keys, resamples, seed) if len(group) > 1 else []
    info = contents[0].get("metric_info", {})
    return {
        "model": group[0].model,
        "methods": [r.method for r in group],
        "images": contents[0]["images"],
        "metrics": [{"key": k, "header": metric_header(k, info.get(k)), "title": k} for k in keys],
        "rows": _rows(group, keys, marks(contents, keys, tests) if tests else {}),
        "legend": legend(resamples, contents[0]["images"]) if tests else "",
        "not_computable": [
            f"{r.method}: {metric_header(k)} not computable: {why}"
            for r in group
            for k, why in r.content.get("not_computable", {}).items()
        ],
        "agreement": _agreement(group, keys, resamples, seed) if len(group) > 1 else None,
        "grids": _grids(group, options.images, options.by),
        "curves": _curves(group),
        "details": [{"method": r.method, "settings": _settings(r), "problems": _problems(r)} for r in group],
    }


def render_report(groups: dict[str, list[FinishedRun]], options: ReportOptions, sources: list[Path]) -> str:
    """The HTML of the report of ``groups`` (model -> its runs)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    methods = sorted({r.method for group in groups.values() for r in group})
    return environment.get_template(TEMPLATE).render(
        title="Saliency benchmark report",
        subtitle=f"{', '.join(methods)} on {', '.join(groups)}",
        sections=[_section(group, options) for group in groups.values()],
        sources=[str(s) for s in sources],
        version=package_versions().get("saliency-benchmark", ""),
        made=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        not_computable=NOT_COMPUTABLE,
    )


def write_report(paths: list[str], output: str, images: int = 8, by: str = "deletion") -> Path:
    """``report``: read the folders, render the page, write it to ``output``."""
    if isinstance(images, bool) or not isinstance(images, int) or images < 0:
        raise BenchmarkError(f"report --images must be a number of images >= 0, got {images!r}")
    folders = expand_folders(paths)
    runs = [read_finished_run(folder) for folder in folders]
    if not runs:
        raise BenchmarkError("report needs at least one run folder or table folder")
    html = render_report(group_by_model(runs), ReportOptions(images, by), folders)
    path = Path(output)
    if path.is_dir():
        raise BenchmarkError(
            f"report --output {output}: is a folder; give the HTML file to write, e.g. {path / 'report.html'}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, html)
    return path
