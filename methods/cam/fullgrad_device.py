"""FullGrad computed in torch on the images' device, over every bias layer of the network.

FullGrad (Srinivas & Fleuret 2019, "Full-Gradient Representation for Neural Network
Visualization", NeurIPS) sums the input-gradient term and one bias-gradient term per layer
with a bias::

    M = minmax( sum_c psi(|dy^c/dx * x|_c) + sum_l sum_k psi(up(|b_l,k * dy^c/dz_l,k|)) )

with ``z_l`` the layer's output, ``b_l`` its bias (a BatchNorm's effective bias
``beta - mu * gamma / sqrt(var + eps)``), ``psi`` grad-cam's per-channel min-max
``(v - min) / (1e-7 + max)`` and ``up`` the bilinear resize to the input size. This is
grad-cam's ``FullGrad`` step for step, with two differences:

* **The layers.** grad-cam takes the modules whose type is exactly ``Conv2d`` or
  ``BatchNorm2d``; subclasses are skipped, and with them timm's ``BatchNormAct2d`` (every
  BatchNorm of EfficientNet-Lite and most timm CNNs, whose convolutions have no bias): there,
  grad-cam's map is the input-gradient term alone. Here every ``Conv2d`` and ``BatchNorm2d``
  with a bias counts, a ``BatchNormAct2d``'s ``z`` read before its activation (the output
  of its ``drop``). Where the two agree on the layers (plain ``Conv2d``/``BatchNorm2d``
  models such as torchvision's) the maps are grad-cam's to 1e-5 (tested).
* **The work.** One forward and one backward for the batch; the bias terms are summed over
  the channels and over the layers of one resolution before the resize (the resize is
  linear, so this is the same map up to rounding: 5 resizes for EfficientNet-Lite0's 49
  layers instead of one per channel), all on the device, each layer's term computed in the
  backward as its gradient arrives; grad-cam copies every layer's gradients to numpy and
  resizes each channel with OpenCV.

Under the ``compiled`` execution on the CPU a float32 ``channels_last`` layer's term is one C++
function (:mod:`methods.cam.fullgrad_kernel`, the fastest of the three); the others, and all
where it cannot be built, go as follows.
Under the ``compiled`` execution each layer's term is one ``torch.compile`` graph (dynamic
shapes, compiled once per process for all the layers): two reads of the gradient (its
per-channel minimum and maximum, then the weighted sum over the channels) instead of the
eager term's four reads and two writes, which makes the terms and FullGrad faster
(``perf/README.md``); the maps move by at most 1e-7 (the sum's order). A compiler failure
falls back to the eager term after one line saying so (:class:`CompiledTerm`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.core import notes
from benchmark.core.tensors import at_least_float32, full_precision, memory_format_of
from benchmark.methods.cam.fullgrad_kernel import KernelTerm
from benchmark.models.batchnorm import eval_affine
from benchmark.models.execution import compiler_failure, quiet_compiler_warnings


def bias_layers(net: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """``(layer, where its output z is read)`` for every ``Conv2d`` and ``BatchNorm2d`` (with
    running statistics) of ``net`` that has a bias; a ``BatchNormAct2d`` is read at its
    ``drop`` (before its activation)."""
    found = []
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            if module.bias is None or module.running_mean is None:
                continue
            drop, act = getattr(module, "drop", None), getattr(module, "act", None)
            found.append((module, drop if isinstance(drop, nn.Module) and isinstance(act, nn.Module) else module))
        elif isinstance(module, nn.Conv2d) and module.bias is not None:
            found.append((module, module))
    return found


def effective_bias(layer: nn.Module) -> Tensor:
    """A convolution's bias; a BatchNorm's ``beta - mu * gamma / sqrt(var + eps)`` (the bias of
    the affine map it is in eval mode, :func:`models.batchnorm.eval_affine`; the paper's code)."""
    if isinstance(layer, nn.BatchNorm2d):
        return eval_affine(layer)[1]
    return layer.bias


def _over_pixels(flat: Tensor, reduce) -> Tensor:
    """``[B, 1, C]``: ``reduce`` (``torch.amin`` or ``torch.amax``) of ``flat`` (``[B, hw, C]``,
    contiguous: a ``channels_last`` layer's numbers) over its pixels.

    torch reduces the middle dimension of ``[B, hw, C]`` vectorised along ``C``, which is slow
    when ``C`` is short (many times slower than the same numbers reduced whole: perf/README.md).
    Folding ``k`` pixels into each row (a view, ``[B, hw/k, k*C]``,
    rows of at least 1,024 numbers where ``hw`` allows) and reducing the ``k`` afterwards gives
    the same numbers: a minimum or maximum does not depend on the order it is taken in."""
    batch, pixels, channels = flat.shape
    fold = 1
    while fold * channels < 1024 and pixels % (2 * fold) == 0:
        fold *= 2
    if fold == 1:
        return reduce(flat, dim=1, keepdim=True)
    rows = reduce(flat.view(batch, pixels // fold, fold * channels), dim=1)  # [B, fold*C]
    return reduce(rows.view(batch, fold, channels), dim=1, keepdim=True)


def _scaled_channel_sum(values: Tensor, scale: Tensor | None = None) -> Tensor:
    """``[B, 1, h, w]``: the sum over the channels of grad-cam's ``scale_accross_batch_and_channels``
    without the resize: each ``[h, w]`` map of ``v = |values * scale|`` (``values``: ``[B, C, h,
    w]``, left as it is: autograd may hand one gradient to several layers; ``scale``: ``[C]`` or
    ``None``) taken to ``(v - min) / (1e-7 + max(v - min))``.

    With ``a = |values|`` and ``s = |scale|`` (1 without one), ``v = a * s``, so per channel
    ``(v - min v) / (1e-7 + max v - min v) = (a - min a) * s / (1e-7 + (max a - min a) * s)``
    (``min v = s * min a``: scaling by ``s >= 0`` is monotonic): the sum over the channels is
    one product of ``a - min a`` with the weights ``s / (1e-7 + (max a - min a) * s)``, four
    passes over the layer's numbers (abs, min and max, the subtraction, the product) instead of
    nine. The pass is memory-bound (6.7 million numbers per image on EfficientNet-Lite0), and
    the channels are read where they lie: a ``channels_last`` gradient as ``[B, h*w, C]``."""
    batch, channels, height, width = values.shape
    magnitude = values.abs()  # a new tensor: the steps below work in place on it
    nhwc = memory_format_of(magnitude) == torch.channels_last
    if not nhwc:
        magnitude = magnitude.contiguous()  # a no-op for NCHW; a gradient in another layout is copied
    # two reductions: torch.aminmax over the pixels of [B, h*w, C] is slower than both (perf/README.md)
    if nhwc:
        flat = magnitude.permute(0, 2, 3, 1).view(batch, height * width, channels)
        low = _over_pixels(flat, torch.amin)
        spread = _over_pixels(flat, torch.amax) - low  # [B, 1, C]
    else:
        flat = magnitude.view(batch, channels, height * width)
        low = flat.amin(dim=2, keepdim=True)
        spread = flat.amax(dim=2, keepdim=True) - low  # [B, C, 1]
    if scale is not None:
        factor = scale.abs().view((1, 1, channels) if nhwc else (1, channels, 1))
        weights = factor / (spread * factor + 1e-7)
    else:
        weights = 1 / (spread + 1e-7)
    flat = flat.sub_(low)
    if nhwc:
        summed = torch.bmm(flat, weights.transpose(1, 2))  # [B, hw, 1]
    else:
        summed = torch.bmm(weights.transpose(1, 2), flat)  # [B, 1, hw]
    return summed.view(batch, 1, height, width)


def channel_sum_of_pixels(flat: Tensor, factor: Tensor) -> Tensor:
    """``[B, P]``: :func:`_scaled_channel_sum` written plainly, for the compiler: ``flat`` is a
    layer's ``[B, P, C]`` (pixels by channels, any strides), ``factor`` ``[1, 1, C]`` the
    ``|scale|`` (ones without one); per channel ``a = |flat|`` goes to ``(a - min a) * f / (1e-7
    + (max a - min a) * f)`` and the channels are summed. Inductor fuses it into two reads of
    ``flat``."""
    magnitude = flat.abs()
    low = magnitude.amin(dim=1, keepdim=True)
    spread = magnitude.amax(dim=1, keepdim=True) - low
    return ((magnitude - low) * (factor / (spread * factor + 1e-7))).sum(dim=2)


#: The process's one compiled :func:`channel_sum_of_pixels` (dynamic shapes: one graph per layout
#: serves every layer of every run in the process).
_COMPILED_SUM: dict[str, Callable[[Tensor, Tensor], Tensor]] = {}


class CompiledTerm:
    """Each layer's term of FullGrad through one ``torch.compile`` graph (the ``compiled``
    execution).

    It serves float32 gradients of at least 2 images, 2 channels and 2 pixels (a size of 1
    would make the compiler specialise and compile again); others, and every term after a
    compiler failure (one line through ``note``), get ``None`` and run the eager term. The
    first call in the process compiles (``compile_s``, shown through ``note``)."""

    def __init__(self, note: Callable[[str], None] | None = None, kernel: bool = True):
        self.note = note or notes.note
        self.failure: str | None = None
        self.compile_s: float | None = None
        #: the C++ term, tried first where it serves (CPU, float32, channels_last; ``kernel=False``: never)
        self.kernel = KernelTerm(note=self.note) if kernel else None

    def covers(self, values: Tensor) -> bool:
        batch, channels, height, width = values.shape
        return self.failure is None and values.dtype == torch.float32 and min(batch, channels, height * width) >= 2

    def __call__(self, values: Tensor, scale: Tensor | None) -> Tensor | None:
        """``[B, 1, h, w]``, as :func:`_scaled_channel_sum` (to the order of the sum), or ``None``
        where this object does not serve ``values``: the C++ term where it serves them, else
        the compiled graph."""
        if self.kernel is not None:
            summed = self.kernel(values, scale)
            if summed is not None:
                return summed
        return self.graph_term(values, scale)

    def graph_term(self, values: Tensor, scale: Tensor | None) -> Tensor | None:
        """The compiled graph's term of ``values`` (``None`` where it does not serve them)."""
        if not self.covers(values):
            return None
        batch, channels, height, width = values.shape
        if memory_format_of(values) == torch.channels_last:
            flat = values.permute(0, 2, 3, 1).view(batch, height * width, channels)
        else:
            flat = values.contiguous().view(batch, channels, height * width).transpose(1, 2)
        factor = (scale.abs() if scale is not None else values.new_ones(channels)).view(1, 1, channels)
        try:
            summed = self._sum(flat, factor.to(values.dtype))
        except Exception as error:
            self.failure = compiler_failure(error)
            self.note(f"FullGrad's layer term cannot be compiled ({self.failure}); it runs uncompiled")
            return None
        return summed.view(batch, 1, height, width)

    def prepare(self, device: torch.device) -> None:
        """The one-time work, before a run's first map: the C++ term built or loaded (on the
        CPU), and the graph compiled for both layouts a layer's gradient arrives in (NCHW and
        ``channels_last``) on small stand-ins; its dynamic shapes then serve every layer without
        compiling again."""
        if self.kernel is not None and device.type == "cpu":
            self.kernel.prepare()
        # normal tensors without grad mode, as in the backward's hooks, of sizes that differ from
        # each other (the graph is compiled again for an inference tensor, another grad mode, or
        # two sizes the compiler took to be the same because they were equal here)
        with torch.inference_mode(False), torch.no_grad():
            for layout in (torch.contiguous_format, torch.channels_last):
                self.graph_term(torch.ones(2, 3, 5, 7, device=device).contiguous(memory_format=layout), None)

    def _sum(self, flat: Tensor, factor: Tensor) -> Tensor:
        """The process's compiled graph on ``flat``; the first call of this object is timed
        (``compile_s``) and shown."""
        if "sum" not in _COMPILED_SUM:
            quiet_compiler_warnings()
            _COMPILED_SUM["sum"] = torch.compile(channel_sum_of_pixels, dynamic=True, fullgraph=True)
        if self.compile_s is not None:
            return _COMPILED_SUM["sum"](flat, factor)
        self.note("compiling FullGrad's layer term (torch.compile, dynamic shapes; once per process) ...")
        start = time.perf_counter()
        summed = _COMPILED_SUM["sum"](flat, factor)
        self.compile_s = round(time.perf_counter() - start, 1)
        self.note(f"compiled FullGrad's layer term in {self.compile_s} s")
        return summed

    def describe(self) -> dict:
        """What ran, for results.json."""
        kernel = self.kernel.describe() if self.kernel is not None else {}
        if self.failure is not None:
            return {"fullgrad_term": "failed to compile, ran eager", "fullgrad_term_failure": self.failure, **kernel}
        if self.compile_s is None:
            return {"fullgrad_term": "not used", **kernel}
        return {"fullgrad_term": "compiled", "fullgrad_term_compile_s": self.compile_s, **kernel}


def fullgrad(
    classifier: nn.Module, net: nn.Module, images: Tensor, classes: Tensor, compiled_term: CompiledTerm | None = None
) -> Tensor:
    """FullGrad maps ``[B, H, W]`` (float32) of ``classes`` over the bias layers of ``net`` (the
    backbone ``classifier`` runs); with ``compiled_term`` (the ``compiled`` execution) each
    term it serves goes through its graph."""

    def term_of(values: Tensor, scale: Tensor | None = None) -> Tensor:
        summed = compiled_term(values, scale) if compiled_term is not None else None
        return summed if summed is not None else _scaled_channel_sum(values, scale)

    with full_precision(images):
        layers = bias_layers(net)
        # the layers' terms of one resolution, summed (the resize is linear: one resize each)
        by_size: dict[tuple[int, int], Tensor] = {}
        handles = []

        def reader(bias: Tensor):
            def add_term(gradient: Tensor) -> None:
                # computed as the gradient arrives (while it is in the cache; autograd frees it after)
                term = term_of(at_least_float32(gradient.detach()), bias)  # |b * dy/dz|
                key = tuple(term.shape[-2:])
                if key in by_size:
                    by_size[key] += term  # each term is a new tensor: the first one is summed into
                else:
                    by_size[key] = term

            def keep(module: nn.Module, args, output: Tensor) -> None:
                if output.requires_grad:  # a tensor hook sees dy/dz even if an in-place op follows
                    output.register_hook(add_term)

            return keep

        for layer, read in layers:
            handles.append(read.register_forward_hook(reader(at_least_float32(effective_bias(layer).detach()))))
        try:
            with torch.inference_mode(False), torch.enable_grad():
                inputs = images.detach().clone().requires_grad_(True)
                logits = classifier(inputs)
                score = logits.gather(1, classes.to(logits.device).long().view(-1, 1)).sum()
                (input_gradient,) = torch.autograd.grad(score, inputs)
        finally:
            for handle in handles:
                handle.remove()
        size = tuple(images.shape[-2:])
        total = term_of(at_least_float32(input_gradient * inputs.detach()))[:, 0]  # a new tensor
        # a layer that does not reach the class score got no gradient: its zero map scales to 0
        for term in by_size.values():
            total += F.interpolate(term, size=size, mode="bilinear", align_corners=False)[:, 0]
        flat = total.flatten(1)
        flat -= flat.amin(dim=1, keepdim=True)
        return flat.div_(flat.amax(dim=1, keepdim=True) + 1e-7).view_as(total).float()
