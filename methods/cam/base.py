"""The CAM base class: what every CAM method shares, so that each method's own class declares
its traits and overrides one or two methods (the shape of grad-cam's ``BaseCAM``).

:class:`CAM` owns the target layer, the choice of backend, the batching and the calls:

* **grad-cam backend**: the batch goes through the method's grad-cam object (made once by
  :meth:`CAM.make_grad_cam`, its hooks attached per call: :mod:`.grad_cam_backend`) with one
  ``ClassifierOutputTarget`` per image, and the maps come back as a tensor min-max normalized
  per image (grad-cam already resizes them to the input size). The input is made to require
  grad (the benchmark's classifiers are frozen: without it grad-cam's backward has nothing to
  differentiate), under ``torch.enable_grad()`` and out of inference mode, so ``explain`` also
  works inside ``torch.no_grad()``.
* **device backend** (methods with ``has_device_backend``): :meth:`CAM.device_maps`, in torch
  on the images' device (:mod:`.device`); ``auto`` picks it wherever the method has one.

Randomness (Random-CAM weights, SmoothGrad-CAM++ noise) is seeded per (seed, sample id) from
``Explainer.current_sample_ids``, so a sample gets the same map in any batch, on any number of
processes, and for the Coherency call on ``x * M``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

from benchmark.core.errors import BenchmarkError
from benchmark.core.seeding import sample_seed
from benchmark.methods.base import Explainer, MethodConfig
from benchmark.methods.cam.config import DEVICE_BACKEND_METHODS, BatchedCAMConfig, CAMConfig
from benchmark.methods.cam.device import gradient_cam
from benchmark.methods.cam.grad_cam_backend import (
    base_cams,
    grad_cam_bars_silenced,
    hooks_attached,
    installed_grad_cam_class,
)
from benchmark.methods.cam.target_layer import resolve_target_layer, token_reshape
from benchmark.metrics.functional.image import minmax_normalize


class CAM(Explainer):
    """A CAM method: a target layer's activations weighted into a map, through grad-cam's class
    of the method or (where the method has one) its device backend.

    A method's class sets the traits below and overrides what differs: :meth:`make_grad_cam`
    (how its grad-cam object is built), :meth:`device_maps` (its device backend)."""

    config_class = CAMConfig
    #: the class of ``pytorch_grad_cam`` that computes the method (looked up when first used:
    #: the newer ones need a recent grad-cam)
    grad_cam_class: ClassVar[str] = ""
    #: whether the method reads one target layer (FullGrad reads every bias layer instead)
    reads_target_layer: ClassVar[bool] = True
    #: whether the map depends on the class asked about (not for Random-CAM and the
    #: class-agnostic projections)
    uses_class: ClassVar[bool] = True
    #: images per call of the grad-cam object (``None``: the whole batch)
    images_per_call: ClassVar[int | None] = None
    #: whether the method has a device backend (:meth:`device_maps`)
    has_device_backend: ClassVar[bool] = False
    #: whether the device backend takes convolutional layers only (not a vision transformer's
    #: tokens): there the grad-cam backend computes the method
    convolutional_only: ClassVar[bool] = False
    #: whether the device backend reads the layer's activations in a forward-only pass (no
    #: backward): under the ``compiled`` execution the run's compiled graph returns them with the
    #: logits (:meth:`forward_only_layer`)
    forward_only_activations: ClassVar[bool] = False

    def __init__(self, classifier: nn.Module, config: MethodConfig | None = None, **kwargs) -> None:
        if config is not None and not isinstance(config, self.config_class):
            raise TypeError(f"{self.method_name} takes a {self.config_class.__name__}, got {type(config).__name__}")
        super().__init__(classifier, config, **kwargs)
        if self.reads_target_layer:
            self.target_layer_path, module = resolve_target_layer(classifier, self.config.target_layer)
            self._target_layers: list[nn.Module] = [module]
            self.reshape_transform = token_reshape(classifier)
        else:
            self.target_layer_path, self._target_layers, self.reshape_transform = None, [], None
        self._cam: Any = None
        backend = getattr(self.config, "backend", "auto")
        if backend == "device" and not self.has_device_backend:
            raise BenchmarkError(
                f"--method.backend device is available for {DEVICE_BACKEND_METHODS}, not {self.method_name}; "
                "use --method.backend grad-cam or auto"
            )
        if backend == "device" and self.convolutional_only and self.reshape_transform is not None:
            raise BenchmarkError(
                f"--method.backend device computes {self.method_name} on convolutional layers only, and "
                f"{self.target_layer_path} gives a vision transformer's tokens; use --method.backend grad-cam or auto"
            )

    def uses_device_backend(self) -> bool:
        """Whether the maps are computed in torch (:mod:`.device`): with ``auto`` for every method
        that has a device backend (faster than grad-cam: the backward stops at the layer)."""
        if not self.has_device_backend:
            return False
        if self.convolutional_only and self.reshape_transform is not None:
            return False
        return getattr(self.config, "backend", "auto") in ("device", "auto")

    def class_independence(self) -> str | None:
        if self.uses_class:
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
        if not self.has_device_backend:
            return {"target_layer": self.target_layer_path}
        backend = "device" if self.uses_device_backend() else "grad-cam"
        return {"target_layer": self.target_layer_path, "backend": backend}

    def forward_only_layer(self) -> nn.Module | None:
        """The layer of a forward-only method on the device backend (its one pass is forward-only)."""
        if self.forward_only_activations and self.uses_device_backend():
            return self._target_layers[0]
        return None

    # -- the grad-cam backend ----------------------------------------------------------------

    def make_grad_cam(self, config: MethodConfig) -> Any:
        """The method's grad-cam object (``config``: the options, ``chunk_size`` resolved)."""
        return installed_grad_cam_class(self.grad_cam_class)(
            model=self.classifier, target_layers=list(self._target_layers), reshape_transform=self.reshape_transform
        )

    def cam_object(self, device: torch.device) -> Any:
        """The grad-cam object, made on first use (its hooks are attached per call)."""
        if self._cam is None:
            config = self.config
            if isinstance(config, BatchedCAMConfig):  # the chunk resolved: the option or the benchmark's
                config = dataclasses.replace(config, chunk_size=self.chunk_for(device))
            cam = self.make_grad_cam(config)
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
        """Perturbed copies per forward: ``--method.chunk_size``, else :meth:`default_chunk`."""
        chunk = getattr(self.config, "chunk_size", None)
        return chunk if chunk is not None else self.default_chunk(device)

    def default_chunk(self, device: torch.device) -> int:
        """The chunk without ``--method.chunk_size``: the benchmark's."""
        return self.scorer.chunk_size_for(device)

    # -- the device backend ------------------------------------------------------------------

    def device_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        """The maps ``[B, H, W]`` in torch on the images' device (methods with ``has_device_backend``)."""
        raise NotImplementedError(f"{self.method_name} has no device backend")

    # -- explain -----------------------------------------------------------------------------

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
        step = self.images_per_call or batch
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


class GradientCAM(CAM):
    """A CAM whose device backend is a formula of the layer's activations ``A`` and their
    gradients ``G = dy^c/dA`` (:func:`.device.gradient_cam`): the method gives :meth:`device_cam`."""

    has_device_backend = True

    def device_cam(self, activations: Tensor, gradients: Tensor) -> Tensor:
        """``[B, h, w]`` before the ReLU, from ``A`` and ``G`` (``[B, C, h, w]``)."""
        raise NotImplementedError

    def device_maps(self, images: Tensor, classes: Tensor) -> Tensor:
        return gradient_cam(
            self.classifier, self._target_layers[0], images, classes, self.device_cam, self.reshape_transform
        )
