"""The images of a run: its datamodule, and the checks of the options against those images
that must fail before any model work."""

from __future__ import annotations

import sys

from benchmark.config import RunConfig
from benchmark.devices import check_images_per_process, uses_cuda
from benchmark.variants import base_method


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
    """The run's datamodule, checked against the options; prints its notes (rank 0)."""
    o = config.options
    datamodule = datamodule_of(o)
    check_images_per_process(o, len(datamodule.samples))
    check_boxes(config, datamodule)
    check_curve_steps(config, datamodule.dataset.crop)
    notes = [*datamodule.discovery.notes, *check_methods_data(config, datamodule)]
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank == 0:
        for note in notes:
            print(f"note: {note}", file=sys.stderr, flush=True)
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


def check_curve_steps(config: RunConfig, crop: int) -> None:
    """``--metrics.n_steps`` of the Insertion/Deletion curves against the crop: more steps than
    pixels would only repeat the last point for hours."""
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
    from benchmark.metrics.selection import check_extra, metric_needs

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
