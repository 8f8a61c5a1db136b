"""``test``: evaluate one method on one model and write the run folder."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytorch_lightning as pl

from benchmark import loggers, outputs
from benchmark.config import RunConfig
from benchmark.devices import RankZeroMessage, check_images_per_process, trainer_device_arguments
from benchmark.progress import StderrProgressBar
from benchmark.variants import base_method, folder_name
from benchmark.report import INTERVAL_NOTE, markdown_table, metric_keys, results_header, results_row


@dataclass
class RunContext:
    """What the writers need to know about a finished run besides its results."""

    config: RunConfig
    method: str
    samples: list
    extra_columns: tuple[str, ...]
    class_names: list[str]

    def class_name(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)


@dataclass
class Evaluation:
    """A finished evaluation of one method (on rank 0): its folder, results.json content and
    the in-memory results (maps of the first images for figures)."""

    run_dir: Path
    content: dict
    results: object
    logged: loggers.LoggedRun | None = None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_datamodule(config: RunConfig):
    from datamodules import ImageNetDataModule

    o = config.options
    datamodule = ImageNetDataModule(
        data=o.data,
        per_class=o.per_class,
        limit=o.limit,
        classes=o.classes,
        ground_truth=o.ground_truth,
        batch_size=o.batch_size,
        num_workers=o.num_workers,
        boxes=o.boxes,
    )
    check_images_per_process(o, len(datamodule.samples))
    check_boxes(config, datamodule)
    return datamodule


def check_boxes(config: RunConfig, datamodule) -> None:
    """The pointing games need boxes: none at all is an error before any model work."""
    from metrics.scorer import BOX_METRIC_KEYS, check_extra

    wanted = [key for key in check_extra(config.metrics.get("extra")) if key in BOX_METRIC_KEYS]
    if wanted and datamodule.boxed_samples == 0:
        from benchmark.errors import BenchmarkError

        raise BenchmarkError(
            f"--metrics.extra {','.join(wanted)} needs bounding boxes, and none of the "
            f"{len(datamodule.samples)} images has any: use a flat ILSVRC2012_val_* folder with "
            "LOC_val_solution.csv, or pass --boxes FILE.csv"
        )


def build_method(config: RunConfig, method: str | None = None):
    from methods import get_method
    from metrics import SaliencyScorer
    from models import build_classifier

    o = config.options
    method = method or o.method
    classifier = build_classifier(o.model, o.model_weights)
    return get_method(base_method(method))(
        classifier,
        config.method_configs[method],
        scorer=SaliencyScorer(**config.metrics),
        keep_maps=max(o.overlay_images, o.log_images if o.logger == "wandb" else 0),
        save_maps=o.save_maps,
        seed=o.seed,
    )


def make_trainer(config: RunConfig, root: Path, callbacks: tuple = ()) -> pl.Trainer:
    o = config.options
    return pl.Trainer(
        **trainer_device_arguments(o),
        logger=False,  # loggers run on rank 0 after the evaluation (benchmark.loggers)
        enable_checkpointing=False,
        enable_model_summary=False,
        inference_mode=False,  # methods need gradients with respect to the input
        default_root_dir=str(root),
        callbacks=[StderrProgressBar(), *callbacks],
    )


def evaluate(
    config: RunConfig,
    method_name: str,
    datamodule,
    run_dir: Path | Callable[[], Path] | None = None,
    table: bool = False,
) -> Evaluation | None:
    """Run one method over the datamodule's images, write its run folder and log it (rank 0).

    ``run_dir`` = the folder to write, or a function that makes its path (called on rank 0
    only; default: a new ``<output>/<method>_<model>_<time>``); ``table``: the run is one
    method of a ``table`` run (whose folder holds ``run_dir``). Returns ``None`` on the other
    ranks.
    """
    from datamodules import imagenet_classes

    o = config.options
    pl.seed_everything(o.seed, workers=True, verbose=False)
    method = build_method(config, method_name)
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    message = RankZeroMessage(f"{method_name} on {o.model}: {datamodule.describe()}")
    trainer = make_trainer(config, Path(o.output), callbacks=(message,))
    trainer.test(method, datamodule=datamodule, verbose=False)
    if trainer.global_rank != 0:
        return None
    results = method.results
    run = RunContext(config, method_name, datamodule.samples, method.extra_columns, imagenet_classes().names)
    if run_dir is None:
        run_dir = outputs.make_run_dir(o.output, folder_name(method_name), o.model)
    else:
        run_dir = run_dir() if callable(run_dir) else run_dir
        run_dir.mkdir(parents=True, exist_ok=False)
    content = outputs.results_dict(
        run,
        results,
        {
            "data": datamodule.describe(),
            "device": str(method.device),
            "processes": trainer.world_size,
            "method_info": method.describe(),
            "started": started.isoformat(timespec="seconds"),
            "duration_s": round(time.perf_counter() - clock, 2),
        },
    )
    outputs.write_results_json(run_dir / "results.json", content)
    outputs.write_per_sample_csv(run_dir / "per_sample.csv", run, results)
    outputs.write_config(run_dir / "config.yaml", run)
    outputs.write_figures(run_dir, run, results)
    if o.save_maps:
        outputs.write_maps(run_dir / "maps.pt", results)
    for sample_id, reason in results.failures:
        _say(f"skipped {run.samples[sample_id].file}: {reason}")
    evaluation = Evaluation(run_dir, content, results)
    evaluation.logged = loggers.log_evaluation(run, evaluation, table=run_dir.parent.name if table else None)
    return evaluation


def print_notes(evaluation: Evaluation) -> None:
    content = evaluation.content
    if content["skipped"]:
        print(f"{content['method']}: skipped {content['skipped']} unreadable image(s); see results.json")
    if content["undefined"]:
        print(f"{content['method']}: undefined values left out of the means: {content['undefined']}")


def run_test(config: RunConfig) -> Path | None:
    """``test``: one method end to end; returns the run folder (on rank 0)."""
    datamodule = build_datamodule(config)  # bad folders fail here, before any model work
    evaluation = evaluate(config, config.options.method, datamodule)
    if evaluation is None:
        return None
    print(markdown_table(results_header(metric_keys(evaluation.content)), [results_row(evaluation.content)]))
    print(INTERVAL_NOTE)
    print_notes(evaluation)
    print(f"run folder: {evaluation.run_dir}")
    hint = loggers.sync_hint([evaluation.logged])
    if hint:
        _say(hint)
    return evaluation.run_dir
