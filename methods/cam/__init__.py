"""The CAM family as benchmark methods: one class per method, each in its own module.

Every method is a subclass of :class:`~benchmark.methods.cam.base.CAM` (the target layer, the
grad-cam and device backends, the batching) that declares its traits as class attributes
(``grad_cam_class``, ``config_class``, ``uses_class``, ``has_device_backend``,
``convolutional_only``, ``forward_only_activations``, ...) and overrides what differs: how its grad-cam
object is made, its device formula. ``class GradCAM`` is in :mod:`.gradcam`, and so on.

Modules that are not a method: :mod:`.base` (the base class), :mod:`.config` (the options),
:mod:`.target_layer`, :mod:`.grad_cam_backend` (running a grad-cam object),
:mod:`.grad_cam_variants` (grad-cam classes seeded per sample), :mod:`.device` (the device
backend's shared steps), :mod:`.device_ablation`, :mod:`.fullgrad_device` and
:mod:`.fullgrad_kernel` (the device backends of Ablation-CAM and FullGrad).
"""

from __future__ import annotations

from benchmark.methods.cam.ablationcam import AblationCAM
from benchmark.methods.cam.base import CAM, GradientCAM
from benchmark.methods.cam.config import BatchedCAMConfig, CAMConfig, FullGradConfig, SmoothGradCAMppConfig
from benchmark.methods.cam.eigencam import EigenCAM
from benchmark.methods.cam.eigengradcam import EigenGradCAM
from benchmark.methods.cam.fem import FEM
from benchmark.methods.cam.fullgrad import FullGrad, grad_cam_bias_layers
from benchmark.methods.cam.gradcam import GradCAM
from benchmark.methods.cam.gradcamelementwise import GradCAMElementWise
from benchmark.methods.cam.gradcampp import GradCAMPlusPlus
from benchmark.methods.cam.hirescam import HiResCAM
from benchmark.methods.cam.kpcacam import KPCACAM
from benchmark.methods.cam.layercam import LayerCAM
from benchmark.methods.cam.random_cam import RandomCAM
from benchmark.methods.cam.scorecam import ScoreCAM
from benchmark.methods.cam.segeigencam import SegEigenCAM
from benchmark.methods.cam.sess import SESS
from benchmark.methods.cam.shapleycam import ShapleyCAM
from benchmark.methods.cam.smoothgradcampp import SmoothGradCAMPlusPlus
from benchmark.methods.cam.target_layer import default_target_layer, resolve_target_layer, token_reshape
from benchmark.methods.cam.xgradcam import XGradCAM
from benchmark.methods.registry import register_method

#: The CAM methods in the order ``python -m benchmark --help`` lists them.
CAM_CLASSES: tuple[type[CAM], ...] = (
    RandomCAM,
    GradCAM,
    GradCAMPlusPlus,
    LayerCAM,
    HiResCAM,
    GradCAMElementWise,
    XGradCAM,
    ScoreCAM,
    AblationCAM,
    EigenCAM,
    EigenGradCAM,
    KPCACAM,
    FEM,
    ShapleyCAM,
    FullGrad,
    SegEigenCAM,
    SESS,
    SmoothGradCAMPlusPlus,
)

for _cls in CAM_CLASSES:
    register_method(_cls.method_name)(_cls)

#: Registry name -> class, for every CAM method.
CAM_METHODS: dict[str, type[CAM]] = {cls.method_name: cls for cls in CAM_CLASSES}
#: The methods with a device backend (``--method.backend device``).
DEVICE_METHODS: tuple[str, ...] = tuple(cls.method_name for cls in CAM_CLASSES if cls.has_device_backend)
#: The device methods whose one pass is forward-only (the compiled graph can return their layer).
FORWARD_ONLY_METHODS: tuple[str, ...] = tuple(
    cls.method_name for cls in CAM_CLASSES if cls.has_device_backend and cls.forward_only_activations
)

__all__ = [
    "CAM",
    "CAM_CLASSES",
    "CAM_METHODS",
    "DEVICE_METHODS",
    "FORWARD_ONLY_METHODS",
    "BatchedCAMConfig",
    "CAMConfig",
    "FullGradConfig",
    "GradientCAM",
    "SmoothGradCAMppConfig",
    "default_target_layer",
    "grad_cam_bias_layers",
    "resolve_target_layer",
    "token_reshape",
    *(cls.__name__ for cls in CAM_CLASSES),
]
