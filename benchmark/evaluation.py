"""One method's evaluation over a datamodule's images: the trainer that runs it, and
:func:`evaluate_method`, which ``test``, ``table`` and :func:`benchmark.evaluate` share.

The pieces each have their own module: the run folder or the resumed one
(:mod:`benchmark.run_start`), the per-sample records (:class:`benchmark.records.RunRecorder`),
the results (:mod:`benchmark.run_results`) and their files and logs
(:mod:`benchmark.run_writers`). The process's numerics (threads, TF32, cuDNN, allocator) are
set once by the command before (:func:`benchmark.devices.apply_run_settings`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl

from benchmark import records
from benchmark.config import RunConfig
from benchmark.devices import RankZeroMessage, trainer_device_arguments
from benchmark.explainers import build_method
from benchmark.files import DiskFull, is_disk_full
from benchmark.interrupts import RunInterrupted
from benchmark.progress import ImageProgressBar
from benchmark.run_results import Evaluation, ResultsAssembly
from benchmark.run_start import start_run
from benchmark.run_writers import EvaluationLogger, FiguresWriter, ResultsWriter


def make_trainer(
    config: RunConfig, root: Path, callbacks: tuple = (), progress: ImageProgressBar | None = None
) -> pl.Trainer:
    """The trainer of an evaluation; ``progress`` = its bar (none with ``--quiet``)."""
    o = config.options
    bar = [] if o.quiet or progress is None else [progress]
    return pl.Trainer(
        **trainer_device_arguments(o),
        logger=False,  # the run's logging is a callback on rank 0 (benchmark.run_writers)
        enable_checkpointing=False,
        enable_model_summary=False,
        inference_mode=False,  # methods need gradients with respect to the input
        default_root_dir=str(root),
        callbacks=[*bar, *callbacks],
        enable_progress_bar=bool(bar),
    )


def evaluate_method(
    config: RunConfig,
    method_name: str,
    datamodule,
    run_dir: Callable[[], Path] | None = None,
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
    o = config.options
    start = start_run(config, method_name, datamodule, run_dir, resume, table)
    pl.seed_everything(o.seed, workers=True, verbose=False)
    method = build_method(config, method_name, show_progress=not o.quiet)
    recorder = records.RunRecorder(start.folder, resumed=start.done, earlier_s=start.earlier_s)
    assembly = ResultsAssembly(config, method_name, datamodule, resumed=len(start.done), earlier_s=start.earlier_s)
    results_writer = ResultsWriter(recorder, assembly)
    writers = (FiguresWriter(recorder, assembly), results_writer, EvaluationLogger(results_writer, table))
    message = RankZeroMessage(f"{method_name} on {o.model}: {start.evaluated.describe()}")
    progress = ImageProgressBar(len(datamodule.samples), done=len(start.done), label=label or method_name)
    trainer = make_trainer(config, Path(o.output), callbacks=(message, recorder, *writers), progress=progress)
    try:
        if len(start.evaluated.samples):
            trainer.test(method, datamodule=start.evaluated, verbose=False)
        else:  # everything was done before the kill: only the results are missing
            recorder.run_dir = Path(resume)
            method.reset_results()
            records.restore_records(method, recorder.run_dir, start.done)
            method.on_test_epoch_end()
            for writer in writers:
                writer.write(trainer, method)
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
    return results_writer.evaluation if trainer.global_rank == 0 else None


def disk_full(error: BaseException, folder: Path) -> DiskFull | None:
    """``error`` as :class:`DiskFull` when it is a full disk met outside the writers of
    benchmark.files (making a folder, say): about the file it names, else ``folder``."""
    if not is_disk_full(error):
        return None
    return DiskFull(getattr(error, "filename", None) or folder)


def print_notes(evaluation: Evaluation) -> None:
    """What a user should know of a finished evaluation: metrics not computable, skipped
    images, undefined values, maps with NaN/Inf or without any ranking."""
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
