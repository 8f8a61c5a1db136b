"""Logging a finished evaluation to Weights & Biases (``--logger wandb``) or to Lightning's
``CSVLogger`` (``--logger csv``).

Logging happens on global rank 0 after the run folder is written, from the gathered
results (under DDP only rank 0 holds a logger run, so it must log what every rank computed),
and it can only add to the run: a logger failure is one warning line on stderr and the run
folder stays complete.

A W&B run holds the resolved config, each metric's mean in the summary (the keys of
``results.json``'s ``metrics``, plus ``ms_per_map``, ``images`` and the method's extras such as
LOTS's ``iterations``), the per-sample table of ``per_sample.csv``, overlays of the first
``--log-images`` maps and the mean Insertion/Deletion curves as a line plot. It is named
``<method>-<model>``, grouped by model (``--wandb.group``) and tagged with method and model,
and ``method``/``model`` are top-level config keys, so a W&B report can pivot runs into the
thesis's Table 5.2. Without an API key the run is logged offline into the run folder and one
line says how to upload it with ``wandb sync``; W&B never reaches the network then.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import outputs

#: W&B settings: no console capture or banners (the benchmark's own output stays readable),
#: no git/code snapshot, no system-metrics sampling (the run is logged after the evaluation).
_WANDB_SETTINGS = dict(silent=True, console="off", disable_git=True, save_code=False, x_disable_stats=True)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class LoggedRun:
    """What a logger left behind: where an offline W&B run lies (to ``wandb sync`` later)."""

    offline_dir: Path | None = None


# -- W&B mode and credentials -----------------------------------------------------------------


def wandb_credentials_configured() -> bool:
    """True when W&B has an API key (``WANDB_API_KEY``, an identity token file, its settings or
    the ``.netrc`` entry that ``wandb login`` writes), read without any network access."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib.wbauth import wbnetrc

        settings = wandb_setup.singleton().settings
        return bool(settings.api_key) or wbnetrc.read_netrc_auth(host=settings.base_url) is not None
    except Exception:  # wandb internals moved, or an unreadable .netrc: treat as no key
        return False


def wandb_mode() -> tuple[str | None, str]:
    """``(mode for wandb.init, why)``: ``WANDB_MODE`` when set (``None`` lets wandb read it),
    ``online`` with an API key, else ``offline``."""
    env = os.environ.get("WANDB_MODE", "").strip()
    if env:
        return None, f"WANDB_MODE={env}"
    if wandb_credentials_configured():
        return "online", "API key configured"
    return "offline", "no API key configured"


def start_wandb_run(options: Any, directory: Path, name: str, job_type: str, tags: list[str], config: dict):
    """``wandb.init`` for one run of the benchmark, its files under ``directory/wandb``."""
    import wandb

    mode, _ = wandb_mode()
    return wandb.init(
        project=options.wandb_project,
        entity=options.wandb_entity,
        group=options.wandb_group or options.model,
        name=name,
        job_type=job_type,
        tags=list(dict.fromkeys([*tags, *(options.wandb_tags or [])])),
        config=config,
        dir=str(directory),
        mode=mode,
        settings=wandb.Settings(**_WANDB_SETTINGS),
    )


def _finish(wandb_run, directory: Path) -> LoggedRun:
    offline = bool(getattr(wandb_run, "offline", False))
    offline_dir = Path(wandb_run.dir).parent if offline else None
    url = None if offline else getattr(wandb_run, "url", None)
    wandb_run.finish()
    if url:
        _say(f"W&B run: {url}")
    return LoggedRun(offline_dir=offline_dir)


def _guarded(what: str, folder: Path, log: Callable[[], LoggedRun]) -> LoggedRun:
    """Run ``log``; any failure becomes one warning line (the run folder is already written)."""
    try:
        return log()
    except Exception as error:  # a logger must never turn a finished evaluation into a crash
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        _say(
            f"warning: {what} failed ({type(error).__name__}{': ' + message if message else ''}); "
            f"the run folder is complete: {folder}"
        )
        try:
            import wandb

            if wandb.run is not None:
                wandb.run.finish(exit_code=1)
        except Exception:
            pass
        return LoggedRun()


def sync_hint(logged: list[LoggedRun]) -> str | None:
    """The one line that says how to upload offline W&B runs (``None`` when there are none)."""
    folders = [str(item.offline_dir) for item in logged if item.offline_dir is not None]
    if not folders:
        return None
    _, why = wandb_mode()
    runs = "run was" if len(folders) == 1 else f"{len(folders)} runs were"
    return f"W&B: {why}, so the {runs} logged offline; upload later with: wandb sync {' '.join(folders)}"


# -- what a run logs --------------------------------------------------------------------------


def summary_values(content: dict) -> dict[str, Any]:
    """The summary of a run: ``results.json``'s metric means, ``ms_per_map``, ``images``,
    ``skipped``, the method's extras (e.g. LOTS ``iterations``), ``undefined_<metric>`` and
    each mean's 95% bootstrap interval as ``<metric>_ci95_low`` / ``<metric>_ci95_high``, and
    per-stage means of metrics that have stages (``randomization_spearman_per_stage_1``...)."""
    return {
        **content["metrics"],
        "ms_per_map": content["ms_per_map"],
        "images": content["images"],
        "skipped": content["skipped"],
        **content["extras"],
        **{f"undefined_{key}": count for key, count in content["undefined"].items()},
        **{
            f"{key}_ci95_{side}": bound
            for key, bounds in content.get("ci95", {}).items()
            for side, bound in zip(("low", "high"), bounds or (None, None))
        },
        **{  # e.g. randomization_spearman_per_stage_1..S
            f"{key}_{name}_{number}": value
            for key, detail in content.get("metric_details", {}).items()
            for name, values in detail.items()
            if name.endswith("_per_stage")
            for number, value in enumerate(values, start=1)
        },
    }


def run_config(content: dict, table: str | None = None) -> dict[str, Any]:
    """The resolved config for the logger: ``method`` and ``model`` as plain top-level names
    (to group and pivot on), the method's parameters, the metrics' parameters, the rest."""
    config = dict(content["config"])
    method_section = dict(config.pop("method"))
    method_section.pop("name", None)
    model_section = config.pop("model")
    return {
        "method": content["method"],
        "model": content["model"],
        "method_params": method_section,
        "model_weights": model_section.get("weights"),
        "metrics_params": config.pop("metrics"),
        **config,
        "data": content.get("data"),
        "device": content.get("device"),
        "processes": content.get("processes"),
        "method_info": content.get("method_info"),
        "table": table,
    }


def _overlay_images(run, results, count: int) -> list:
    import wandb

    from benchmark.figures import overlay

    ids = list(results.images)[:count]
    captions = [title.replace("\n", ": ") for title in outputs.sample_titles(run, results, ids)]
    return [
        wandb.Image((overlay(results.images[i], results.maps[i]) * 255).round().astype(np.uint8), caption=caption)
        for i, caption in zip(ids, captions)
    ]


def _curves_plot(results, title: str):
    import wandb

    insertion = results.mean_curves["insertion"]
    deletion = results.mean_curves["deletion"]
    xs = np.linspace(0, 1, len(insertion)).tolist()
    return wandb.plot.line_series(
        xs=xs,
        ys=[list(insertion), list(deletion)],
        keys=["insertion", "deletion"],
        title=title,
        xname="fraction of pixels inserted / deleted",
    )


def _log_wandb_run(run, evaluation, table: str | None) -> LoggedRun:
    import wandb

    o = run.config.options
    content = evaluation.content
    wandb_run = start_wandb_run(
        o,
        evaluation.run_dir,
        name=f"{run.method}-{o.model}",
        job_type="table" if table else "test",
        tags=[run.method, o.model, *(["table"] if table else [])],
        config=run_config(content, table),
    )
    header, rows = outputs.per_sample_table(run, evaluation.results)
    logged: dict[str, Any] = {"per_sample": wandb.Table(columns=header, data=rows)}
    if o.log_images and evaluation.results.images:
        logged["overlays"] = _overlay_images(run, evaluation.results, o.log_images)
    if evaluation.results.mean_curves.get("insertion"):
        title = f"{run.method} on {o.model}: mean Insertion / Deletion curves"
        logged["mean_curves"] = _curves_plot(evaluation.results, title)
    for figure in ("road", "randomization"):  # the figures of the newer metrics, as drawn for the run folder
        if (evaluation.run_dir / f"{figure}.png").is_file():
            logged[f"{figure}_figure"] = wandb.Image(str(evaluation.run_dir / f"{figure}.png"))
    wandb_run.log(logged)
    wandb_run.summary.update(summary_values(content))
    return _finish(wandb_run, evaluation.run_dir)


def _log_csv_run(run, evaluation) -> LoggedRun:
    from pytorch_lightning.loggers import CSVLogger

    logger = CSVLogger(save_dir=str(evaluation.run_dir), name="", version="logs")
    logger.log_hyperparams(run_config(evaluation.content))
    numbers = {k: v for k, v in summary_values(evaluation.content).items() if isinstance(v, (int, float))}
    logger.log_metrics(numbers, step=0)
    logger.finalize("success")
    return LoggedRun()


def log_evaluation(run, evaluation, table: str | None = None) -> LoggedRun:
    """Log a finished evaluation with ``--logger`` (rank 0 only; never raises).

    ``run`` = the ``RunContext``, ``evaluation`` = the ``Evaluation`` whose folder is written;
    ``table`` = the name of the ``table`` run this evaluation belongs to, if any.
    """
    kind = run.config.options.logger
    if kind == "wandb":
        return _guarded("W&B logging", evaluation.run_dir, lambda: _log_wandb_run(run, evaluation, table))
    if kind == "csv":
        return _guarded("CSV logging", evaluation.run_dir, lambda: _log_csv_run(run, evaluation))
    return LoggedRun()


def _log_wandb_table(
    config, table_dir: Path, header: list[str], rows: list[list[Any]], contents: list[dict], agreement: dict | None
) -> LoggedRun:
    import wandb

    o = config.options
    wandb_run = start_wandb_run(
        o,
        table_dir,
        name=f"table-{o.model}",
        job_type="table",
        tags=["table", o.model],
        config={**config.to_table_dict(), "methods": list(o.methods), "model": o.model, "table": table_dir.name},
    )
    logged: dict[str, Any] = {"table": wandb.Table(columns=header, data=rows)}
    for figure in ("comparison", "agreement"):
        if (table_dir / f"{figure}.png").is_file():
            logged[figure] = wandb.Image(str(table_dir / f"{figure}.png"))
    if agreement:
        logged["metric_agreement"] = wandb.Table(
            columns=["metric_a", "metric_b", "kendall_tau_b", "ci95_low", "ci95_high"],
            data=[[p["metric_a"], p["metric_b"], p["kendall_tau_b"], *p["ci95"]] for p in agreement["pairs"]],
        )
        logged["rank_stability"] = wandb.Table(
            columns=["metric", "method", "rank", "stability"],
            data=[
                [metric, method, v["rank"], v["stability"]]
                for metric, by_method in agreement["ranks"].items()
                for method, v in by_method.items()
            ],
        )
    wandb_run.log(logged)
    wandb_run.summary.update(
        {f"{c['method']}/{key}": value for c in contents for key, value in summary_values(c).items()}
    )
    return _finish(wandb_run, table_dir)


def log_table(
    config,
    table_dir: Path,
    header: list[str],
    rows: list[list[Any]],
    contents: list[dict],
    agreement: dict | None = None,
) -> LoggedRun:
    """Log the combined table of a ``table`` run as its own W&B run (``--logger wandb``); the
    CSV logger has nothing to add to ``table.csv``. Rank 0 only; never raises."""
    if config.options.logger != "wandb":
        return LoggedRun()
    return _guarded(
        "W&B logging", table_dir, lambda: _log_wandb_table(config, table_dir, header, rows, contents, agreement)
    )
