"""The ``eager`` figures of ``python -m perf``, measured in a process of their own.

The fast executions keep freed memory in the process (``models.allocator``, a setting of the
whole process that cannot be undone), while ``eager`` is the benchmark's path until 2026-12
with the platform's allocator. So ``python -m perf`` runs in the default execution's process
and asks this module, in a child process, for eager's limit and eager's cases::

    python -m perf.eager_process limit --model M --device D --images N --batch-sizes 1,4,8 --repeats 5
    python -m perf.eager_process lots --model M --device D --images N --iterations K
    python -m perf.eager_process whole_run --model M --device D --images N --n-steps S

Each prints one JSON line: a limit (``forward_ms``/``forward_backward_ms`` by batch size) or a
case (:class:`perf.cases.CaseResult`, whose ideal and ratio the parent recomputes against the
limit of all executions, :meth:`~perf.cases.CaseResult.against`).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from perf.limit import ModelLimit
from perf.run import load_images, lots_cases, test_run_case

#: A stand-in limit for the child's cases (their ideal and ratio are recomputed by the parent).
_PLACEHOLDER_LIMIT = ModelLimit(forward_ms={1: 1.0}, forward_backward_ms={1: 2.0})


def _measure(args: argparse.Namespace) -> dict:
    from benchmark.cli import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    images = load_images(args.images, device)
    if args.what == "limit":
        from perf.limit import measure_limits

        sizes = [int(size) for size in args.batch_sizes.split(",")]
        limit = measure_limits(args.model, images, sizes, ["eager"], repeats=args.repeats)["eager"]
        return {"forward_ms": limit.forward_ms, "forward_backward_ms": limit.forward_backward_ms}
    if args.what == "lots":
        from benchmark.models import build_classifier

        model = build_classifier(args.model, execution="eager").to(device)
        return lots_cases(model, images, _PLACEHOLDER_LIMIT, device, args.iterations, "eager", with_literal_loop=False)[
            0
        ].to_dict()
    return test_run_case(
        args.model, _PLACEHOLDER_LIMIT, device, args.images, "gradcam", args.n_steps, 0, "eager"
    ).to_dict()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m perf.eager_process", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("limit", "lots", "whole_run"))
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch-sizes", default="1,4,8,16,32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--n-steps", type=int, default=224)
    return parser


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(_measure(_parser().parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
