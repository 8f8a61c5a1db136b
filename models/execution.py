"""How the classifier's passes execute.

* ``eager``: PyTorch in NCHW, the benchmark's original path.
* ``channels_last``: weights and activations in the ``channels_last`` memory format, which the
  CPU's convolution kernels read faster than NCHW (forward and backward; ``perf/README.md``).
* ``compiled``: ``channels_last``, and the passes that need neither hooks nor gradients (the
  top-1 prediction, ``x * M``, the Insertion/Deletion curves, Score-CAM's masked inputs) go
  through ``torch.compile`` (one graph, fixed batch: inputs are cut into pieces of that batch
  and the last piece is padded, so the model compiles once per run): faster again on the CPU, as
  the graph fuses the element-wise work between the convolutions (``perf/README.md``). Passes
  that need hooks (CAM layers, feature layers, pass counting by a user's hook) or gradients
  (LOTS, the gradient CAMs) run ``channels_last``. The compile cost (tens of seconds on a CPU
  the first time; PyTorch caches the result on disk) is paid on the first such pass and shown
  on stderr; a model that cannot be compiled as one graph runs those passes ``channels_last``
  after one line saying so. A method that reads one layer's output in
  a forward-only pass (Random-CAM, Eigen-CAM) gets it from the same graph: the run's one
  compiled forward then returns the logits and that layer's output
  (:meth:`CompiledForward.with_layer`).

``channels_last`` and ``compiled`` also run eval-mode BatchNorms as one multiply-add in the
passes that record a graph (:mod:`benchmark.models.batchnorm`: its backward is one multiply, which
shortens a LOTS step), and keep freed memory in the process (:mod:`benchmark.models.allocator`, set by the
run's settings): each pass then reuses the memory of the one before instead of taking fresh
pages from the kernel, which cost eager NCHW more than half its forward time on this project's
VM. ``eager`` does neither.

All three compute in float32 (or float64); they differ only in rounding (the allocator changes
no number).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.core import notes
from benchmark.core.errors import BenchmarkError
from benchmark.models.batchnorm import affine_batchnorms
from benchmark.models.counting import count_forward, is_counting_hook

EXECUTIONS = ("eager", "channels_last", "compiled")


def check_execution(execution: str) -> str:
    if execution not in EXECUTIONS:
        raise BenchmarkError(f"--execution {execution!r} is unknown; choose one of: {', '.join(EXECUTIONS)}")
    return execution


def execution_of(classifier: nn.Module) -> str:
    """The execution ``classifier`` runs (``benchmark.models.build_classifier`` sets it); ``eager`` for a
    model made elsewhere (a user's ``nn.Module``), which runs as it is."""
    return getattr(classifier, "execution", "eager")


def apply_execution(net: nn.Module, execution: str) -> nn.Module:
    """``net`` set up for ``execution`` (in place; the input's layout follows its weights')."""
    if check_execution(execution) in ("channels_last", "compiled"):
        net.to(memory_format=torch.channels_last)
        affine_batchnorms(net)
    return net


def compiler_failure(error: Exception) -> str:
    """``"Type: first line"`` of a compiler's exception (at most 200 characters of the line),
    for the one line a fallback prints and for results.json."""
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    return f"{type(error).__name__}: {first_line}"


def quiet_compiler_warnings() -> None:
    """Silence "No CUDA runtime is found": the CUDA build of torch compiling on a machine without a GPU."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def _is_layer_capture(hook: object) -> bool:
    return bool(getattr(hook, "captures_layer", False))


def has_hooks(net: nn.Module) -> bool:
    """Whether a forward hook anywhere in ``net`` (or a global one) would see its passes; the
    pass counter's own hooks on ``net`` do not count (compiled passes report to it directly),
    nor does :class:`CompiledForward`'s own capture of a layer (the graph contains it)."""
    from torch.nn.modules import module as module_globals

    if module_globals._global_forward_hooks or module_globals._global_forward_pre_hooks:
        return True
    for module in net.modules():
        hooks = [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]
        hooks = [hook for hook in hooks if not _is_layer_capture(hook)]
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

    With ``layer`` (a module of the backbone), the graph also returns that layer's output, read
    by a forward hook of this object's own that stays on the layer (torch.compile traces it
    into the graph; :func:`has_hooks` does not count it): :meth:`with_layer` gives both, and
    ``__call__`` the logits of the same graph, so a run still compiles once.
    """

    def __init__(
        self,
        classifier: nn.Module,
        batch_size: int,
        note: Callable[[str], None] | None = None,
        layer: nn.Module | None = None,
    ):
        self.classifier = classifier
        self.net: nn.Module = classifier.net
        self.batch_size = int(batch_size)
        self.note = note or notes.note
        self.layer = layer
        self.failure: str | None = None  # why the model runs uncompiled, once it failed
        self.compile_s: float | None = None
        self._compiled: Callable[[Tensor], Tensor | tuple[Tensor, Tensor]] | None = None
        #: the layer's output of the pass running; ``"armed"`` while this object runs a pass, so
        #: that the model's other passes (a CAM's hooked one, a warm-up) leave nothing here
        self._captured: dict[str, Any] = {}
        if layer is not None:
            captured = self._captured

            def capture(module: nn.Module, args, output: Tensor) -> None:
                if captured.get("armed"):
                    # a copy: an in-place op after the layer cannot change it
                    captured["layer"] = output.detach().clone()

            capture.captures_layer = True
            # removed with this object (a model shared by several explainers keeps no stale hooks)
            weakref.finalize(self, layer.register_forward_hook(capture).remove)

    def _plain(self, images: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        # net.forward, not net(...): the pass counter's hook on the backbone stays out of the graph
        logits = self.net.forward((images - self.classifier.mean) / self.classifier.std)
        if self.layer is None:
            return logits
        return logits, self._captured.pop("layer")

    def covers(self, images: Tensor) -> bool:
        return (
            self.failure is None
            and images.dtype == torch.float32
            and not torch.is_autocast_enabled(images.device.type)
            and not (torch.is_grad_enabled() and images.requires_grad)
            and not has_hooks(self.net)
        )

    def __call__(self, images: Tensor) -> Tensor:
        return self._run(images, keep_layer=False)[0]

    def with_layer(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The logits and the output of ``layer`` (given at construction) on ``images``, from one
        forward: the full pieces of ``batch_size`` images through the compiled graph (where it
        covers the input), the rest through the classifier's own pass, not padded: a padded
        piece costs the graph's full batch (a batch of 8 in the CPU's graph of 16 would cost 16
        images of the graph against 8 of ``channels_last``, 1.7x more on this project's CPU,
        ``perf/README.md``; the CPU's default run batch is the graph's)."""
        if self.layer is None:
            raise ValueError("this CompiledForward was made without a layer")
        count = images.shape[0]
        full = count - count % self.batch_size if self.covers(images) else 0
        parts = [self._run(images[:full], keep_layer=True)] if full else []
        if full < count:
            with torch.no_grad():
                parts.append(self._eager(images[full:], keep_layer=True))
        return torch.cat([logits for logits, _ in parts]), torch.cat([layer for _, layer in parts])  # type: ignore[misc]

    def _run(self, images: Tensor, keep_layer: bool) -> tuple[Tensor, Tensor | None]:
        """The logits (and with ``keep_layer`` the layer's output) through the graph, or the
        classifier where the graph does not cover ``images``. The graph is always run armed
        (its guards hold), and always returns the layer's output when it has a layer."""
        self._captured["armed"] = True
        try:
            if self.covers(images):
                try:
                    with torch.no_grad():
                        pieces = [self._piece(piece) for piece in images.split(self.batch_size)]
                except Exception as error:
                    self._give_up(error)
                else:
                    count_forward(
                        self.net, images.shape[0], batch=self.batch_size, pieces=-(-images.shape[0] // self.batch_size)
                    )
                    logits = torch.cat([piece[0] for piece in pieces])
                    return logits, (torch.cat([piece[1] for piece in pieces]) if keep_layer else None)
        finally:
            self._captured.clear()
        return self._eager(images, keep_layer)

    def _eager(self, images: Tensor, keep_layer: bool) -> tuple[Tensor, Tensor | None]:
        """The classifier's own pass; the capture is armed only when the layer's output is wanted."""
        self._captured["armed"] = keep_layer
        try:
            logits = self.classifier(images)
            return logits, self._captured.get("layer") if keep_layer else None
        finally:
            self._captured.clear()

    def _piece(self, piece: Tensor) -> tuple[Tensor, Tensor | None]:
        """The logits of ``piece`` (at most ``batch_size`` images), padded to the graph's batch,
        and the layer's output on it (``None`` without a layer)."""
        count = piece.shape[0]
        if count < self.batch_size:
            piece = torch.cat([piece, piece.new_zeros(self.batch_size - count, *piece.shape[1:])])
        # NCHW in (a no-op for the images a run makes): the graph's first kernel, the normalisation,
        # writes the channels_last layout its convolutions read, so a conversion here would be a
        # second pass over the input for the same logits (perf/README.md); one layout keeps the
        # graph from recompiling
        piece = piece.contiguous()
        output = self._compile(piece) if self._compiled is None else self._compiled(piece)
        if self.layer is None:
            return output[:count], None
        logits, layer_output = output
        return logits[:count], layer_output[:count]

    def _compile(self, piece: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        name = getattr(self.classifier, "name", "") or "the model"
        shape = "x".join(str(s) for s in piece.shape[1:])
        self.note(
            f"compiling {name}'s forward (torch.compile, batches of {self.batch_size} at {shape}; once per run) ..."
        )
        quiet_compiler_warnings()
        start = time.perf_counter()
        compiled = torch.compile(self._plain, fullgraph=True, dynamic=False)
        output = compiled(piece)
        self.compile_s = round(time.perf_counter() - start, 1)
        self._compiled = compiled
        self.note(f"compiled {name}'s forward in {self.compile_s} s")
        return output

    def _give_up(self, error: Exception) -> None:
        self.failure = compiler_failure(error)
        name = getattr(self.classifier, "name", "") or "the model"
        self.note(f"{name} cannot be compiled ({self.failure}); its forward-only passes run channels_last")

    def describe(self) -> dict:
        """What ran, for results.json."""
        if self.failure is not None:
            return {"compiled_forward": "failed, ran channels_last", "compile_failure": self.failure}
        if self.compile_s is None:
            return {"compiled_forward": "not used"}
        return {"compiled_forward": f"batches of {self.batch_size}", "compile_s": self.compile_s}


def forward_only(classifier: nn.Module, batch_size: int, layer: nn.Module | None = None) -> Callable[[Tensor], Tensor]:
    """The callable for the classifier's passes that need neither hooks nor gradients: a
    :class:`CompiledForward` under the ``compiled`` execution (returning ``layer``'s output
    too, through :meth:`CompiledForward.with_layer`, when given), else the classifier itself
    (so ``eager`` and ``channels_last`` run exactly as before)."""
    if execution_of(classifier) == "compiled" and hasattr(classifier, "net"):
        return CompiledForward(classifier, batch_size, layer=layer)
    return classifier
