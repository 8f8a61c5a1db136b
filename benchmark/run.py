"""``test``: evaluate one method on one model and write the run folder."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytorch_lightning as pl

from benchmark import outputs
from benchmark.config import RunConfig
from benchmark.progress import StderrProgressBar
from benchmark.report import RESULTS_HEADER, markdown_table, results_row


@dataclass
class RunContext:
    """What the writers need to know about a finished run besides its results."""

    config: RunConfig
    samples: list
    extra_columns: tuple[str, ...]
    class_names: list[str]

    def class_name(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_datamodule(config: RunConfig):
    from datamodules import ImageNetDataModule

    o = config.options
    return ImageNetDataModule(
        data=o.data,
        per_class=o.per_class,
        limit=o.limit,
        classes=o.classes,
        ground_truth=o.ground_truth,
        batch_size=o.batch_size,
        num_workers=o.num_workers,
    )


def build_method(config: RunConfig, method: str | None = None):
    from methods import get_method
    from metrics import SaliencyScorer
    from models import build_classifier

    o = config.options
    method = method or o.method
    classifier = build_classifier(o.model, o.model_weights)
    return get_method(method)(
        classifier,
        config.method_configs[method],
        scorer=SaliencyScorer(**config.metrics),
        keep_maps=o.overlay_images,
        save_maps=o.save_maps,
        seed=o.seed,
    )


def make_trainer(config: RunConfig, root: Path) -> pl.Trainer:
    o = config.options
    return pl.Trainer(
        accelerator=o.accelerator,
        devices=int(o.devices) if o.devices.isdigit() else o.devices,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        inference_mode=False,  # methods need gradients with respect to the input
        default_root_dir=str(root),
        callbacks=[StderrProgressBar()],
    )


def run_test(config: RunConfig) -> Path | None:
    """Run ``config`` end to end; returns the run folder (on rank 0)."""
    from datamodules import imagenet_classes

    o = config.options
    datamodule = build_datamodule(config)  # bad folders fail here, before any model work
    pl.seed_everything(o.seed, workers=True, verbose=False)
    if config.preset:
        _say(f"{config.preset} (the thesis settings: --config configs/thesis.yaml)")
    method = build_method(config)
    _say(f"data: {datamodule.describe()}")
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    trainer = make_trainer(config, Path(o.output))
    _say(f"device: {trainer.strategy.root_device} x {trainer.world_size} process(es)")
    trainer.test(method, datamodule=datamodule, verbose=False)
    if trainer.global_rank != 0:
        return None
    results = method.results
    run = RunContext(config, datamodule.samples, method.extra_columns, imagenet_classes().names)
    run_dir = outputs.make_run_dir(o.output, o.method, o.model)
    content = outputs.results_dict(
        run,
        results,
        {
            "data": datamodule.describe(),
            "device": str(method.device),
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
    print(markdown_table(RESULTS_HEADER, [results_row(content)]))
    if results.failures:
        print(f"skipped {len(results.failures)} unreadable image(s); see results.json")
    if content["undefined"]:
        print(f"undefined (left out of the means): {content['undefined']}")
    print(f"run folder: {run_dir}")
    return run_dir
