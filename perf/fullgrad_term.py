"""``python -m perf.fullgrad_term``: where FullGrad's time beyond one forward+backward goes.

FullGrad (``methods.cam.fullgrad_device``) is one forward and one backward plus, for every bias
layer (49 on EfficientNet-Lite0), a term read off the layer's gradient: per channel the minimum
and maximum of ``|g|`` over the pixels, then the channels' weighted sum at each pixel. This
script times, in one process, the executions' allocator in force, each row in turns with the
others and the shortest of ``--repeats`` kept:

* FullGrad's maps (the default backend), the same with every term replaced by zeros (its hooks,
  sums and resizes: what is left is the terms' own time inside the backward), and the model's
  plain forward+backward to the input (the call ``python -m perf`` takes its limit from), on
  the same images;
* on the gradients of one backward, kept aside: one plain read of them all (a sum: the least
  any term can cost), the term as a run computes it (under ``compiled`` the C++ function of
  :mod:`methods.cam.fullgrad_kernel`, and also the compiled graph it stands in for), and the
  graph's two passes alone (the minimum and maximum over the pixels; the weighted sum over the
  channels), compiled under the ``compiled`` execution, eager otherwise.

Usage: ``python -m perf.fullgrad_term [--model M] [--images 16] [--repeats 5]
[--execution compiled|channels_last]``.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import Tensor


def kept_gradients(model, images: Tensor, classes: Tensor) -> list[tuple[Tensor, Tensor]]:
    """``(dy/dz, b)`` of every bias layer FullGrad reads (``methods.cam.fullgrad_device.bias_layers``),
    from one backward of the class scores; copies, so the backward frees nothing early."""
    from benchmark.methods.cam.fullgrad_device import bias_layers, effective_bias

    kept: list[tuple[Tensor, Tensor]] = []
    handles = []
    for layer, read in bias_layers(model.net):
        bias = effective_bias(layer).detach().float()

        def keep(module, args, output, bias=bias):
            output.register_hook(lambda gradient: kept.append((gradient.detach().clone(), bias)))

        handles.append(read.register_forward_hook(keep))
    try:
        with torch.enable_grad():
            inputs = images.detach().clone().requires_grad_(True)
            torch.autograd.grad(model(inputs).gather(1, classes.view(-1, 1)).sum(), inputs)
    finally:
        for handle in handles:
            handle.remove()
    return kept


def pixels_by_channels(gradient: Tensor) -> Tensor:
    """``[B, h*w, C]`` view of a ``[B, C, h, w]`` gradient (a copy unless it is ``channels_last``)."""
    batch, channels, height, width = gradient.shape
    return gradient.permute(0, 2, 3, 1).reshape(batch, height * width, channels)


def pixel_extremes(flat: Tensor) -> tuple[Tensor, Tensor]:
    """The term's first pass: per image and channel, the minimum and maximum of ``|flat|`` over
    the pixels (``flat``: ``[B, P, C]``)."""
    magnitude = flat.abs()
    return magnitude.amin(dim=1), magnitude.amax(dim=1)


def channel_weighted_sum(flat: Tensor, weights: Tensor) -> Tensor:
    """The term's second pass: ``sum_c |flat| w_c`` at each pixel (``weights``: ``[1, 1, C]``)."""
    return (flat.abs() * weights).sum(dim=2)


def eager_pixel_extremes(flat: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`pixel_extremes` as the eager term takes it (``_over_pixels``: rows folded to 1,024)."""
    from benchmark.methods.cam.fullgrad_device import _over_pixels

    magnitude = flat.abs()
    return _over_pixels(magnitude, torch.amin), _over_pixels(magnitude, torch.amax)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.fullgrad_term", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--execution", default="compiled", choices=("compiled", "channels_last"))
    args = parser.parse_args(argv)

    from benchmark.cli import quiet_libraries
    from benchmark.methods import get_method
    from benchmark.methods.cam.fullgrad_device import CompiledTerm, _scaled_channel_sum, fullgrad
    from benchmark.models import build_classifier
    from benchmark.models.allocator import keep_freed_memory
    from benchmark.models.execution import quiet_compiler_warnings
    from perf.run import load_images
    from perf.timing import shortest_in_turns

    quiet_libraries()
    allocator = keep_freed_memory()
    device = torch.device("cpu")
    model = build_classifier(args.model, execution=args.execution)
    images = load_images(args.images, device)
    with torch.no_grad():
        classes = model(images).argmax(dim=1)
    method = get_method("fullgrad")
    explainer = method(model, method.config_class(backend="device"))

    def forward_backward():
        inputs = images.detach().requires_grad_(True)
        torch.autograd.grad(model(inputs).pow(2).sum(), inputs)

    gradients = kept_gradients(model, images, classes)
    flats = [(pixels_by_channels(g), b.abs().view(1, 1, -1)) for g, b in gradients]
    graph_term = None
    if args.execution == "compiled":
        quiet_compiler_warnings()
        term = CompiledTerm(note=lambda message: None)  # the C++ term first, as in a run
        graph_term = CompiledTerm(note=lambda message: None, kernel=False)
        extremes = torch.compile(pixel_extremes, dynamic=True, fullgraph=True)
        weighted = torch.compile(channel_weighted_sum, dynamic=True, fullgraph=True)
        how = "compiled"
    else:
        term, extremes, weighted, how = None, eager_pixel_extremes, channel_weighted_sum, "eager"

    def run_term(g: Tensor, b: Tensor) -> Tensor:
        summed = term(g, b) if term is not None else None
        return summed if summed is not None else _scaled_channel_sum(g, b)

    def without_terms(values: Tensor, scale: Tensor | None) -> Tensor:  # the hooks and resizes, no reads
        return values.new_zeros(values.shape[0], 1, *values.shape[-2:])

    rows = {
        "FullGrad (device backend), maps of the images": lambda: explainer.explain_maps(images, classes),
        "FullGrad with every term replaced by zeros (its hooks, sums and resizes)": lambda: fullgrad(
            model, model.net, images, classes, without_terms
        ),
        "forward+backward to the input (the limit's call)": forward_backward,
        "one plain read of the layers' gradients (a sum)": lambda: [f.sum() for f, _ in flats],
        f"the layers' terms as a run computes them ({'C++' if how == 'compiled' else how})": lambda: [
            run_term(g, b) for g, b in gradients
        ],
        f"  pass 1: per channel, min and max of the gradient's magnitude over the pixels ({how})": lambda: [
            extremes(f) for f, _ in flats
        ],
        f"  pass 2: the weighted sum over the channels ({how})": lambda: [weighted(f, w) for f, w in flats],
    }
    if graph_term is not None:
        rows["the layers' terms through the compiled graph (no C++)"] = lambda: [graph_term(g, b) for g, b in gradients]
    ms = {name: value / args.images for name, value in shortest_in_turns(rows, device, args.repeats, warmup=1).items()}
    names = list(rows)
    read = ms[names[3]]
    numbers = sum(g.numel() for g, _ in gradients) / args.images
    print(
        f"{args.model}, {args.images} images, {args.execution}, {torch.get_num_threads()} threads, allocator: "
        f"{allocator}; {len(gradients)} bias layers, {numbers / 1e6:.2f} M gradient numbers per image"
    )
    print("| what | ms/image | x the plain read |")
    print("|---|---:|---:|")
    for name in names:
        ratio = f"{ms[name] / read:.2f}" if name not in names[:3] else ""
        print(f"| {name} | {ms[name]:.2f} | {ratio} |")
    for label, minus in (("the forward+backward", names[2]), ("FullGrad without its terms", names[1])):
        extra = ms[names[0]] - ms[minus]
        print(f"| FullGrad less {label} | {extra:.2f} | {extra / read:.2f} |")
    print(f"\nFullGrad / forward+backward: {ms[names[0]] / ms[names[2]]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
