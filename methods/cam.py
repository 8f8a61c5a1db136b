"""The CAM family as benchmark methods: one generic explainer over grad-cam's classes.

Every method here is a registry name bound to a grad-cam class (``CAMSpec`` in ``CAM_SPECS``)
and run by :class:`CAMExplainer`: the batch goes through the CAM object in one call with one
``ClassifierOutputTarget`` per image, and the maps come back as a tensor min-max normalized
per image (grad-cam already resizes them to the input size).

What the explainer adds to grad-cam:

* The CAM object is made once per explainer; its hooks sit on the classifier only while a
  batch is explained (otherwise the scorer's hundreds of forwards would each be copied to the
  CPU by grad-cam's activation hook), and the graph grad-cam keeps is dropped afterwards.
* The output of each hooked layer is handed on as a copy, so an in-place op after the layer
  (DenseNet's ``F.relu(features, inplace=True)`` after ``features.norm5``, AlexNet's
  ``ReLU(inplace=True)``) cannot overwrite the activation grad-cam kept. grad-cam keeps
  ``output.cpu()``: a copy on CUDA, the same storage on the CPU, so without this the maps
  depend on the device.
* The input is made to require grad (the benchmark's classifiers are frozen: without it
  grad-cam's backward has nothing to differentiate), under ``torch.enable_grad()`` and out of
  inference mode, so ``explain`` also works inside ``torch.no_grad()``.
* Randomness (Random-CAM weights, SmoothGrad-CAM++ noise) is seeded per (seed, sample id)
  from ``Explainer.current_sample_ids``, so a sample gets the same map in any batch, on any
  number of processes, and for the Coherency call on ``x * M``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pytorch_grad_cam
import torch
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

from benchmark.core.errors import BenchmarkError
from benchmark.methods.base import Explainer, MethodConfig
from benchmark.methods.cam_device import CONVOLUTIONAL_ONLY, DEVICE_METHODS, FORWARD_ONLY_METHODS, device_cam
from benchmark.methods.cam_device_perturbation import ablation_cam, score_cam, smooth_gradcampp
from benchmark.methods.cam_variants import SeededRandomCAM, SmoothGradCAMPlusPlus, sample_seed
from benchmark.methods.fullgrad_device import CompiledTerm, bias_layers, fullgrad
from benchmark.methods.registry import register_method
from benchmark.metrics.functional.image import minmax_normalize
from benchmark.models.execution import execution_of
from benchmark.models.layers import TokensToGrid, token_layout
from benchmark.models.registry import NormalizedClassifier, get_model_spec, resolve_module

TARGET_CLASSES = ("top1", "label")
BACKENDS = ("auto", "grad-cam", "device")

# -- configuration ----------------------------------------------------------------------------


def _check_target_class(value: str) -> None:
    if value not in TARGET_CLASSES:
        raise BenchmarkError(f"--method.target_class {value!r} is unknown; choose one of: {', '.join(TARGET_CLASSES)}")


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
            f"{', '.join(DEVICE_METHODS)}) "
            "or auto (device where available, else grad-cam)"
        },
    )

    def validate(self) -> None:
        _check_target_class(self.target_class)
        if self.backend not in BACKENDS:
            raise BenchmarkError(f"--method.backend {self.backend!r} is unknown; choose one of: {', '.join(BACKENDS)}")
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
        if self.backend not in BACKENDS:
            raise BenchmarkError(f"--method.backend {self.backend!r} is unknown; choose one of: {', '.join(BACKENDS)}")


#: Ablation-CAM's device path, without ``--method.chunk_size``: at least this many ablated copies
#: of each image per pass. Each pass also runs the model's layers before the target once (on a
#: stand-in, ~5 ms on a 2-core CPU whatever its size), and the copies of the batch's images
#: share the pass: EfficientNet-Lite0, batch 16, CPU, 130 ms per image at 16, 107 at 32, 88 at
#: 64, 92 at 128, the maps bit for bit the same at all four (2026-12-03).
ABLATION_DEVICE_CHUNK = 64


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


# -- target layer -----------------------------------------------------------------------------


def _backbone(classifier: nn.Module) -> nn.Module:
    return classifier.net if isinstance(classifier, NormalizedClassifier) else classifier


def last_conv_layer(classifier: nn.Module) -> str:
    """Path (inside the backbone) of the last ``Conv2d`` in module order: the default target
    layer of models that are not in the registry."""
    paths = [name for name, module in _backbone(classifier).named_modules() if isinstance(module, nn.Conv2d)]
    if not paths:
        raise BenchmarkError(
            f"{getattr(classifier, 'name', '') or 'the model'} has no Conv2d layer to default to: "
            "pass --method.target_layer"
        )
    return paths[-1]


def default_target_layer(classifier: nn.Module) -> str:
    """The registered CAM layer of the model, else (``timm:``, ``torchvision:``, plugins) a vision
    transformer's last block's ``norm1``/``ln_1`` (grad-cam's documented choice), else its last
    ``Conv2d``."""
    name = getattr(classifier, "name", "")
    if isinstance(name, str) and name:
        try:
            registered = get_model_spec(name).cam_layer
        except BenchmarkError:
            registered = None
        if registered is not None:
            return registered
    layout = token_layout(_backbone(classifier))
    return layout.cam_layer if layout is not None else last_conv_layer(classifier)


def token_reshape(classifier: nn.Module) -> TokensToGrid | None:
    """grad-cam's ``reshape_transform`` for the model: a vision transformer's tokens to a grid
    (``[B, prefix + h*w, C] -> [B, C, h, w]``); ``None`` for convolutional networks."""
    layout = token_layout(_backbone(classifier))
    return layout.reshape if layout is not None else None


def resolve_target_layer(classifier: nn.Module, path: str | None) -> tuple[str, nn.Module]:
    """``(path, module)`` of the target layer; a bad path is a BenchmarkError with close names."""
    path = default_target_layer(classifier) if path is None else path
    if isinstance(classifier, NormalizedClassifier):
        return path, classifier.submodule(path)
    return path, resolve_module(classifier, path, what="target layer")


# -- grad-cam glue ----------------------------------------------------------------------------


def grad_cam_class(attribute: str) -> type:
    """A class of the installed grad-cam, or a BenchmarkError saying it is missing."""
    cls = getattr(pytorch_grad_cam, attribute, None)
    if cls is None:
        import importlib.metadata

        try:
            version = importlib.metadata.version("grad-cam")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            version = "?"
        raise BenchmarkError(
            f"pytorch_grad_cam.{attribute} is not in the installed grad-cam {version}: upgrade grad-cam"
        )
    return cls


def base_cams(cam: Any) -> list[BaseCAM]:
    """The ``BaseCAM`` objects that hold hooks (meta-methods such as SESS wrap one)."""
    if isinstance(cam, BaseCAM):
        return [cam]
    inner = getattr(cam, "base_cam", None)
    if isinstance(inner, BaseCAM):
        return [inner]
    raise TypeError(f"cannot find the BaseCAM inside {type(cam).__name__}")


def _hand_on_a_copy(module: nn.Module, args: Any, output: Any) -> Any:
    """Forward hook: later modules get a copy of the output, so an in-place op after the
    layer cannot change the tensor grad-cam's hooks (registered before) kept."""
    return output.clone() if isinstance(output, Tensor) else None


@contextlib.contextmanager
def hooks_attached(cam: Any) -> Iterator[None]:
    """grad-cam's activation/gradient hooks (plus the copy hook) for the duration of a call;
    afterwards the hooks are removed, the stored tensors and the retained graph dropped."""
    handles = []
    cams = base_cams(cam)
    try:
        for inner in cams:
            recorder = inner.activations_and_grads
            for layer in inner.target_layers:
                recorder.handles.append(layer.register_forward_hook(recorder.save_activation))
                recorder.handles.append(layer.register_forward_hook(recorder.save_gradient))
                handles.append(layer.register_forward_hook(_hand_on_a_copy))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for inner in cams:
            recorder = inner.activations_and_grads
            # dropped rather than detached in place by grad-cam's clear(), which fails on a
            # gradient that is a view (a vision transformer's tokens, when detach=False)
            recorder.activations, recorder.gradients = [], []
            recorder.release()
            inner.outputs = None  # grad-cam keeps the last outputs, and with them the graph


class _SilentTqdm:
    """Stand-in for the ``tqdm`` module inside grad-cam: its per-image bars would flood logs."""

    @staticmethod
    def tqdm(iterable=None, *args, **kwargs):
        return iterable


@contextlib.contextmanager
def grad_cam_bars_silenced() -> Iterator[None]:
    import importlib

    with contextlib.ExitStack() as stack:
        for name in ("pytorch_grad_cam.score_cam", "pytorch_grad_cam.ablation_cam"):
            try:
                module = importlib.import_module(name)
            except ImportError:  # pragma: no cover
                continue
            if isinstance(getattr(module, "tqdm", None), types.ModuleType):
                original = module.tqdm
                module.tqdm = _SilentTqdm
                stack.callback(setattr, module, "tqdm", original)
        yield


# -- the explainer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CAMSpec:
    """One CAM method: registry name, class name, how to build its grad-cam object."""

    name: str
    class_name: str
    #: ``make(model, layers, config, reshape_transform)``; ``reshape_transform`` is ``None`` or
    #: :class:`~models.layers.TokensToGrid` (vision transformers)
    make: Callable[[nn.Module, list[nn.Module], MethodConfig, Any], Any]
    config_class: type[MethodConfig] = CAMConfig
    uses_target_layer: bool = True
    doc: str = ""
    #: Images per call of the grad-cam object (``None``: the whole batch). Score-CAM builds the
    #: masked copies ``[B, C, 3, H, W]`` of the whole batch at once (ResNet-50, C = 2048, B = 8:
    #: ~10 GB), so it is called one image at a time (~1.2 GB); its forwards are batched inside.
    images_per_call: int | None = None
    #: Whether the map depends on the class asked about (not for Random-CAM and the
    #: class-agnostic projections).
    uses_class: bool = True


class CAMExplainer(Explainer):
    """A grad-cam CAM method (subclasses bind ``spec``)."""

    spec: ClassVar[CAMSpec]
    config_class = CAMConfig

    def __init__(self, classifier: nn.Module, config: MethodConfig | None = None, **kwargs) -> None:
        if config is not None and not isinstance(config, self.config_class):
            raise TypeError(f"{self.method_name} takes a {self.config_class.__name__}, got {type(config).__name__}")
        super().__init__(classifier, config, **kwargs)
        if self.spec.uses_target_layer:
            self.target_layer_path, module = resolve_target_layer(classifier, self.config.target_layer)
            self._target_layers: list[nn.Module] = [module]
        else:
            self.target_layer_path, self._target_layers = None, []
        self.reshape_transform = token_reshape(classifier) if self.spec.uses_target_layer else None
        self._cam: Any = None
        #: FullGrad's layer terms through one compiled graph, under the ``compiled`` execution
        self._compiled_term: CompiledTerm | None = None
        if getattr(self.config, "backend", "auto") == "device" and self.method_name not in DEVICE_METHODS:
            raise BenchmarkError(
                f"--method.backend device is available for {', '.join(DEVICE_METHODS)}, not {self.method_name}; "
                "use --method.backend grad-cam or auto"
            )
        if (
            getattr(self.config, "backend", "auto") == "device"
            and self.method_name in CONVOLUTIONAL_ONLY
            and self.reshape_transform is not None
        ):
            raise BenchmarkError(
                f"--method.backend device computes {self.method_name} on convolutional layers only, and "
                f"{self.target_layer_path} gives a vision transformer's tokens; use --method.backend grad-cam or auto"
            )

    def uses_device_backend(self) -> bool:
        """Whether the maps are computed in torch (:mod:`methods.cam_device`): with ``auto`` for
        every method it has (2x faster than grad-cam on the CPU: the backward stops at the layer)."""
        backend = getattr(self.config, "backend", "auto")
        if self.method_name in CONVOLUTIONAL_ONLY and self.reshape_transform is not None:
            return False
        return self.method_name in DEVICE_METHODS and backend in ("device", "auto")

    def class_independence(self) -> str | None:
        if self.spec.uses_class:
            return None
        return f"{self.method_name}'s maps do not depend on the class"

    # -- pipeline hooks ----------------------------------------------------------------------

    def choose_classes(self, batch: dict[str, Any], predicted: Tensor) -> Tensor:
        if self.config.target_class == "top1":
            return predicted
        labels = batch.get("label")
        if labels is None:
            return predicted
        labels = torch.as_tensor(labels).to(device=predicted.device, dtype=predicted.dtype)
        return torch.where(labels >= 0, labels, predicted)

    def describe(self) -> dict[str, Any]:
        if self.spec.uses_target_layer:
            if self.method_name not in DEVICE_METHODS:
                return {"target_layer": self.target_layer_path}
            backend = "device" if self.uses_device_backend() else "grad-cam"
            return {"target_layer": self.target_layer_path, "backend": backend}
        if self.uses_device_backend():
            layers = len(bias_layers(_backbone(self.classifier)))
            return {
                "target_layer": None,
                "backend": "device",
                "layers": f"the input gradient and the bias of every Conv2d/BatchNorm2d ({layers} layers)",
            }
        layers = len(grad_cam_bias_layers(_backbone(self.classifier)))
        return {
            "target_layer": None,
            "backend": "grad-cam",
            "layers": f"the input gradient and the bias of the layers of type exactly Conv2d/BatchNorm2d "
            f"({layers} layers)",
        }

    # -- explain -----------------------------------------------------------------------------

    def cam_object(self, device: torch.device) -> Any:
        """The grad-cam object, made on first use (its hooks are attached per call)."""
        if self._cam is None:
            config = self.config
            if isinstance(config, BatchedCAMConfig):  # the chunk resolved: the option or the benchmark's
                config = dataclasses.replace(config, chunk_size=self.chunk_for(device))
            cam = self.spec.make(self.classifier, list(self._target_layers), config, self.reshape_transform)
            for inner in base_cams(cam):
                inner.activations_and_grads.release()  # hooks only during explain
                if inner.uses_gradients:
                    inner.compute_input_gradient = True  # frozen weights: grads must reach x
            self._cam = cam
        for obj in {id(o): o for o in [self._cam, *base_cams(self._cam)]}.values():
            if hasattr(obj, "device"):
                obj.device = device  # grad-cam fixes it at construction; Lightning moves us later
        return self._cam

    def sample_ids_for(self, batch_size: int) -> list[int]:
        """Ids of the images being explained (``current_sample_ids``, set by ``test_step``);
        outside the pipeline, the positions in the batch."""
        ids = self.current_sample_ids
        if ids is None:
            return list(range(batch_size))
        ids = torch.as_tensor(ids).reshape(-1).tolist()
        if len(ids) != batch_size:
            raise RuntimeError(f"{len(ids)} current sample ids for a batch of {batch_size} images")
        return [int(i) for i in ids]

    def chunk_for(self, device: torch.device) -> int:
        """Perturbed copies per forward: ``--method.chunk_size``, else the benchmark's chunk (for
        Ablation-CAM's device path at least ``ABLATION_DEVICE_CHUNK`` copies of each image)."""
        chunk = getattr(self.config, "chunk_size", None)
        if chunk is not None:
            return chunk
        chunk = self.scorer.chunk_size_for(device)
        if self.method_name == "ablationcam" and self.uses_device_backend():
            return max(chunk, ABLATION_DEVICE_CHUNK)
        return chunk

    def device_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        """The maps in torch on the images' device (:mod:`methods.cam_device`,
        :mod:`methods.cam_device_perturbation`)."""
        if self.method_name == "fullgrad":
            return fullgrad(self.classifier, _backbone(self.classifier), images, classes, self._fullgrad_term())
        layer, ids = self._target_layers[0], self.sample_ids_for(images.shape[0])
        chunk = self.chunk_for(images.device)
        if self.method_name == "scorecam":
            return score_cam(self.classifier, self.forward_only, layer, images, classes, chunk, self.reshape_transform)
        if self.method_name == "ablationcam":
            return ablation_cam(
                self.classifier,
                _backbone(self.classifier),
                layer,
                images,
                classes,
                chunk,
                class_logits_only=execution_of(self.classifier) != "eager",
            )
        if self.method_name == "smoothgradcampp":
            seeds = [sample_seed(self.seed, i, SmoothGradCAMPlusPlus.seed_stream) for i in ids]
            return smooth_gradcampp(
                self.classifier,
                layer,
                images,
                classes,
                seeds,
                self.config.n_samples,
                self.config.noise_std,
                chunk,
                self.reshape_transform,
            )
        seeds = [sample_seed(self.seed, i, SeededRandomCAM.seed_stream) for i in ids]
        return device_cam(
            self.method_name,
            self.classifier,
            layer,
            images,
            classes,
            seeds=seeds,
            reshape_transform=self.reshape_transform,
            forward_with_layer=self.forward_with_layer,
        )

    def _fullgrad_term(self) -> CompiledTerm | None:
        """FullGrad's compiled layer term under the ``compiled`` execution (made on first use)."""
        if self._compiled_term is None and execution_of(self.classifier) == "compiled":
            self._compiled_term = CompiledTerm()
        return self._compiled_term

    def prepare(self, images: Tensor) -> None:
        """FullGrad on the device: its layer term built and compiled before the first map is timed
        (the C++ function's first build in an environment takes about 23 s)."""
        if self.method_name == "fullgrad" and self.uses_device_backend() and self._fullgrad_term() is not None:
            self._compiled_term.prepare(images.device)

    def execution_facts(self) -> dict[str, Any]:
        facts = super().execution_facts()
        if self._compiled_term is not None:
            facts.update(self._compiled_term.describe())
        return facts

    def forward_only_layer(self) -> nn.Module | None:
        """Random-CAM's and Eigen-CAM's layer on the device backend: their one pass is forward-only."""
        if self.method_name in FORWARD_ONLY_METHODS and self.uses_device_backend():
            return self._target_layers[0]
        return None

    def explain(self, images: Tensor, classes: Tensor) -> Tensor:
        batch = images.shape[0]
        targets = [ClassifierOutputTarget(int(c)) for c in torch.as_tensor(classes).reshape(-1).tolist()]
        # grad-cam zips targets with outputs: fewer targets than images silently give zero maps.
        if len(targets) != batch:
            raise ValueError(f"{len(targets)} classes for {batch} images: need one class per image")
        if self.uses_device_backend():
            return minmax_normalize(self.device_maps(images, torch.as_tensor(classes).reshape(-1)).to(images.dtype))
        cam = self.cam_object(images.device)
        if hasattr(cam, "sample_seeds"):
            cam.sample_seeds = [
                sample_seed(self.seed, sample_id, cam.seed_stream) for sample_id in self.sample_ids_for(batch)
            ]
        # grad-cam turns the hooked tensors into numpy arrays, which have no bfloat16: under
        # --precision bf16 its methods run in float32 (the scorer's forwards stay in bf16).
        no_autocast = torch.autocast(images.device.type, enabled=False)
        step = self.spec.images_per_call or batch
        with torch.inference_mode(False), torch.enable_grad(), no_autocast:
            inputs = images.detach().clone()  # a normal tensor even if images is an inference tensor
            with hooks_attached(cam), grad_cam_bars_silenced():
                result = np.concatenate(
                    [
                        cam(inputs[start : start + step], targets[start : start + step])
                        for start in range(0, batch, step)
                    ]
                )
        maps = torch.from_numpy(np.ascontiguousarray(result, dtype=np.float32))
        if tuple(maps.shape) != (batch, *images.shape[-2:]):
            raise RuntimeError(f"{self.method_name}: grad-cam returned maps of shape {tuple(maps.shape)}")
        return minmax_normalize(maps.to(device=images.device, dtype=images.dtype))


# -- the methods ------------------------------------------------------------------------------


def _plain(attribute: str) -> Callable[[nn.Module, list[nn.Module], MethodConfig, Any], Any]:
    def make(model: nn.Module, layers: list[nn.Module], config: MethodConfig, reshape_transform=None) -> Any:
        return grad_cam_class(attribute)(model=model, target_layers=layers, reshape_transform=reshape_transform)

    return make


def _make_scorecam(model, layers, config: BatchedCAMConfig, reshape_transform=None):
    cam = grad_cam_class("ScoreCAM")(model=model, target_layers=layers, reshape_transform=reshape_transform)
    cam.batch_size = config.chunk_size  # read by ScoreCAM.get_cam_weights
    return cam


class _RestoringAblationCAM:
    """AblationCAM swaps the target layer for its ablation layer while it runs: make sure the
    model gets its layer back even when the call fails."""

    def __init__(self, model, layers, batch_size: int, reshape_transform=None) -> None:
        from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerVit

        self.model = model
        # a fresh ablation layer (grad-cam's default argument is one instance shared by all);
        # on tokens, grad-cam's ViT variant (documented with its reshape_transform)
        ablation_layer = AblationLayer() if reshape_transform is None else AblationLayerVit()
        self.base_cam = grad_cam_class("AblationCAM")(
            model=model,
            target_layers=layers,
            reshape_transform=reshape_transform,
            ablation_layer=ablation_layer,
            batch_size=batch_size,
        )

    def __call__(self, input_tensor, targets):
        from pytorch_grad_cam.utils.find_layers import replace_layer_recursive

        try:
            return self.base_cam(input_tensor, targets)
        finally:
            for layer in self.base_cam.target_layers:
                replace_layer_recursive(self.model, self.base_cam.ablation_layer, layer)


def _make_ablationcam(model, layers, config: BatchedCAMConfig, reshape_transform=None):
    return _RestoringAblationCAM(model, layers, config.chunk_size, reshape_transform)


def grad_cam_bias_layers(net: nn.Module) -> list[nn.Module]:
    """The layers grad-cam's FullGrad reads: of type exactly ``Conv2d`` or ``BatchNorm2d``, with a bias."""
    return [m for m in net.modules() if type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None]


def _make_fullgrad(model, layers, config, reshape_transform=None):
    return grad_cam_class("FullGrad")(model=model, target_layers=[])


def _make_sess(model, layers, config: BatchedCAMConfig, reshape_transform=None):
    return grad_cam_class("SESS")(
        model=model,
        target_layers=layers,
        reshape_transform=reshape_transform,
        base_method=grad_cam_class("GradCAM"),
        batch_size=config.chunk_size,
    )


def _make_random(model, layers, config, reshape_transform=None):
    return SeededRandomCAM(model, layers, reshape_transform)


def _make_smoothgradcampp(model, layers, config: SmoothGradCAMppConfig, reshape_transform=None):
    return SmoothGradCAMPlusPlus(
        model,
        layers,
        n_samples=config.n_samples,
        noise_std=float(config.noise_std),
        reshape_transform=reshape_transform,
    )


CAM_SPECS: tuple[CAMSpec, ...] = (
    CAMSpec(
        "random",
        "RandomCAM",
        _make_random,
        uses_class=False,
        doc="""Random-CAM: target-layer activations under random channel weights (a baseline).

    ``M = ReLU(sum_k w_k A^k)``, ``w_k ~ U(-1, 1)`` drawn per sample from a generator seeded
    from (seed, sample id): the same map for a sample in any batch and on any process. The
    class is ignored. grad-cam's RandomCAM; a sanity-check baseline in the sense of
    Adebayo et al. 2018, "Sanity Checks for Saliency Maps" (NeurIPS).
    """,
    ),
    CAMSpec(
        "gradcam",
        "GradCAM",
        _plain("GradCAM"),
        doc="""Grad-CAM: activations weighted by the spatially averaged gradients of the class score.

    ``M = ReLU(sum_k a_k A^k)``, ``a_k = 1/Z sum_ij dy^c/dA^k_ij``.
    Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization" (ICCV).
    """,
    ),
    CAMSpec(
        "gradcampp",
        "GradCAMPlusPlus",
        _plain("GradCAMPlusPlus"),
        doc="""Grad-CAM++: activations weighted by positive gradients with per-pixel alpha coefficients.

    With ``g = dy^c/dA``: ``alpha_ij^k = g^2 / (2 g^2 + sum_ab A^k_ab g^3)``,
    ``w_k = sum_ij alpha_ij^k ReLU(g_ij^k)``, ``M = ReLU(sum_k w_k A^k)``.
    Chattopadhay et al. 2018, "Grad-CAM++: Generalized Gradient-based Visual Explanations for
    Deep Convolutional Networks" (WACV).
    """,
    ),
    CAMSpec(
        "layercam",
        "LayerCAM",
        _plain("LayerCAM"),
        doc="""Layer-CAM: activations weighted element-wise by their positive gradients.

    ``M = ReLU(sum_k ReLU(dy^c/dA^k_ij) A^k_ij)``.
    Jiang et al. 2021, "LayerCAM: Exploring Hierarchical Class Activation Maps for
    Localization" (IEEE TIP).
    """,
    ),
    CAMSpec(
        "hirescam",
        "HiResCAM",
        _plain("HiResCAM"),
        doc="""HiRes-CAM: activations multiplied element-wise by their gradients, summed over channels.

    ``M = ReLU(sum_k dy^c/dA^k_ij * A^k_ij)``.
    Draelos & Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations of
    convolutional neural networks" (arXiv:2011.08891).
    """,
    ),
    CAMSpec(
        "gradcamelementwise",
        "GradCAMElementWise",
        _plain("GradCAMElementWise"),
        doc="""Grad-CAM element-wise: the positive part of gradient x activation, summed over channels.

    ``M = ReLU(sum_k ReLU(dy^c/dA^k_ij * A^k_ij))``. grad-cam's variant of HiRes-CAM
    (Draelos & Carin 2020, arXiv:2011.08891) with a ReLU per element.
    """,
    ),
    CAMSpec(
        "xgradcam",
        "XGradCAM",
        _plain("XGradCAM"),
        doc="""XGrad-CAM: gradients weighted by the normalized activations (axiom-based Grad-CAM).

    ``w_k = sum_ij (A^k_ij / sum_ab A^k_ab) dy^c/dA^k_ij``, ``M = ReLU(sum_k w_k A^k)``.
    Fu et al. 2020, "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of
    CNNs" (BMVC).
    """,
    ),
    CAMSpec(
        "scorecam",
        "ScoreCAM",
        _make_scorecam,
        BatchedCAMConfig,
        images_per_call=1,
        doc="""Score-CAM: channels weighted by the softmax of the class score of the image masked by each channel.

    ``H^k = minmax(upsample(A^k))``, ``s_k = y^c(x * H^k)``, ``w = softmax_k(s)``,
    ``M = ReLU(sum_k w_k A^k)``; one forward pass per channel (``chunk_size`` at a time).
    Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks" (CVPR Workshops).
    """,
    ),
    CAMSpec(
        "ablationcam",
        "AblationCAM",
        _make_ablationcam,
        BatchedCAMConfig,
        doc="""Ablation-CAM: channels weighted by the drop of the class score when each is ablated.

    ``w_k = (y^c - y^c_k) / y^c`` with ``y^c_k`` the score with channel ``k`` of the target
    layer set to zero (a very low value if the layer can be negative),
    ``M = ReLU(sum_k w_k A^k)``; one forward pass per channel (``chunk_size`` at a time).
    Desai & Ramaswamy 2020, "Ablation-CAM: Visual Explanations for Deep Convolutional Network
    via Gradient-free Localization" (WACV).
    """,
    ),
    CAMSpec(
        "eigencam",
        "EigenCAM",
        _plain("EigenCAM"),
        uses_class=False,
        doc="""Eigen-CAM: projection of the activations on their first principal component (class-agnostic).

    ``M = ReLU(A V_1)`` with ``V_1`` the first right singular vector of the centred
    activations (pixels x channels); the class is ignored.
    Muhammad & Yeasin 2020, "Eigen-CAM: Class Activation Map using Principal Components"
    (IJCNN).
    """,
    ),
    CAMSpec(
        "eigengradcam",
        "EigenGradCAM",
        _plain("EigenGradCAM"),
        doc="""Eigen-Grad-CAM: first principal component of gradient x activation (class-specific Eigen-CAM).

    ``M = ReLU(P_1(dy^c/dA * A))`` with ``P_1`` the projection on the first principal
    component. grad-cam's variant of Eigen-CAM (Muhammad & Yeasin 2020, IJCNN).
    """,
    ),
    CAMSpec(
        "kpcacam",
        "KPCA_CAM",
        _plain("KPCA_CAM"),
        uses_class=False,
        doc="""KPCA-CAM: first kernel principal component of the activations (class-agnostic).

    ``M = ReLU(KPCA_1(A))`` with a sigmoid kernel over the pixels' channel vectors; the class
    is ignored. Karmani et al. 2024, "KPCA-CAM: Visual Explainability of Deep Computer Vision
    Models using Kernel PCA" (arXiv:2410.00267).
    """,
    ),
    CAMSpec(
        "fem",
        "FEM",
        _plain("FEM"),
        uses_class=False,
        doc="""FEM: channels weighted by the share of their pixels above mean + 2 std (class-agnostic).

    ``w_k = mean_ij [A^k_ij > mu_k + 2 sigma_k]``, ``M = ReLU(sum_k w_k A^k)``; the class is
    ignored. Fuad et al. 2020, "Features Understanding in 3D CNNs for Actions Recognition in
    Video" (IPTA).
    """,
    ),
    CAMSpec(
        "shapleycam",
        "ShapleyCAM",
        _plain("ShapleyCAM"),
        doc="""Shapley-CAM: gradients corrected by a Hessian-vector product, spatially averaged.

    ``w_k = mean_ij (g - 1/2 H A)^k_ij`` with ``g = dy^c/dA`` and ``H A`` the Hessian of
    ``y^c`` w.r.t. ``A`` times ``A``; ``M = ReLU(sum_k w_k A^k)``.
    Cai 2025, "Rethinking Explainable AI: ShapleyCAM - a Game-Theoretic Approach to Class
    Activation Mapping" (arXiv:2501.06261).
    """,
    ),
    CAMSpec(
        "fullgrad",
        "FullGrad",
        _make_fullgrad,
        FullGradConfig,
        uses_target_layer=False,
        doc="""FullGrad: input-gradient and bias-gradient maps of every layer, summed (no target layer).

    ``M = psi(|dy^c/dx * x|) + sum_l sum_c psi(|b_l * dy^c/dz_l|)`` over every Conv2d and
    BatchNorm2d with a bias ``b_l`` and output ``z_l`` (psi = per-channel min-max scaling and
    resizing to the input; see :mod:`methods.fullgrad_device`, the default backend).
    Srinivas & Fleuret 2019, "Full-Gradient Representation for Neural Network Visualization"
    (NeurIPS).
    """,
    ),
    CAMSpec(
        "segeigencam",
        "SegEigenCAM",
        _plain("SegEigenCAM"),
        doc="""Seg-Eigen-CAM: first principal component of |gradient| x activation, sign-corrected.

    ``M = ReLU(s P_1(|dy^c/dA| * A))`` with ``s`` = +-1 chosen so the larger magnitude is
    positive. Chung & Ying 2025, "Seg-Eigen-CAM: Eigen-Value-Based Visual Explanations for
    Semantic Segmentation Models" (Applied Sciences 15(13)); here on a classifier's score.
    """,
    ),
    CAMSpec(
        "sess",
        "SESS",
        _make_sess,
        BatchedCAMConfig,
        doc="""SESS: Grad-CAM over sliding windows at 12 scales, fused by a score-weighted mean.

    The image is resized to 12 scales (``s + 2/7 s i``, ``s`` = its shorter side), windows of
    size ``s`` are cut out, each window's Grad-CAM is weighted by its softmax score of the
    class and pasted back; ``M = blur(mean over windows)``. ``chunk_size`` windows per pass.
    Tursun et al. 2022, "SESS: Saliency Enhancing with Scaling and Sliding" (ECCV).
    """,
    ),
    CAMSpec(
        "smoothgradcampp",
        "SmoothGradCAMPlusPlus",
        _make_smoothgradcampp,
        SmoothGradCAMppConfig,
        doc="""SmoothGrad-CAM++: Grad-CAM++ with gradients averaged over noisy copies of the image.

    With ``g_s = dy^c/dA`` at ``x + eps_s``, ``eps_s ~ N(0, noise_std^2)`` in pixel space,
    ``s = 1..n_samples``: ``D_p = mean_s g_s^p``, ``alpha = D_2 / (2 D_2 + sum_ab A_ab D_3)``,
    ``w_k = sum_ij alpha_ij^k ReLU(D_1)_ij^k``, ``M = ReLU(sum_k w_k A^k(x))``. The noise is
    drawn per sample from a generator seeded from (seed, sample id).
    Omeiza et al. 2019, "Smooth Grad-CAM++: An Enhanced Inference Level Visualization
    Technique for Deep Convolutional Neural Network Models" (arXiv:1908.01224).
    """,
    ),
)


def _define(spec: CAMSpec) -> type[CAMExplainer]:
    class_name = f"{spec.class_name.replace('_', '')}Explainer"
    cls = type(
        class_name,
        (CAMExplainer,),
        {"spec": spec, "config_class": spec.config_class, "__doc__": spec.doc, "__module__": __name__},
    )
    cls.__qualname__ = class_name
    return register_method(spec.name)(cls)


CAM_METHODS: dict[str, type[CAMExplainer]] = {}
for _spec in CAM_SPECS:
    CAM_METHODS[_spec.name] = globals()[f"{_spec.class_name.replace('_', '')}Explainer"] = _define(_spec)

__all__ = [
    "BatchedCAMConfig",
    "CAMConfig",
    "CAMExplainer",
    "CAMSpec",
    "CAM_METHODS",
    "CAM_SPECS",
    "FullGradConfig",
    "SmoothGradCAMppConfig",
    "default_target_layer",
    "resolve_target_layer",
    "token_reshape",
    *(f"{s.class_name.replace('_', '')}Explainer" for s in CAM_SPECS),
]
