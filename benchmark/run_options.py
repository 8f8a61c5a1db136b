"""The options of a run other than the method's and the metrics' parameters
(:class:`RunOptions`: ``--model``, ``--data``, ``--batch-size``, ...), with their help text and
their checks, which run before any model work."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from benchmark.core.errors import BenchmarkError
from benchmark.params import Parameter, dataclass_parameters


@dataclass
class RunOptions:
    """Options of a run other than the method's and the metrics' parameters."""

    method: str = field(default="lots", metadata={"help": "saliency method (see the list below)"})
    methods: list[str] | None = field(
        default=None, metadata={"help": "methods to compare, comma-separated (e.g. lots,gradcam,random)"}
    )
    model: str = field(
        default="efficientnet_lite0",
        metadata={"help": "classifier to explain: a name below, timm:NAME, torchvision:NAME or package.module:build"},
    )
    model_weights: str | None = field(
        default=None,
        metadata={
            "help": "local weights file for --model (a state dict or .safetensors), or none for random "
            "weights (smoke tests only: the numbers mean nothing)"
        },
    )
    model_mean: list[float] | None = field(
        default=None,
        metadata={
            "help": "the model's normalization mean R,G,B (default: the model's own; needed for package.module:build)"
        },
    )
    model_std: list[float] | None = field(
        default=None,
        metadata={
            "help": "the model's normalization std R,G,B (default: the model's own; needed for package.module:build)"
        },
    )
    data: str | None = field(
        default=None,
        metadata={"help": "folder of ImageNet validation images (default: built-in sample photos)"},
    )
    per_class: int | None = field(default=1, metadata={"help": "first N images per class, by file name"})
    limit: int | None = field(default=None, metadata={"help": "evaluate at most N images"})
    classes: list[str] | None = field(
        default=None, metadata={"help": "only these classes (wnids or indices, comma-separated)"}
    )
    ground_truth: str | None = field(
        default=None, metadata={"help": "LOC_val_solution.csv for a flat ILSVRC2012_val_* folder"}
    )
    boxes: str | None = field(
        default=None,
        metadata={
            "help": "bounding boxes for --metrics.extra pointing_game/energy_pointing_game: a CSV in "
            "the LOC_val_solution.csv layout, ImageId = file stem"
        },
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "images per batch (default: 16 on the CPU, 32 on a GPU; float32 LOTS and CAM "
            "numbers depend on it, float64 ones do not)"
        },
    )
    num_workers: int | None = field(
        default=None, metadata={"help": "data loading worker processes (default: 0 on the CPU, 4 per GPU process)"}
    )
    output: str = field(default="runs", metadata={"help": "folder that receives the run folder"})
    seed: int = field(default=0, metadata={"help": "random seed, 0 to 2**32 - 1"})
    threads: int | None = field(
        default=None,
        metadata={
            "help": "torch CPU threads per process (default: torch's choice, usually the cores); float32 "
            "results depend on it, and results.json records it"
        },
    )
    save_maps: bool = field(default=False, metadata={"help": "also write maps.pt with every map"})
    overlay_images: int = field(default=8, metadata={"help": "images in the overlay grid PNG"})
    accelerator: str = field(default="auto", metadata={"help": "cpu, gpu or auto"})
    devices: str = field(default="1", metadata={"help": "number of devices (or 'auto')"})
    num_nodes: int = field(default=1, metadata={"help": "number of machines (DDP, e.g. under SLURM or torchrun)"})
    strategy: Literal["auto", "ddp"] = field(
        default="auto", metadata={"help": "auto (DDP when several devices or nodes) or ddp"}
    )
    ddp_timeout: int = field(
        default=1800, metadata={"help": "seconds a process waits for the others (DDP) before it fails"}
    )
    logger: Literal["wandb", "csv", "none"] = field(
        default="wandb",
        metadata={"help": "wandb (online with an API key, else offline + a `wandb sync` hint), csv or none"},
    )
    log_images: int = field(default=8, metadata={"help": "map overlays logged to W&B"})
    wandb_project: str = field(default="saliency-benchmark", metadata={"help": "W&B project"})
    wandb_entity: str | None = field(default=None, metadata={"help": "W&B entity (user or team)"})
    wandb_group: str | None = field(default=None, metadata={"help": "W&B group (default: the model)"})
    wandb_tags: list[str] | None = field(default=None, metadata={"help": "extra W&B tags, comma-separated"})
    precision: Literal["32", "64", "bf16"] = field(
        default="32",
        metadata={
            "help": "32 (float32), 64 (float64: LOTS maps independent of batch size and processes; "
            "slower) or bf16 (bfloat16 autocast on GPU; changes the numbers, see perf/README.md)"
        },
    )
    execution: Literal["auto", "eager", "channels_last", "compiled"] = field(
        default="auto",
        metadata={
            "help": "how the model's passes run: eager (NCHW, the original path), channels_last (the "
            "memory layout a CPU's convolutions run fastest in) or compiled (channels_last, and the passes "
            "without hooks or gradients through torch.compile, which fuses them; compiles once per run); "
            "float32 numbers differ by rounding; auto = the device's default (compiled with --precision 32 "
            "on a CPU, else channels_last); results.json records the one used; speeds: perf/README.md"
        },
    )
    quiet: bool = field(default=False, metadata={"help": "no progress bars (the results and notes are printed)"})
    estimate: bool = field(
        default=False,
        metadata={
            "help": "print the expected wall time on this machine (model passes counted on one image, timed "
            "on a few) and stop: nothing is run or written"
        },
    )
    allow_tf32: bool = field(
        default=False,
        metadata={
            "help": "let CUDA float32 convolutions and matmuls use TF32 (faster on Ampere and later, ~1e-3 "
            "relative error; off: --precision 32 is float32); results.json records it"
        },
    )
    resume: str | None = field(
        default=None,
        metadata={
            "help": "finish a killed run: its run folder (test) or table folder (table); the run's "
            "settings are the defaults, and options that change results must not differ"
        },
    )

    def validate(self, output_folder: bool = True) -> None:
        """Check every value (before any model work); ``output_folder``: whether ``--output`` is
        the command's folder (``targets`` writes a file and does not take the run's folder)."""
        for name in ("per_class", "limit", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BenchmarkError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.num_workers is not None and self.num_workers < 0:
            raise BenchmarkError(f"--num-workers must be >= 0, got {self.num_workers}")
        if self.overlay_images < 0:
            raise BenchmarkError(f"--overlay-images must be >= 0, got {self.overlay_images}")
        from benchmark.devices import validate_device_options

        validate_device_options(self)
        if self.log_images < 0:
            raise BenchmarkError(f"--log-images must be >= 0, got {self.log_images}")
        if not 0 <= self.seed < 2**32:
            raise BenchmarkError(f"--seed must be between 0 and 2**32 - 1 (4294967295), got {self.seed}")
        if output_folder:
            check_output_folder(self.output)
        from benchmark.models.registry import RANDOM_WEIGHTS

        for name in ("model_mean", "model_std"):
            value = getattr(self, name)
            flag = f"--model.{name[len('model_') :]}"
            if value is not None and (len(value) != 3 or not all(math.isfinite(v) for v in value)):
                raise BenchmarkError(f"{flag} must be three finite numbers R,G,B (e.g. 0.485,0.456,0.406), got {value}")
            if name == "model_std" and value is not None and min(value) <= 0:
                raise BenchmarkError(f"--model.std must be three numbers > 0 (e.g. 0.229,0.224,0.225), got {value}")
        if self.model_weights not in (None, RANDOM_WEIGHTS) and not Path(self.model_weights).expanduser().is_file():
            raise BenchmarkError(
                f"--model.weights {self.model_weights}: file does not exist; pass a state dict saved with torch.save"
            )
        if not str(self.wandb_project).strip():
            raise BenchmarkError("--wandb.project must not be empty; name a W&B project (default: saliency-benchmark)")
        if self.threads is not None and self.threads < 1:
            raise BenchmarkError(f"--threads must be >= 1 (or left out for torch's default), got {self.threads}")
        if self.execution == "compiled" and self.precision != "32":
            raise BenchmarkError(
                f"--execution compiled compiles float32 forwards; with --precision {self.precision} use "
                "--execution channels_last (or auto)"
            )


def check_output_folder(path: str, option: str = "--output") -> None:
    """``path`` is a folder that exists or can be made (its nearest existing ancestor is a
    writable folder): checked before any model work, so a typo does not cost a model build."""
    import os

    for candidate in [Path(path), *Path(path).parents]:
        if candidate.is_symlink() and not candidate.exists():
            raise BenchmarkError(
                f"{option} {path}: {candidate} is a broken symbolic link; pass a folder that can be made"
            )
        if candidate.exists():
            if not candidate.is_dir():
                raise BenchmarkError(f"{option} {path}: {candidate} is a file, not a folder; pass a folder")
            if not os.access(candidate, os.W_OK | os.X_OK):
                raise BenchmarkError(f"{option} {path}: {candidate} is not writable; pass a folder you can write to")
            _check_folders_can_be_made_in(candidate, path, option)
            return


def _check_folders_can_be_made_in(folder: Path, path: str, option: str) -> None:
    """Make and remove a folder in ``folder``: ``os.access`` lets root write anywhere, also in
    /proc or /sys, where no folder can be made (mkdir fails with ENOENT or EACCES)."""
    import os
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".benchmark-check-", dir=folder))
    except OSError as error:
        raise BenchmarkError(
            f"{option} {path}: no folder can be made in {folder} ({error.strerror}); pass a folder you can write to"
        ) from None


def option_parameters() -> list[Parameter]:
    return dataclass_parameters(RunOptions)
