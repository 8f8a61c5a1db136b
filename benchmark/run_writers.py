"""The files and logs of a finished evaluation, written by Lightning Callbacks on rank 0 when
testing ends (after the method gathered its results on every rank), beside
:class:`benchmark.records.RunRecorder`, which keeps the per-sample records while it goes.

The callbacks run in the trainer's order: :class:`FiguresWriter`, :class:`ResultsWriter`
(``results.json`` last: it marks the run complete), :class:`EvaluationLogger`. A resumed run
with nothing left to evaluate calls their :meth:`write` itself.
"""

from __future__ import annotations

import sys

import pytorch_lightning as pl

from benchmark import loggers, outputs
from benchmark.records import RunRecorder
from benchmark.run_results import Evaluation, ResultsAssembly, RunContext


class FiguresWriter(pl.Callback):
    """The run folder's figures (overlays, curves): :func:`benchmark.outputs.write_figures`."""

    def __init__(self, recorder: RunRecorder, assembly: ResultsAssembly) -> None:
        self.recorder = recorder
        self.assembly = assembly

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module)

    def write(self, trainer: pl.Trainer, method) -> None:
        if trainer.global_rank == 0:
            outputs.write_figures(self.recorder.run_dir, self.assembly.run_context(method), method.results)


class ResultsWriter(pl.Callback):
    """``per_sample.csv``, ``maps.pt`` (with ``--save-maps``) and ``results.json``; prints the
    skipped images. Keeps the :class:`Evaluation` it wrote (rank 0)."""

    def __init__(self, recorder: RunRecorder, assembly: ResultsAssembly) -> None:
        self.recorder = recorder
        self.assembly = assembly
        self.run: RunContext | None = None
        self.evaluation: Evaluation | None = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module)

    def write(self, trainer: pl.Trainer, method) -> None:
        if trainer.global_rank != 0:
            return
        run_dir = self.recorder.run_dir
        results = method.results
        run = self.assembly.run_context(method)
        content = self.assembly.content(run, method, trainer, run_dir)
        outputs.write_per_sample_csv(run_dir / "per_sample.csv", run, results)
        if self.assembly.config.options.save_maps:
            outputs.write_maps(run_dir / "maps.pt", results, run.samples)
        outputs.write_results_json(run_dir / "results.json", content)  # last: marks the run complete
        for sample_id, reason in results.failures:
            print(f"skipped {run.samples[sample_id].file}: {reason}", file=sys.stderr, flush=True)
        self.run, self.evaluation = run, Evaluation(run_dir, content, results)


class EvaluationLogger(pl.Callback):
    """Logs the evaluation :class:`ResultsWriter` wrote with ``--logger`` (never raises);
    ``table``: it is one method of a ``table`` run, named after the table folder."""

    def __init__(self, writer: ResultsWriter, table: bool = False) -> None:
        self.writer = writer
        self.table = table

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module)

    def write(self, trainer: pl.Trainer, method) -> None:
        evaluation = self.writer.evaluation
        if trainer.global_rank != 0 or evaluation is None:
            return
        table = evaluation.run_dir.parent.name if self.table else None
        evaluation.logged = loggers.log_evaluation(self.writer.run, evaluation, table=table)
