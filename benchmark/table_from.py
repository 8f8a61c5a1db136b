"""``table --from RUN_DIR...``: one table assembled from finished run folders (each made by
``test`` anywhere, e.g. one SLURM job per method), with the same files as a ``table`` run and
the paired comparisons computed from the runs' per-sample values. Runs of several models make
one table per model; runs that do not share the images, the model or the metric settings are
refused with the differences named."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.core.errors import BenchmarkError
from benchmark.files import write_text_atomic
from benchmark.run_folders import SOURCES, FinishedRun, differences, expand_folders, read_finished_run
from benchmark.table import make_table_dir, write_comparison


def group_by_model(runs: list[FinishedRun]) -> dict[str, list[FinishedRun]]:
    """The runs per model, in the order given; BenchmarkError for a method given twice for one
    model or runs of one model that differ in images or metric settings."""
    groups: dict[str, list[FinishedRun]] = {}
    for run in runs:
        groups.setdefault(run.model, []).append(run)
    for model, group in groups.items():
        seen: dict[str, Path] = {}
        for run in group:
            if run.method in seen:
                raise BenchmarkError(
                    f"table --from: {run.method} on {model} is given twice ({seen[run.method]} and {run.run_dir}); "
                    "pass one run per method and model"
                )
            seen[run.method] = run.run_dir
        found = differences(group)
        if found:
            raise BenchmarkError(
                f"table --from: the runs of {model} cannot share a table, they differ in: "
                + "; ".join(found)
                + ". Rerun them with the same images and metric settings"
            )
    return groups


def assemble_table(group: list[FinishedRun], output: str) -> Path:
    """One table folder from the runs of one model (as ``table`` writes it)."""
    model, first = group[0].model, group[0].content
    table_dir = make_table_dir(output, model)
    write_comparison(table_dir, group, model, int(first["config"]["metrics"]["bootstrap"]), int(first["seed"]))
    write_text_atomic(
        table_dir / SOURCES,
        json.dumps(
            {"model": model, "runs": [{"method": r.method, "folder": str(r.run_dir.resolve())} for r in group]},
            indent=2,
        )
        + "\n",
    )
    return table_dir


def run_table_from(paths: list[str], output: str) -> list[Path]:
    """``table --from``: the table folder of each model among the runs of ``paths``."""
    runs = [read_finished_run(folder) for folder in expand_folders(paths)]
    if len(runs) < 2:
        raise BenchmarkError(f"table --from needs at least two finished runs, got {len(runs)}")
    folders = []
    for model, group in group_by_model(runs).items():
        if len(group) < 2:
            print(
                f"note: {model} has one run ({group[0].run_dir}); a table needs two methods, so it has none", flush=True
            )
            continue
        table_dir = assemble_table(group, output)
        print((table_dir / "table.md").read_text().rstrip())
        print(f"table folder: {table_dir}")
        folders.append(table_dir)
    return folders
