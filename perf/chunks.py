"""``python -m perf.chunks``: Insertion+Deletion time per image by ``--metrics.chunk_size``.

The product's default chunk size is fixed per device type (``metrics.scorer_options.DEFAULT_CHUNK_SIZE``,
not tuned at run time, so runs are reproducible); this script shows whether it is a good one
on the machine at hand.

Usage: ``python -m perf.chunks [--model M] [--device cpu|cuda] [--images 8] [--n-steps 14]
[--chunk-sizes 4,8,16,32,64] [--repeats 2] [--execution channels_last]``.

The model runs ``channels_last`` with freed memory kept (``models.allocator``), the CUDA
default; ``--execution compiled`` (the CPU's default) runs the curves through the compiled
forward as a run does, one graph per chunk size (each compiled, or loaded from PyTorch's cache,
before its timing).
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.chunks", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--n-steps", type=int, default=14)
    parser.add_argument("--chunk-sizes", default="4,8,16,32,64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--execution", default="channels_last", choices=("eager", "channels_last", "compiled"))
    args = parser.parse_args(argv)

    from benchmark.cli import quiet_libraries
    from benchmark.metrics.functional.insertion_deletion import insertion_deletion_curves
    from benchmark.metrics.scorer_options import DEFAULT_CHUNK_SIZE
    from benchmark.models import build_classifier
    from benchmark.models.execution import forward_only
    from perf.run import load_images
    from perf.timing import time_ms

    quiet_libraries()
    device = torch.device(args.device)
    if args.execution != "eager":
        from benchmark.models.allocator import keep_freed_memory

        keep_freed_memory()
    model = build_classifier(args.model, execution=args.execution).to(device)
    images = load_images(args.images, device)
    with torch.no_grad():
        classes = model(images).argmax(dim=1)
    maps = torch.rand(images.shape[0], *images.shape[-2:], generator=torch.Generator().manual_seed(0)).to(device)

    default = DEFAULT_CHUNK_SIZE.get(device.type, DEFAULT_CHUNK_SIZE["cpu"])
    print(
        f"{args.model} on {device} ({args.execution}), {args.images} images, {args.n_steps} steps "
        f"(2 x {args.n_steps + 1} forwards per image); default chunk here: {default}"
    )
    print("| chunk size | ms per image | per forward |")
    print("|---:|---:|---:|")
    for chunk in (int(c) for c in args.chunk_sizes.split(",")):
        forward = forward_only(model, chunk)  # the compiled graph of this chunk (the model itself otherwise)

        def score_fn(x, forward=forward):
            with torch.no_grad():
                return forward(x).softmax(dim=-1)

        def run(chunk=chunk):
            insertion_deletion_curves(score_fn, images, maps, classes, n_steps=args.n_steps, chunk_size=chunk)

        ms = time_ms(run, device, repeats=args.repeats, warmup=1, best=True) / args.images
        print(f"| {chunk}{' (default)' if chunk == default else ''} | {ms:.1f} | {ms / (2 * (args.n_steps + 1)):.2f} |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
