"""Where an evaluation writes and what it still has to evaluate: a new run folder, or the
folder of a killed run of the same settings (``--resume``), whose recorded images are not
evaluated again."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmark import outputs, records
from benchmark.config import RunConfig
from benchmark.devices import check_images_per_process
from benchmark.variants import folder_name


@dataclass
class RunStart:
    """The start of one method's evaluation.

    ``folder``: the run folder, or a function making it (called on rank 0 as the evaluation
    starts, see :class:`benchmark.records.RunRecorder`); ``evaluated``: the datamodule of the
    images still to evaluate; ``done``: the records of the images a killed run finished;
    ``earlier_s``: the seconds of work that run recorded.
    """

    folder: Path | Callable[[], Path]
    evaluated: object
    done: dict[int, records.SampleRecord] = field(default_factory=dict)
    earlier_s: float = 0.0


def start_run(
    config: RunConfig,
    method_name: str,
    datamodule,
    run_dir: Callable[[], Path] | None = None,
    resume: Path | None = None,
    table: bool = False,
) -> RunStart:
    """A new run folder (``run_dir`` makes its path; default a new
    ``<output>/<method>_<model>_<time>``) that gets ``config.yaml`` and the sample fingerprint
    before the first image, or with ``resume`` the killed run's folder, checked to have the
    same settings and images (complete is fine for a method of a resumed ``table``)."""
    o = config.options
    settings = config.to_dict(method_name)
    fingerprint = records.samples_fingerprint(datamodule.samples)
    if resume is not None:
        done = records.check_resumable(resume, settings, fingerprint, complete_ok=table)
        remaining = [s.sample_id for s in datamodule.samples if s.sample_id not in done]
        if remaining:
            check_images_per_process(o, len(remaining))
        print(
            f"resuming {resume}: {len(done)} of {len(datamodule.samples)} images done, {len(remaining)} to go",
            file=sys.stderr,
            flush=True,
        )
        return RunStart(resume, datamodule.subset(remaining), done, records.recorded_seconds(resume))
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

    return RunStart(folder, datamodule)
