"""What a finished evaluation is: its run context, the content of its ``results.json``
(the method's results with the facts of the run) and the :class:`Evaluation` handed back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmark import loggers, outputs, records
from benchmark.config import RunConfig
from benchmark.devices import device_facts, numerics_in_force


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


@dataclass
class ResultsAssembly:
    """The ``results.json`` of one method's evaluation: made when the evaluation starts (its
    start time and clock), completed from the trainer and the method when it ends.

    ``resumed``: the images a killed run had recorded; ``earlier_s``: that run's seconds.
    """

    config: RunConfig
    method_name: str
    datamodule: object
    resumed: int = 0
    earlier_s: float = 0.0
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    clock: float = field(default_factory=time.perf_counter)

    def run_context(self, method) -> RunContext:
        from benchmark.datamodules import imagenet_classes

        samples = self.datamodule.samples
        return RunContext(self.config, self.method_name, samples, method.extra_column_specs(), imagenet_classes().names)

    def content(self, run: RunContext, method, trainer, run_dir: Path) -> dict:
        """The method's results and how, where and how long the run computed them."""
        from benchmark.models.allocator import allocator_in_force

        o = self.config.options
        datamodule = self.datamodule
        return outputs.results_dict(
            run,
            method.results,
            {
                "data": datamodule.describe(),
                "data_notes": list(datamodule.discovery.notes),
                **device_facts(trainer),
                **numerics_in_force(),
                "precision": o.precision,
                "threads": torch.get_num_threads(),
                "execution": o.execution,
                "allocator": allocator_in_force(),
                **method.execution_facts(),
                "method_info": method.describe(),
                "metric_info": method.scorer.info(),
                "model_weights": getattr(method.classifier, "weights_source", o.model_weights),
                **({"not_computable": dict(method.scorer.not_computable)} if method.scorer.not_computable else {}),
                "started": self.started.isoformat(timespec="seconds"),
                # all parts of a resumed run: the earlier ones' recorded seconds plus this one's
                "duration_s": round(self.earlier_s + time.perf_counter() - self.clock, 2),
                **(
                    {
                        "resumed_with": self.resumed,
                        "duration_s_before_resume": round(self.earlier_s, 2),
                        "images_by_processes": records.images_by_processes(run_dir),
                    }
                    if self.resumed
                    else {}
                ),
            },
        )
