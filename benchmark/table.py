"""``table``: several methods on the same images, one Table-5.2-style comparison.

Each method runs through the same :func:`benchmark.run.evaluate` as ``test`` and gets its
own run folder inside the table folder; the table's numbers are read from those
``results.json`` files, so they cannot disagree.
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from pathlib import Path

import yaml

from benchmark import figures
from benchmark.config import RunConfig
from benchmark.loggers import log_table, sync_hint
from benchmark.report import markdown_table, metric_header
from benchmark.run import build_datamodule, evaluate, print_notes
from metrics.scorer import METRIC_KEYS

TABLE_HEADER = ["method", "images", *(metric_header(k) for k in METRIC_KEYS), "ms/map ↓"]


def table_rows(contents: list[dict]) -> list[list[str]]:
    rows = []
    for content in contents:
        values = [content["metrics"][k] for k in METRIC_KEYS] + [content["ms_per_map"]]
        rows.append(
            [content["method"], str(content["images"]), *("nan" if v is None else f"{v:.2f}" for v in values)]
        )
    return rows


def make_table_dir(output: str, model: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(output) / f"table_{model}_{stamp}"
    table_dir, n = base, 1
    while table_dir.exists():
        n += 1
        table_dir = base.with_name(f"{base.name}_{n}")
    table_dir.mkdir(parents=True)
    return table_dir


def write_table(table_dir: Path, contents: list[dict], model: str) -> tuple[Path, Path]:
    rows = table_rows(contents)
    markdown = table_dir / "table.md"
    markdown.write_text(
        f"Model: {model}; {contents[0]['images']} images ({contents[0]['data']}). "
        "↑ higher is better, ↓ lower is better; metrics in percent.\n\n"
        + markdown_table(TABLE_HEADER, rows)
        + "\n"
    )
    csv_path = table_dir / "table.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TABLE_HEADER)
        writer.writerows(table_values(contents))
    return markdown, csv_path


def table_values(contents: list[dict]) -> list[list]:
    """The rows of ``table.csv`` as values: method, images, the metric means, ms per map."""
    return [
        [c["method"], c["images"], *(c["metrics"][k] for k in METRIC_KEYS), c["ms_per_map"]]
        for c in contents
    ]


def comparison_grid(table_dir: Path, evaluations: list, model: str) -> Path | None:
    """Thesis Fig. 5.2: a row per image, the image and one overlay column per method."""
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


def run_table(config: RunConfig) -> Path | None:
    """Run every method of ``config.options.methods`` on the same images (rank 0 returns the
    table folder).

    Under DDP every process runs every method (each evaluation is collective); only rank 0
    makes the table folder, writes and logs.
    """
    o = config.options
    datamodule = build_datamodule(config)
    table_dir: Path | None = None

    def method_dir(name: str) -> Path:  # called on rank 0 only, after each evaluation
        nonlocal table_dir
        if table_dir is None:
            table_dir = make_table_dir(o.output, o.model)
            (table_dir / "config.yaml").write_text(yaml.safe_dump(config.to_table_dict(), sort_keys=False))
        return table_dir / name

    evaluations = []
    for name in o.methods:
        evaluation = evaluate(config, name, datamodule, run_dir=lambda n=name: method_dir(n), table=True)
        if evaluation is not None:
            evaluations.append(evaluation)
    if table_dir is None:  # not rank 0
        return None
    contents = [e.content for e in evaluations]
    markdown, _ = write_table(table_dir, contents, o.model)
    comparison_grid(table_dir, evaluations, o.model)
    logged = [e.logged for e in evaluations]
    logged.append(log_table(config, table_dir, TABLE_HEADER, table_values(contents), contents))
    print(markdown.read_text().rstrip())
    for evaluation in evaluations:
        print_notes(evaluation)
    print(f"table folder: {table_dir}")
    hint = sync_hint(logged)
    if hint:
        print(hint, file=sys.stderr, flush=True)
    return table_dir

