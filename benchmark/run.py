"""``test``: evaluate one method on one model and write the run folder."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytorch_lightning as pl
import torch

from benchmark import loggers, outputs, records
from benchmark.config import RunConfig
from benchmark.devices import (
    RankZeroMessage,
    apply_allocator,
    apply_numerics,
    check_images_per_process,
    device_facts,
    numerics_in_force,
    trainer_device_arguments,
    uses_cuda,
)
from benchmark.estimate import print_estimate
from benchmark.explainers import build_method
from benchmark.files import DiskFull, is_disk_full
from benchmark.interrupts import RunInterrupted
from benchmark.progress import ImageProgressBar
from benchmark.report import INTERVAL_NOTE, markdown_table, metric_keys, results_header, results_row, table_extras
from benchmark.variants import base_method, folder_name


@dataclass
class RunContext:
    """What the writers need to know about a finished run besides its results."""

    config: RunConfig
    method: str
    samples: list
    extra_columns: tuple  # the method's ExtraColumn specs
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


def datamodule_of(o):
    """The datamodule of the run options ``o`` (the images, their selection and batching)."""
    from benchmark.datamodules import ImageNetDataModule

    return ImageNetDataModule(
        data=o.data,
        per_class=o.per_class,
        limit=o.limit,
        classes=o.classes,
        ground_truth=o.ground_truth,
        batch_size=o.batch_size,
        num_workers=o.num_workers,
        boxes=o.boxes,
        pin_memory=uses_cuda(o.accelerator),
    )


def build_datamodule(config: RunConfig):
    o = config.options
    datamodule = datamodule_of(o)
    check_images_per_process(o, len(datamodule.samples))
    check_boxes(config, datamodule)
    check_steps(config, datamodule.dataset.crop)
    notes = [*datamodule.discovery.notes, *check_methods_data(config, datamodule)]
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank == 0:
        for note in notes:
            _say(f"note: {note}")
    return datamodule


def check_methods_data(config: RunConfig, datamodule) -> list[str]:
    """Each method's own check of the images (e.g. saved maps matched to them), before any
    model work; their notes."""
    from benchmark.methods import get_method

    size = (datamodule.dataset.crop, datamodule.dataset.crop)
    return [
        f"{entry}: {note}"
        for entry, method_config in config.method_configs.items()
        for note in get_method(base_method(entry)).check_data(method_config, datamodule.samples, size)
    ]


def check_steps(config: RunConfig, crop: int) -> None:
    """More Insertion/Deletion steps than pixels would only repeat the last point for hours."""
    n_steps = config.metrics.get("n_steps")
    if n_steps is not None and n_steps > crop * crop:
        from benchmark.core.errors import BenchmarkError

        raise BenchmarkError(
            f"--metrics.n_steps {n_steps}: more steps than the {crop * crop} pixels of the {crop}x{crop} "
            f"crop; use at most {crop * crop} (one pixel per step), or leave it out for {crop} (the image side)"
        )


def check_boxes(config: RunConfig, datamodule) -> None:
    """The pointing games need boxes: none at all is an error before any model work."""
    from benchmark.metrics.catalog import metric_class
    from benchmark.metrics.scorer import check_extra, metric_needs

    wanted = [
        key for key in check_extra(config.metrics.get("extra")) if "boxes" in metric_needs(metric_class(key)).values()
    ]
    if wanted and datamodule.boxed_samples == 0:
        from benchmark.core.errors import BenchmarkError

        raise BenchmarkError(
            f"--metrics.extra {','.join(wanted)} needs bounding boxes, and none of the "
            f"{len(datamodule.samples)} images has any: use a flat ILSVRC2012_val_* folder with "
            "LOC_val_solution.csv, or pass --boxes FILE.csv"
        )


def make_trainer(
    config: RunConfig, root: Path, callbacks: tuple = (), progress: ImageProgressBar | None = None
) -> pl.Trainer:
    """The trainer of an evaluation; ``progress`` = its bar (none with ``--quiet``)."""
    o = config.options
    bar = [] if o.quiet or progress is None else [progress]
    return pl.Trainer(
        **trainer_device_arguments(o),
        logger=False,  # loggers run on rank 0 after the evaluation (benchmark.loggers)
        enable_checkpointing=False,
        enable_model_summary=False,
        inference_mode=False,  # methods need gradients with respect to the input
        default_root_dir=str(root),
        callbacks=[*bar, *callbacks],
        enable_progress_bar=bool(bar),
    )


def evaluate(
    config: RunConfig,
    method_name: str,
    datamodule,
    run_dir: Path | Callable[[], Path] | None = None,
    table: bool = False,
    resume: Path | None = None,
    label: str | None = None,
) -> Evaluation | None:
    """Run one method over the datamodule's images, write its run folder and log it (rank 0).

    ``run_dir`` = a function that makes the folder's path (called on rank 0 only; default: a
    new ``<output>/<method>_<model>_<time>``); ``table``: the run is one method of a ``table``
    run (whose folder holds ``run_dir``); ``resume``: the folder of a killed run of the same
    settings to finish (its recorded images are not evaluated again); ``label``: the progress
    bar's name (default the method). The folder gets
    ``config.yaml`` and per-sample records before the first image, the results at the end.
    Returns ``None`` on the other ranks.
    """
    from benchmark.datamodules import imagenet_classes

    o = config.options
    settings = config.to_dict(method_name)
    fingerprint = records.samples_fingerprint(datamodule.samples)
    done: dict = {}
    if resume is not None:
        done = records.check_resumable(resume, settings, fingerprint, complete_ok=table)
        remaining = [s.sample_id for s in datamodule.samples if s.sample_id not in done]
        if remaining:
            check_images_per_process(o, len(remaining))
        _say(f"resuming {resume}: {len(done)} of {len(datamodule.samples)} images done, {len(remaining)} to go")
        folder: Path | Callable[[], Path] = resume
        evaluated = datamodule.subset(remaining)
    else:
        make = (
            run_dir
            if run_dir is not None
            else (lambda: outputs.make_run_dir(o.output, folder_name(method_name), folder_name(o.model)))
        )

        def folder() -> Path:  # rank 0, as the evaluation starts
            path = make()
            path.mkdir(parents=True, exist_ok=True)
            records.start_run_folder(path, settings, fingerprint)
            return path

        evaluated = datamodule
    apply_numerics(o)  # TF32 and cuDNN as the options say, whoever called (cli, evaluate(), a table)
    allocator = apply_allocator(o)  # and the execution's allocator
    pl.seed_everything(o.seed, workers=True, verbose=False)
    method = build_method(config, method_name, show_progress=not o.quiet)
    earlier_s = records.recorded_seconds(resume) if resume is not None else 0.0
    recorder = records.RunRecorder(folder, resumed=done, earlier_s=earlier_s)
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    message = RankZeroMessage(f"{method_name} on {o.model}: {evaluated.describe()}")
    progress = ImageProgressBar(len(datamodule.samples), done=len(done), label=label or method_name)
    trainer = make_trainer(config, Path(o.output), callbacks=(message, recorder), progress=progress)
    try:
        if len(evaluated.samples):
            trainer.test(method, datamodule=evaluated, verbose=False)
        else:  # everything was done before the kill: only the results are missing
            recorder.run_dir = Path(resume)
            method.reset_results()
            records.restore_records(method, recorder.run_dir, done)
            method.on_test_epoch_end()
        if trainer.global_rank != 0:
            return None
        results = method.results
        run = RunContext(config, method_name, datamodule.samples, method.extra_column_specs(), imagenet_classes().names)
        run_dir = recorder.run_dir
        content = outputs.results_dict(
            run,
            results,
            {
                "data": datamodule.describe(),
                "data_notes": list(datamodule.discovery.notes),
                **device_facts(trainer),
                **numerics_in_force(),
                "precision": o.precision,
                "threads": torch.get_num_threads(),
                "execution": o.execution,
                "allocator": allocator,
                **method.execution_facts(),
                "method_info": method.describe(),
                "metric_info": method.scorer.info(),
                "model_weights": getattr(method.classifier, "weights_source", o.model_weights),
                **({"not_computable": dict(method.scorer.not_computable)} if method.scorer.not_computable else {}),
                "started": started.isoformat(timespec="seconds"),
                # all parts of a resumed run: the earlier ones' recorded seconds plus this one's
                "duration_s": round(earlier_s + time.perf_counter() - clock, 2),
                **(
                    {
                        "resumed_with": len(done),
                        "duration_s_before_resume": round(earlier_s, 2),
                        "images_by_processes": records.images_by_processes(run_dir),
                    }
                    if done
                    else {}
                ),
            },
        )
        outputs.write_per_sample_csv(run_dir / "per_sample.csv", run, results)
        outputs.write_figures(run_dir, run, results)
        if o.save_maps:
            outputs.write_maps(run_dir / "maps.pt", results, run.samples)
        outputs.write_results_json(run_dir / "results.json", content)  # last: marks the run complete
        for sample_id, reason in results.failures:
            _say(f"skipped {run.samples[sample_id].file}: {reason}")
        evaluation = Evaluation(run_dir, content, results)
        evaluation.logged = loggers.log_evaluation(run, evaluation, table=run_dir.parent.name if table else None)
        return evaluation
    except RunInterrupted as stop:  # the folder a resumption continues from
        stop.run_dir = recorder.run_dir
        raise
    except (DiskFull, OSError, RuntimeError) as error:  # a full disk: one error line, the records kept
        full = error if isinstance(error, DiskFull) else disk_full(error, recorder.run_dir or Path(o.output))
        if full is None:
            raise
        if recorder.run_dir is not None and full.resume is None:
            done, total = records.recorded_images(recorder.run_dir)
            full.kept = f"{done} of {total} images are recorded in {recorder.run_dir}"
            full.resume = f"python -m benchmark test --resume {recorder.run_dir}"
        if full is not error:
            raise full from error
        raise


def disk_full(error: BaseException, folder: Path) -> DiskFull | None:
    """``error`` as :class:`DiskFull` when it is a full disk met outside the writers of
    benchmark.files (making a folder, say): about the file it names, else ``folder``."""
    if not is_disk_full(error):
        return None
    return DiskFull(getattr(error, "filename", None) or folder)


def print_notes(evaluation: Evaluation) -> None:
    content = evaluation.content
    for key, reason in content.get("not_computable", {}).items():
        print(f"{content['method']}: {key} not computable: {reason}")
    if content["skipped"]:
        print(f"{content['method']}: skipped {content['skipped']} unreadable image(s); see results.json")
    if content["undefined"]:
        print(f"{content['method']}: undefined values left out of the means: {content['undefined']}")
    problems = content.get("map_problems") or {}
    if problems.get("non-finite"):
        print(
            f"{content['method']}: {problems['non-finite']} map(s) held NaN/Inf: every metric of those images is "
            "undefined and left out; see map_problem in per_sample.csv"
        )
    if problems.get("constant"):
        print(
            f"{content['method']}: {problems['constant']} constant map(s) (no pixel ranked above another): "
            "they are scored as they are (Coherency undefined, Insertion/Deletion in pixel order); "
            "see map_problem in per_sample.csv"
        )


def run_test(config: RunConfig) -> Path | None:
    """``test``: one method end to end; returns the run folder (on rank 0)."""
    datamodule = build_datamodule(config)  # bad folders fail here, before any model work
    if config.options.estimate:
        print_estimate(config, datamodule, [config.options.method])
        return None
    resume = Path(config.options.resume) if config.options.resume else None
    evaluation = evaluate(config, config.options.method, datamodule, resume=resume)
    if evaluation is None:
        return None
    content = evaluation.content
    header = results_header(metric_keys(content), list(table_extras(content).values()))
    print(markdown_table(header, [results_row(content)]))
    print(INTERVAL_NOTE)
    print_notes(evaluation)
    print(f"run folder: {evaluation.run_dir}")
    hint = loggers.sync_hint([evaluation.logged])
    if hint:
        _say(hint)
    return evaluation.run_dir
