"""Where a run executes: accelerator, devices, nodes and the DDP strategy of PyTorch Lightning.

One process per device; several devices or nodes run under Lightning's ``DDPStrategy``
(gloo on CPUs, NCCL on GPUs). Lightning starts the processes of one machine itself; torchrun
and SLURM start them for many machines (Lightning reads their environment). Every image goes
to exactly one process (``benchmark.datamodules.sampler``), the metric states are gathered with
torchmetrics, and only rank 0 writes the run folder and logs (``benchmark.run_writers``).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from benchmark.core.errors import BenchmarkError

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


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def uses_cuda(accelerator: str) -> bool:
    """Whether ``--accelerator`` runs on CUDA GPUs (``auto``: when one is visible)."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and _cuda_count() > 0)


#: Defaults that depend on where the run executes (``None`` in the options = this default).
#: Batch: 16 images on the CPU, the batch of the compiled graph (the curves' chunk), so that
#: every forward-only pass of a run's batch (the top-1 prediction, x * M, Random-CAM's and
#: Eigen-CAM's pass) goes through it; 16 is also where both the compiled forward and the
#: forward+backward measured fastest per image. 32 on a GPU, where 2 x 500 LOTS passes at a
#: small batch are bound by kernel launches, not arithmetic (and EfficientNet-Lite0's LOTS
#: backward at batch 32 fits a GPU's memory). Workers: 0 on the CPU (decoding in another
#: process only competes for the same cores); 4 per process on a GPU, so JPEG decoding overlaps
#: the GPU's work. To be measured on a GPU by perf/gpu_check.sh.
#: Execution (``benchmark.models.execution``), fixed per device type (not tuned at run time, so runs stay
#: reproducible). CPU: compiled (channels_last with freed memory kept, and the forward-only
#: passes through torch.compile), the fastest forward measured; the gradient passes stay
#: channels_last, since a compiled forward+backward measured slower. With --precision 64 or
#: bf16 the CPU runs channels_last (the compiled forward is float32). CUDA: channels_last
#: (cuDNN's tensor-core convolutions want NHWC); compiled to be measured by perf/gpu_check.sh.
#: The measurements behind these choices: perf/README.md ("Measurements formerly in
#: benchmark/devices.py" and the sections it names).
DEVICE_DEFAULTS = {
    "cpu": {"batch_size": 16, "num_workers": 0, "execution": "compiled"},
    "cuda": {"batch_size": 32, "num_workers": 4, "execution": "channels_last"},
}


def device_defaults(options: Any) -> dict[str, int]:
    """The per-device defaults of ``options`` (those it leaves at ``None`` or ``auto``)."""
    defaults = dict(DEVICE_DEFAULTS["cuda" if uses_cuda(options.accelerator) else "cpu"])
    if defaults.get("execution") == "compiled" and getattr(options, "precision", "32") != "32":
        defaults["execution"] = "channels_last"  # the compiled forward is float32 only
    if "num_workers" in defaults and defaults["num_workers"]:
        per_process = (os.cpu_count() or 1) // max(device_count(resolved_devices(options)) or 1, 1)
        defaults["num_workers"] = max(0, min(defaults["num_workers"], per_process - 1))
    return {name: value for name, value in defaults.items() if getattr(options, name, 0) in (None, "auto")}


def resolved_devices(options: Any) -> int | list[int]:
    """``--devices`` with ``auto`` resolved: every visible GPU when the run uses CUDA, else one
    process (so the DDP timeout and the images-per-process check apply to ``auto`` too)."""
    devices = parse_devices(options.devices)
    if devices == "auto":
        return max(_cuda_count(), 1) if uses_cuda(options.accelerator) else 1
    return devices


def device_count(devices: int | str | list[int]) -> int | None:
    """Processes per node that ``devices`` asks for (``None`` for ``auto``)."""
    if isinstance(devices, list):
        return len(devices)
    return devices if isinstance(devices, int) else None


#: Environment variables in which launchers say how many processes they started.
LAUNCHER_WORLD_SIZE = (
    ("WORLD_SIZE", "torchrun"),
    ("SLURM_NTASKS", "srun"),
    ("OMPI_COMM_WORLD_SIZE", "mpirun"),
    ("PMI_SIZE", "mpirun"),
)


def launched_processes() -> tuple[int, str] | None:
    """``(processes, "VARIABLE=N (launcher)")`` when an external launcher started several
    processes (torchrun, srun, mpirun), else ``None``. An interactive SLURM allocation
    (``salloc``, job name bash/interactive) is one process, as Lightning reads it."""
    for variable, launcher in LAUNCHER_WORLD_SIZE:
        value = os.environ.get(variable, "")
        if not value.strip().isdigit() or int(value) <= 1:
            continue
        if variable == "SLURM_NTASKS" and os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
            continue
        return int(value), f"{variable}={value} ({launcher})"
    return None


def check_launcher(options: Any) -> None:
    """Several launched processes must be the devices x nodes of the run: else each process
    would evaluate every image alone (N duplicate jobs racing for one run folder)."""
    launched = launched_processes()
    if launched is None:
        return
    processes, source = launched
    asked = (device_count(resolved_devices(options)) or 1) * options.num_nodes
    if asked != processes:
        per_node = processes // options.num_nodes if processes % options.num_nodes == 0 else None
        fix = (
            f"pass --devices {per_node}" + (f" --num-nodes {options.num_nodes}" if options.num_nodes > 1 else "")
            if per_node
            else "pass --devices and --num-nodes whose product is that number"
        )
        raise BenchmarkError(
            f"the launcher started {processes} processes ({source}), but --devices {options.devices} x --num-nodes "
            f"{options.num_nodes} is {asked}: {fix} (one process per device)"
        )


def validate_device_options(options: Any) -> None:
    """Check ``--accelerator``, ``--devices``, ``--num-nodes``, ``--ddp-timeout`` before any work."""
    if options.accelerator not in ACCELERATORS:
        raise BenchmarkError(
            f"--accelerator {options.accelerator!r} is unknown; choose one of: {', '.join(ACCELERATORS)}"
        )
    devices = parse_devices(options.devices)
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
    if uses_cuda(options.accelerator) and devices != "auto":
        visible = _cuda_count()
        wanted = devices if isinstance(devices, int) else max(devices) + 1
        if wanted > visible:
            raise BenchmarkError(
                f"--devices {options.devices}: {'only ' if visible else ''}{visible} GPU(s) are visible to PyTorch "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); ask for at most {visible}"
                + (" or use indices below it" if isinstance(devices, list) else "")
            )
    check_launcher(options)


def check_images_per_process(options: Any, images: int) -> None:
    """Every process needs an image (see ``benchmark.datamodules.sampler``): say so before launching."""
    count = device_count(resolved_devices(options))
    if count is not None and images < count * options.num_nodes:
        raise BenchmarkError(
            f"only {images} images for {count * options.num_nodes} processes "
            f"(--devices {options.devices} x --num-nodes {options.num_nodes}); use more images or fewer devices"
        )


def uses_ddp(options: Any) -> bool:
    """Whether the run needs DDP: asked for, several nodes, several devices per node (``auto``
    resolved), or several processes started by a launcher."""
    count = device_count(resolved_devices(options))
    return (
        options.strategy == "ddp"
        or options.num_nodes > 1
        or (count is not None and count > 1)
        or launched_processes() is not None
    )


def apply_threads(options: Any) -> int:
    """Set torch's CPU thread count from ``--threads`` (if given); returns the count in force,
    which results.json records (float32 results depend on it)."""
    import torch

    if options.threads is not None:
        torch.set_num_threads(options.threads)
    return torch.get_num_threads()


def apply_numerics(options: Any) -> dict[str, bool]:
    """The GPU numerics of a run, set before any model work and returned for results.json:
    TF32 for float32 convolutions and matmuls only with ``--allow-tf32`` (PyTorch lets cuDNN use
    it by default, so "float32" would not be float32), and cuDNN's deterministic algorithms
    without autotuning (the same numbers on every run of the same settings; cuDNN's autotuner
    may pick another algorithm, with other rounding, on each run)."""
    import torch

    allow = bool(getattr(options, "allow_tf32", False))
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return {"tf32": allow, "cudnn_deterministic": True}


def numerics_in_force() -> dict[str, bool]:
    """TF32 and cuDNN determinism as torch has them now (what the run used)."""
    import torch

    return {
        "tf32": bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark),
    }


def apply_allocator(options: Any) -> str:
    """The C allocator of the run's execution: ``channels_last`` and ``compiled`` keep freed
    memory for reuse (``benchmark.models.allocator``: no page faults for each pass's fresh activations);
    ``eager`` leaves it as it was. Returns the allocator in force, for results.json."""
    from benchmark.models.allocator import allocator_in_force, keep_freed_memory

    if getattr(options, "execution", "eager") in ("channels_last", "compiled"):
        return keep_freed_memory()
    return allocator_in_force()


def apply_run_settings(options: Any) -> int:
    """``--threads`` (:func:`apply_threads`), the GPU numerics (:func:`apply_numerics`) and the
    execution's allocator (:func:`apply_allocator`); returns the CPU thread count in force."""
    apply_numerics(options)
    apply_allocator(options)
    return apply_threads(options)


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
        "devices": resolved_devices(options),
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
            where = f"device {trainer.strategy.root_device} x {world} process(es)"
            if trainer.num_nodes > 1:
                where += f" on {trainer.num_nodes} nodes"
            print(f"{self.message}; {where}", file=sys.stderr, flush=True)


def device_facts(trainer: pl.Trainer) -> dict[str, Any]:
    """Where the run executed, for results.json and W&B: the strategy's root device (the module
    is back on the CPU after ``trainer.test``), the process count and, on CUDA, the GPU's name
    and the GPUs per node."""
    import torch

    device = trainer.strategy.root_device
    facts: dict[str, Any] = {"device": str(device), "processes": trainer.world_size}
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
        facts["gpus_per_node"] = trainer.num_devices
    return facts
