"""Running a grad-cam object (the ``grad-cam`` backend): its class looked up in the installed
package, its hooks attached for one call only, its progress bars silenced.

* The hooks sit on the classifier only while a batch is explained (otherwise the scorer's
  hundreds of forwards would each be copied to the CPU by grad-cam's activation hook), and the
  graph grad-cam keeps is dropped afterwards.
* The output of each hooked layer is handed on as a copy, so an in-place op after the layer
  (DenseNet's ``F.relu(features, inplace=True)`` after ``features.norm5``, AlexNet's
  ``ReLU(inplace=True)``) cannot overwrite the activation grad-cam kept. grad-cam keeps
  ``output.cpu()``: a copy on CUDA, the same storage on the CPU, so without this the maps
  depend on the device.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import types
from collections.abc import Iterator
from typing import Any

import pytorch_grad_cam
from pytorch_grad_cam.base_cam import BaseCAM
from torch import Tensor, nn

from benchmark.core.errors import BenchmarkError


def installed_grad_cam_class(name: str) -> type:
    """``pytorch_grad_cam.<name>`` of the installed grad-cam, or a BenchmarkError saying it is
    missing (the newer methods came with later grad-cam releases)."""
    cls = getattr(pytorch_grad_cam, name, None)
    if cls is None:
        try:
            version = importlib.metadata.version("grad-cam")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            version = "?"
        raise BenchmarkError(f"pytorch_grad_cam.{name} is not in the installed grad-cam {version}: upgrade grad-cam")
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
