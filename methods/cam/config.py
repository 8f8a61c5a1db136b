"""The options of the CAM methods (``--method.*``): one dataclass per set of options.

* :class:`CAMConfig`: the methods that read one target layer (Grad-CAM and most others);
* :class:`BatchedCAMConfig`: those that score many perturbed copies of each image (Score-CAM,
  Ablation-CAM, SESS), plus ``chunk_size``;
* :class:`SmoothGradCAMppConfig`: SmoothGrad-CAM++'s noise;
* :class:`FullGradConfig`: FullGrad, which reads every bias layer and so has no target layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchmark.core.errors import BenchmarkError
from benchmark.methods.base import MethodConfig

TARGET_CLASSES = ("top1", "label")
BACKENDS = ("auto", "grad-cam", "device")

#: The methods with a device backend, as the help and the errors name them (each method's class
#: says whether it has one, ``CAM.has_device_backend``; tests/methods/test_cam.py checks the two agree).
DEVICE_BACKEND_METHODS = (
    "gradcam, gradcampp, xgradcam, hirescam, layercam, random, eigencam, scorecam, smoothgradcampp, ablationcam, "
    "fullgrad"
)


def _check_target_class(value: str) -> None:
    if value not in TARGET_CLASSES:
        raise BenchmarkError(f"--method.target_class {value!r} is unknown; choose one of: {', '.join(TARGET_CLASSES)}")


def _check_backend(value: str) -> None:
    if value not in BACKENDS:
        raise BenchmarkError(f"--method.backend {value!r} is unknown; choose one of: {', '.join(BACKENDS)}")


_TARGET_CLASS_HELP = (
    "class to explain: top1 (predicted on the original image) or label (the image's label "
    "where known, else top1); the metrics always score the top-1 class"
)


@dataclass
class CAMConfig(MethodConfig):
    """Options of the CAM methods that read one target layer."""

    target_layer: str | None = field(
        default=None,
        metadata={
            "help": "module path inside the backbone, e.g. conv_head, layer4.2, features.norm5 "
            "(default: the model's registered CAM layer, else a vision transformer's last block's norm1, "
            "else its last Conv2d)"
        },
    )
    target_class: str = field(default="top1", metadata={"help": _TARGET_CLASS_HELP})
    backend: str = field(
        default="auto",
        metadata={
            "help": "grad-cam (the package: numpy on the CPU, backward to the input), device (the same maps "
            "to 1e-5 computed in torch on the images' device, backward to the layer only; "
            f"{DEVICE_BACKEND_METHODS}) "
            "or auto (device where available, else grad-cam)"
        },
    )

    def validate(self) -> None:
        _check_target_class(self.target_class)
        _check_backend(self.backend)
        if self.target_layer is not None and (not isinstance(self.target_layer, str) or not self.target_layer.strip()):
            raise BenchmarkError(
                f"--method.target_layer must be a module path such as conv_head or layer4.2 "
                f"(or null for the model's default), got {self.target_layer!r}"
            )


@dataclass
class FullGradConfig(MethodConfig):
    """FullGrad reads every bias layer: it has no target layer."""

    target_class: str = field(default="top1", metadata={"help": _TARGET_CLASS_HELP})
    backend: str = field(
        default="auto",
        metadata={
            "help": "device (torch on the images' device, every Conv2d/BatchNorm2d with a bias, timm's BatchNormAct2d "
            "included), grad-cam (the package: only layers of exactly those two types, so on timm models such as "
            "EfficientNet-Lite the input-gradient term alone) or auto (device)"
        },
    )

    def validate(self) -> None:
        _check_target_class(self.target_class)
        _check_backend(self.backend)


@dataclass
class BatchedCAMConfig(CAMConfig):
    """CAM methods that score many perturbed copies of each image."""

    chunk_size: int | None = field(
        default=None,
        metadata={
            "help": "perturbed copies of an image per forward pass (memory vs. speed), >= 1; default: the "
            "benchmark's chunk (--metrics.chunk_size, else the device's: 16 on a CPU, 128 on a GPU; "
            "Ablation-CAM's device path: at least 64)"
        },
    )

    def validate(self) -> None:
        super().validate()
        if self.chunk_size is not None and (
            isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1
        ):
            raise BenchmarkError(f"--method.chunk_size must be an integer >= 1, got {self.chunk_size!r}")


@dataclass
class SmoothGradCAMppConfig(CAMConfig):
    """SmoothGrad-CAM++ options."""

    n_samples: int = field(default=16, metadata={"help": "noisy copies of each image, >= 1"})
    noise_std: float = field(
        default=0.15, metadata={"help": "std of the Gaussian noise in pixel space ([0, 1] images), >= 0"}
    )

    def validate(self) -> None:
        super().validate()
        if isinstance(self.n_samples, bool) or not isinstance(self.n_samples, int) or self.n_samples < 1:
            raise BenchmarkError(f"--method.n_samples must be an integer >= 1, got {self.n_samples!r}")
        if not (isinstance(self.noise_std, (int, float)) and np.isfinite(self.noise_std) and self.noise_std >= 0):
            raise BenchmarkError(f"--method.noise_std must be a number >= 0 (e.g. 0.15), got {self.noise_std!r}")
