"""``table``: several methods on the same images, one Table-5.2-style comparison.

Each method runs through the same :func:`benchmark.evaluation.evaluate_method` as ``test`` and gets its
own run folder inside the table folder; the table's numbers are read from those
``results.json`` files, so they cannot disagree.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import yaml

from benchmark import figures
from benchmark.agreement import MethodScores, MetricAgreement, agreement_figure, agreement_markdown, agreement_of
from benchmark.config import RunConfig
from benchmark.core.errors import BenchmarkError
from benchmark.evaluation import evaluate_method, print_notes
from benchmark.files import DiskFull, atomic_open, write_text_atomic
from benchmark.interrupts import RunInterrupted
from benchmark.loggers import log_table, sync_hint
from benchmark.markdown_table import INTERVAL_NOTE, markdown_table, metric_cell, metric_header, metric_keys
from benchmark.metrics.selection import METRIC_KEYS
from benchmark.outputs import make_stamped_dir
from benchmark.records import refuse_other_settings, settings_differences
from benchmark.run_data import build_datamodule
from benchmark.significance import PairTest, legend, marks, not_significant_lines, pair_tests
from benchmark.variants import folder_name


def table_header(keys=METRIC_KEYS) -> list[str]:
    return ["method", "images", *(metric_header(k) for k in keys), "ms/map ↓"]


TABLE_HEADER = table_header()


def table_rows(contents: list[dict], cell_marks: dict[tuple[str, str], str] | None = None) -> list[list[str]]:
    """Rows of the markdown table: each metric as ``mean [low, high]`` plus its mark."""
    keys = metric_keys(contents[0])
    cell_marks = cell_marks or {}
    rows = []
    for content in contents:
        cells = [metric_cell(content, k) + cell_marks.get((content["method"], k), "") for k in keys]
        ms = content["ms_per_map"]
        rows.append([content["method"], str(content["images"]), *cells, "nan" if ms is None else f"{ms:.2f}"])
    return rows


def make_table_dir(output: str, model: str) -> Path:
    return make_stamped_dir(output, f"table_{folder_name(model)}")


def write_table(
    table_dir: Path,
    contents: list[dict],
    model: str,
    tests: list[PairTest] | None = None,
    n_resamples: int = 0,
    agreement: MetricAgreement | None = None,
) -> tuple[Path, Path]:
    """table.md (means with intervals and significance marks, then the metric agreement),
    table.csv (means, then the interval bounds), significance.csv, table.json (everything, for
    loggers) and agreement.png."""
    keys = metric_keys(contents[0])
    tests = tests or []
    cell_marks = marks(contents, keys, tests) if tests else {}
    header = table_header(keys)
    images = contents[0]["images"]
    text = (
        f"Model: {model}; {images} images ({contents[0]['data']}). "
        "↑ higher is better, ↓ lower is better; metrics in percent.\n\n"
        + markdown_table(header, table_rows(contents, cell_marks))
        + "\n\n"
        + INTERVAL_NOTE
        + "\n"
    )
    if tests:
        text += legend(n_resamples, images) + "\n"
        lines = not_significant_lines(tests, keys)
        text += (
            "\nNot significantly different:\n" + "\n".join(lines) + "\n"
            if lines
            else ("\nEvery difference between two methods is significant.\n")
        )
    if agreement is not None:
        text += "\n" + agreement_markdown(agreement)
        agreement_figure(
            agreement,
            table_dir / "agreement.png",
            title=f"{model}: do the metrics agree? ({len(agreement.methods)} methods, {images} images)",
        )
    markdown = table_dir / "table.md"
    write_text_atomic(markdown, text)
    csv_path = table_dir / "table.csv"
    with atomic_open(csv_path, newline="") as handle:
        writer = csv.writer(handle)
        header, rows = table_values(contents)
        writer.writerow(header)
        writer.writerows(rows)
    with atomic_open(table_dir / "significance.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["metric", "method_a", "method_b", "difference", "ci95_low", "ci95_high", "images", "significant"]
        )
        for t in tests:
            writer.writerow([t.metric, t.method_a, t.method_b, t.difference, t.low, t.high, t.images, t.significant])
    summary = {
        "model": model,
        "images": images,
        "methods": [
            {k: c.get(k) for k in ("method", "images", "metrics", "ci95", "ms_per_map", "undefined")} for c in contents
        ],
        "pairs": [t.as_dict() for t in tests],
        "bootstrap_resamples": n_resamples,
        "agreement": agreement.as_dict() if agreement is not None else None,
    }
    write_text_atomic(table_dir / "table.json", json.dumps(summary, indent=2) + "\n")
    return markdown, csv_path


def table_values(contents: list[dict]) -> tuple[list[str], list[list]]:
    """Header and rows of ``table.csv`` (also logged to W&B): method, images, the metric
    means, ms per map, then each metric's 95% interval bounds."""
    keys = metric_keys(contents[0])
    header = table_header(keys) + [f"{metric_header(k)} {bound}" for k in keys for bound in ("ci95 low", "ci95 high")]
    rows = []
    for content in contents:
        intervals = content.get("ci95", {})
        rows.append(
            [content["method"], content["images"]]
            + [content["metrics"][k] for k in keys]
            + [content["ms_per_map"]]
            + [bound for k in keys for bound in (intervals.get(k) or [None, None])]
        )
    return header, rows


def write_comparison_figure(table_dir: Path, evaluations: list, model: str) -> Path | None:
    """``comparison.png``, thesis Fig. 5.2 (drawn by :func:`benchmark.figures.comparison_grid`): a row
    per image, the image and one overlay column per method."""
    first = evaluations[0].results
    ids = [i for i in first.images if all(i in e.results.maps for e in evaluations)]
    ids = ids[: evaluations[0].content["config"]["overlay_images"]]
    if not ids:
        return None
    return figures.comparison_grid(
        images=[first.images[i] for i in ids],
        maps_by_method={e.content["method"]: [e.results.maps[i] for i in ids] for e in evaluations},
        row_titles=[f"#{i}" for i in ids],
        path=table_dir / "comparison.png",
        suptitle=f"{model}: " + ", ".join(e.content["method"] for e in evaluations),
    )


def write_comparison(
    table_dir: Path, evaluations: list, model: str, n_resamples: int, seed: int
) -> tuple[Path, MetricAgreement | None]:
    """The table folder's files from the evaluations of its methods (``benchmark.run_results.Evaluation``
    or finished run folders read back): the paired tests, the metric agreement, then
    :func:`write_table` and the comparison figure. Returns table.md and the agreement."""
    contents = [e.content for e in evaluations]
    keys = metric_keys(contents[0])
    tests = pair_tests(evaluations, keys, n_resamples, seed)
    agreement = agreement_of([MethodScores.of(e) for e in evaluations], keys, n_resamples, seed)
    markdown, _ = write_table(table_dir, contents, model, tests, n_resamples, agreement)
    write_comparison_figure(table_dir, evaluations, model)
    return markdown, agreement


def check_resumable_table(table_dir: Path, config: RunConfig) -> None:
    """``table --resume``: the folder is a table folder of the same settings (each method's
    own folder is checked as it is resumed)."""
    stored_file = table_dir / "config.yaml"
    if not table_dir.is_dir() or not stored_file.is_file():
        raise BenchmarkError(
            f"--resume {table_dir}: not a table folder (no config.yaml); pass the folder a killed table run printed"
        )
    stored = yaml.safe_load(stored_file.read_text()) or {}
    refuse_other_settings(table_dir, settings_differences(stored, config.to_table_dict()), what="table")


def run_table(config: RunConfig) -> Path | None:
    """Run every method of ``config.options.methods`` on the same images (rank 0 returns the
    table folder).

    Under DDP every process runs every method (each evaluation is collective); only rank 0
    makes the table folder, writes and logs.
    """
    o = config.options
    datamodule = build_datamodule(config)
    if o.estimate:
        from benchmark.estimate import print_estimate

        print_estimate(config, datamodule, list(o.methods))
        return None
    table_dir: Path | None = Path(o.resume) if o.resume else None
    if table_dir is not None:
        check_resumable_table(table_dir, config)

    def method_dir(name: str) -> Path:  # called on rank 0 only, as each evaluation starts
        nonlocal table_dir
        if table_dir is None:
            table_dir = make_table_dir(o.output, o.model)
            write_text_atomic(table_dir / "config.yaml", yaml.safe_dump(config.to_table_dict(), sort_keys=False))
        return table_dir / name

    evaluations = []
    for number, name in enumerate(o.methods, start=1):
        earlier = table_dir / folder_name(name) if table_dir is not None else None
        try:
            evaluation = evaluate_method(
                config,
                name,
                datamodule,
                run_dir=lambda n=name: method_dir(folder_name(n)),
                table=True,
                resume=earlier if earlier is not None and earlier.is_dir() else None,
                label=f"{name} (method {number} of {len(o.methods)})",
            )
        except RunInterrupted as stop:  # a table resumes as a whole
            stop.table_dir = table_dir
            raise
        except DiskFull as full:
            if table_dir is not None and table_dir.is_dir() and (table_dir / "config.yaml").is_file():
                full.kept = f"the methods finished so far and the records of the one running are in {table_dir}"
                full.resume = f"python -m benchmark table --resume {table_dir}"
            raise
        if evaluation is not None:
            evaluations.append(evaluation)
    if not evaluations:  # not rank 0
        return None
    contents = [e.content for e in evaluations]
    markdown, agreement = write_comparison(table_dir, evaluations, o.model, int(config.metrics["bootstrap"]), o.seed)
    logged = [e.logged for e in evaluations]
    logged.append(
        log_table(
            config, table_dir, *table_values(contents), contents, agreement.as_dict() if agreement is not None else None
        )
    )
    print(markdown.read_text().rstrip())
    for evaluation in evaluations:
        print_notes(evaluation)
    print(f"table folder: {table_dir}")
    hint = sync_hint(logged)
    if hint:
        print(hint, file=sys.stderr, flush=True)
    return table_dir
