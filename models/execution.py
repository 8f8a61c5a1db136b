"""How the classifier's passes execute.

* ``eager``: PyTorch in NCHW, the benchmark's path until 2026-12.
* ``channels_last``: weights and activations in the ``channels_last`` memory format; on this
  project's 2-core CPU a forward is 1.5x and a forward+backward 1.3x faster than eager.
* ``compiled``: ``channels_last``, and the passes that need neither hooks nor gradients (the
  top-1 prediction, ``x * M``, the Insertion/Deletion curves, Score-CAM's masked inputs) go
  through ``torch.compile`` (one graph, fixed batch: inputs are cut into pieces of that batch
  and the last piece is padded, so the model compiles once per run): a further 1.3x on the CPU
  (``perf/README.md``). Passes that need hooks (CAM layers, feature layers, pass counting by a
  user's hook) or gradients (LOTS, the gradient CAMs) run ``channels_last``. The compile cost
  (tens of seconds on a CPU the first time; PyTorch caches the result on disk) is paid on the
  first such pass and shown on stderr; a model that cannot be compiled as one graph runs those
  passes ``channels_last`` after one line saying so.

``channels_last`` and ``compiled`` also run eval-mode BatchNorms as one multiply-add in the
passes that record a graph (:mod:`models.batchnorm`: its backward is one multiply, about 10%
off a LOTS step), and keep freed memory in the process (:mod:`models.allocator`, set by the
run's settings): each pass then reuses the memory of the one before instead of taking fresh
pages from the kernel, which cost eager NCHW more than half its forward time on this project's
VM. ``eager`` does neither.

All three compute in float32 (or float64); they differ only in rounding (the allocator changes
no number).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import torch
from torch import Tensor, nn

from metrics.errors import BenchmarkError
from models.batchnorm import affine_batchnorms
from models.counting import count_forward, is_counting_hook

EXECUTIONS = ("eager", "channels_last", "compiled")


def check_execution(execution: str) -> str:
    if execution not in EXECUTIONS:
        raise BenchmarkError(f"--execution {execution!r} is unknown; choose one of: {', '.join(EXECUTIONS)}")
    return execution


def apply_execution(net: nn.Module, execution: str) -> nn.Module:
    """``net`` set up for ``execution`` (in place; the input's layout follows its weights')."""
    if check_execution(execution) in ("channels_last", "compiled"):
        net.to(memory_format=torch.channels_last)
        affine_batchnorms(net)
    return net


def has_hooks(net: nn.Module) -> bool:
    """Whether a forward hook anywhere in ``net`` (or a global one) would see its passes; the
    pass counter's own hooks on ``net`` do not count (compiled passes report to it directly)."""
    from torch.nn.modules import module as module_globals

    if module_globals._global_forward_hooks or module_globals._global_forward_pre_hooks:
        return True
    for module in net.modules():
        hooks = [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]
        if module is net:
            hooks = [hook for hook in hooks if not is_counting_hook(hook)]
        if hooks:
            return True
    return False


class CompiledForward:
    """``classifier(images)`` for passes without hooks or gradients, through ``torch.compile``.

    ``images`` of any count are cut into pieces of ``batch_size`` (the last one padded with
    zeros, whose outputs are dropped), so one graph serves a whole run. Falls back to the
    classifier itself (after one line on stderr) when the model cannot be compiled, and per
    call for inputs the graph does not cover: not float32, under autocast, with gradients, or
    while a hook is registered on the backbone.
    """

    def __init__(self, classifier: nn.Module, batch_size: int, note: Callable[[str], None] | None = None):
        from models.registry import note as default_note

        self.classifier = classifier
        self.net: nn.Module = classifier.net
        self.batch_size = int(batch_size)
        self.note = note or default_note
        self.failure: str | None = None  # why the model runs uncompiled, once it failed
        self.compile_s: float | None = None
        self._compiled: Callable[[Tensor], Tensor] | None = None

    def _plain(self, images: Tensor) -> Tensor:
        # net.forward, not net(...): the pass counter's hook on the backbone stays out of the graph
        return self.net.forward((images - self.classifier.mean) / self.classifier.std)

    def covers(self, images: Tensor) -> bool:
        return (
            self.failure is None
            and images.dtype == torch.float32
            and not torch.is_autocast_enabled(images.device.type)
            and not (torch.is_grad_enabled() and images.requires_grad)
            and not has_hooks(self.net)
        )

    def __call__(self, images: Tensor) -> Tensor:
        if not self.covers(images):
            return self.classifier(images)
        try:
            with torch.no_grad():
                outputs = torch.cat([self._piece(piece) for piece in images.split(self.batch_size)])
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run uncompiled
            self._give_up(error)
            return self.classifier(images)
        count_forward(self.net, images.shape[0], batch=self.batch_size, pieces=-(-images.shape[0] // self.batch_size))
        return outputs

    def _piece(self, piece: Tensor) -> Tensor:
        """The logits of ``piece`` (at most ``batch_size`` images), padded to the graph's batch."""
        count = piece.shape[0]
        if count < self.batch_size:
            piece = torch.cat([piece, piece.new_zeros(self.batch_size - count, *piece.shape[1:])])
        piece = piece.contiguous(memory_format=torch.channels_last)
        output = self._compile(piece) if self._compiled is None else self._compiled(piece)
        return output[:count]

    def _compile(self, piece: Tensor) -> Tensor:
        name = getattr(self.classifier, "name", "") or "the model"
        shape = "x".join(str(s) for s in piece.shape[1:])
        self.note(f"compiling {name}'s forward (torch.compile, batches of {self.batch_size} at {shape}; "
                  "once per run) ...")
        # "No CUDA runtime is found": the CUDA build of torch compiling on a machine without a GPU
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        start = time.perf_counter()
        compiled = torch.compile(self._plain, fullgraph=True, dynamic=False)
        output = compiled(piece)
        self.compile_s = round(time.perf_counter() - start, 1)
        self._compiled = compiled
        self.note(f"compiled {name}'s forward in {self.compile_s} s")
        return output

    def _give_up(self, error: Exception) -> None:
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        self.failure = f"{type(error).__name__}: {first_line}"
        name = getattr(self.classifier, "name", "") or "the model"
        self.note(f"{name} cannot be compiled ({self.failure}); its forward-only passes run channels_last")

    def describe(self) -> dict:
        """What ran, for results.json."""
        if self.failure is not None:
            return {"compiled_forward": "failed, ran channels_last", "compile_failure": self.failure}
        if self.compile_s is None:
            return {"compiled_forward": "not used"}
        return {"compiled_forward": f"batches of {self.batch_size}", "compile_s": self.compile_s}


def forward_only(classifier: nn.Module, batch_size: int) -> Callable[[Tensor], Tensor]:
    """The callable for the classifier's passes that need neither hooks nor gradients: a
    :class:`CompiledForward` under the ``compiled`` execution, else the classifier itself (so
    ``eager`` and ``channels_last`` run exactly as before)."""
    if getattr(classifier, "execution", "eager") == "compiled" and hasattr(classifier, "net"):
        return CompiledForward(classifier, batch_size)
    return classifier
