"""Where a run executes: accelerator, devices, nodes and the DDP strategy of PyTorch Lightning.

One process per device; several devices or nodes run under Lightning's ``DDPStrategy``
(gloo on CPUs, NCCL on GPUs). Lightning starts the processes of one machine itself; torchrun
and SLURM start them for many machines (Lightning reads their environment). Every image goes
to exactly one process (``datamodules.sampler``), the metric states are gathered with
torchmetrics, and only rank 0 writes the run folder and logs (``benchmark.run``).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from metrics.errors import BenchmarkError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def parse_devices(value: str) -> int | str | list[int]:
    """``--devices``: ``auto``, a count ``N`` (>= 1) or device indices ``0,2`` (GPUs)."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    try:
        if "," in text:
            indices = [int(part) for part in text.split(",") if part.strip()]
            if indices and min(indices) >= 0 and len(set(indices)) == len(indices):
                return indices
            raise ValueError
        count = int(text)
    except ValueError:
        raise BenchmarkError(
            f"--devices {value!r}: expected auto, a number of devices (e.g. 2) or device indices (e.g. 0,2)"
        ) from None
    if count < 1:
        raise BenchmarkError(f"--devices must be >= 1 (or auto), got {count}")
    return count


def device_count(devices: int | str | list[int]) -> int | None:
    """Processes per node that ``devices`` asks for (``None`` for ``auto``)."""
    if isinstance(devices, list):
        return len(devices)
    return devices if isinstance(devices, int) else None


def validate_device_options(options: Any) -> None:
    """Check ``--accelerator``, ``--devices``, ``--num-nodes``, ``--ddp-timeout`` before any work."""
    if options.accelerator not in ACCELERATORS:
        raise BenchmarkError(
            f"--accelerator {options.accelerator!r} is unknown; choose one of: {', '.join(ACCELERATORS)}"
        )
    parse_devices(options.devices)
    if options.num_nodes < 1:
        raise BenchmarkError(f"--num-nodes must be >= 1, got {options.num_nodes}")
    if options.ddp_timeout < 1:
        raise BenchmarkError(f"--ddp-timeout must be >= 1 second, got {options.ddp_timeout}")
    if options.accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BenchmarkError(
                f"--accelerator {options.accelerator}: no CUDA GPU is visible to PyTorch; "
                "use --accelerator cpu (or auto)"
            )


def check_images_per_process(options: Any, images: int) -> None:
    """Every process needs an image (see ``datamodules.sampler``): say so before launching."""
    count = device_count(parse_devices(options.devices))
    if count is not None and images < count * options.num_nodes:
        raise BenchmarkError(
            f"only {images} images for {count * options.num_nodes} processes "
            f"(--devices {options.devices} x --num-nodes {options.num_nodes}); use more images or fewer devices"
        )


def uses_ddp(options: Any) -> bool:
    """Whether the run needs DDP: asked for, several nodes, or several devices per node."""
    count = device_count(parse_devices(options.devices))
    return options.strategy == "ddp" or options.num_nodes > 1 or (count is not None and count > 1)


def apply_threads(options: Any) -> int:
    """Set torch's CPU thread count from ``--threads`` (if given); returns the count in force,
    which results.json records (float32 results depend on it)."""
    import torch

    if options.threads is not None:
        torch.set_num_threads(options.threads)
    return torch.get_num_threads()


#: ``--precision`` -> Lightning's precision plugin (64: model and batches in float64).
LIGHTNING_PRECISION = {"32": "32-true", "64": "64-true", "bf16": "bf16-mixed"}


def trainer_device_arguments(options: Any) -> dict[str, Any]:
    """``accelerator``, ``devices``, ``num_nodes`` and ``strategy`` for ``pl.Trainer``.

    DDP gets the process-group timeout of ``--ddp-timeout``: a process that waits longer for
    the others in a collective fails instead of hanging.
    """
    strategy: Any = "auto"
    if uses_ddp(options):
        from pytorch_lightning.strategies import DDPStrategy

        strategy = DDPStrategy(timeout=timedelta(seconds=options.ddp_timeout))
    return {
        "accelerator": options.accelerator,
        "devices": parse_devices(options.devices),
        "num_nodes": options.num_nodes,
        "strategy": strategy,
        "precision": LIGHTNING_PRECISION[options.precision],
    }



class RankZeroMessage(Callback):
    """Prints one line on stderr before testing starts, from global rank 0 only (``setup``
    runs after the processes are launched, so the rank is known)."""

    def __init__(self, message: str) -> None:
        self.message = message

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            world = trainer.world_size
            where = f"device {pl_module.device} x {world} process(es)"
            if trainer.num_nodes > 1:
                where += f" on {trainer.num_nodes} nodes"
            print(f"{self.message}; {where}", file=sys.stderr, flush=True)
