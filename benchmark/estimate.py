"""``--estimate``: the expected wall time of a ``test`` or ``table`` on this machine, before
running it.

Per method it counts the images that go through the model (hooks on the backbone,
``benchmark.models.counting``) while the method explains one image of the run, and adds what the
scorer needs: the top-1 prediction, the forward of x * M, the metrics' calls of the method
(``method_calls``: Coherency's on x * M, one per other class or perturbation for the sanity
checks), ``2 x (n_steps + 1)`` forwards for Insertion and Deletion, and the passes the extra
metrics declare (``model_passes``: ROAD one forward per percentage), plus the metrics' own
work per image beyond passes, timed here (``seconds_per_image``: ROAD's imputation). LOTS is counted at its
worst case (``iterations`` updates, no early stop), since its iterations depend on the image.
The counts times the model's measured time per image of a forward and of a backward (the
run's execution and precision, a few of the run's images, best of 3, timed once for all
methods) times the images give the estimate, plus the method's own work beyond its passes
(the one image's explanation timed, less its passes: Ablation-CAM's copies after its layer,
which are not passes through the whole model, FullGrad's bias terms, an SVD), once per call of
the method. Data loading, figures and logging are left out.
Under the ``compiled`` execution the passes are timed uncompiled (no compile for an estimate).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from benchmark.config import RunConfig
from benchmark.explainers import build_method


@dataclass
class MethodEstimate:
    method: str
    forwards_per_image: float
    backwards_per_image: float
    seconds: float


def _best_ms(fn, repeats: int = 3) -> float:
    fn()  # warm-up, untimed
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def pass_times(classifier, images: torch.Tensor) -> tuple[float, float]:
    """``(forward ms, backward ms)`` per image of ``classifier`` on ``images``."""

    def forward():
        with torch.no_grad():
            classifier(images)

    def forward_backward():
        with torch.enable_grad():
            x = images.detach().clone().requires_grad_(True)
            torch.autograd.grad(classifier(x).sum(), x)

    forward_ms = _best_ms(forward) / images.shape[0]
    backward_ms = max(_best_ms(forward_backward) / images.shape[0] - forward_ms, 0.0)
    return forward_ms, backward_ms


def explain_passes(method, image: torch.Tensor) -> tuple[int, int, float]:
    """Images through the model's forward and backward while ``method`` explains ``image``, and
    the seconds that took (0 for a method that declares its worst case instead of running)."""
    from benchmark.models.counting import counting_passes

    worst = getattr(method, "worst_case_passes", None)
    if worst is not None:
        return (*worst(), 0.0)
    with torch.no_grad():
        classes = method.classifier(image).argmax(dim=-1)
    method.current_sample_ids = torch.zeros(1, dtype=torch.long)
    try:
        with counting_passes(method.classifier.net) as count:
            start = time.perf_counter()
            method.explain(image, classes)
            seconds = time.perf_counter() - start
        if seconds < 1.0:  # cheap to repeat: the faster of two, without the first call's set-up
            start = time.perf_counter()
            method.explain(image, classes)
            seconds = min(seconds, time.perf_counter() - start)
    finally:
        method.current_sample_ids = None
    return count.forward_images, count.backward_images, seconds


def estimate(config: RunConfig, datamodule, methods: list[str]) -> list[MethodEstimate]:
    """The estimate of each method of the run over the datamodule's images."""
    o = config.options
    if o.execution == "compiled":  # the passes timed uncompiled: no compile (10-40 s) for an estimate
        config = dataclasses.replace(config, options=dataclasses.replace(o, execution="channels_last"))
    count = len(datamodule.samples)
    dtype = torch.float64 if o.precision == "64" else torch.float32
    sample = torch.stack([datamodule.dataset[i]["image"] for i in range(min(4, count))]).to(dtype)
    n_steps = config.metrics.get("n_steps") or datamodule.dataset.crop
    results = []
    times: tuple[float, float] | None = None
    own_seconds: dict[str, float] = {}  # each metric's own work per image, timed once for all methods
    for name in methods:
        method = build_method(config, name).to(dtype).eval()
        if o.precision == "64":
            method.classifier.double()
        if times is None:  # the same model, execution and precision for every method: timed once
            times = pass_times(method.classifier, sample)
            one_image_times = pass_times(method.classifier, sample[:1])
        forward_ms, backward_ms = times
        forwards, backwards, explain_seconds = explain_passes(method, sample[:1])
        # the method's own work beyond the passes counted (Ablation-CAM's copies after its layer,
        # FullGrad's bias terms, an SVD, grad-cam's numpy), per call: the one-image call's time
        # less its passes at one image's pass times (passes it ran in chunks cost less each: then
        # this leaves out some of the method's own work, never adds passes to it)
        passes_seconds = (forwards * one_image_times[0] + backwards * one_image_times[1]) / 1000
        method_work = max(explain_seconds - passes_seconds, 0.0)
        computed = {key: m for key, m in method.scorer.metrics.items() if key not in method.scorer.not_computable}
        calls = 1 + sum(metric.method_calls() for metric in computed.values())  # the map, then the metrics' calls
        metric_passes = [m.model_passes() for m in computed.values()]
        metric_forwards, metric_backwards = (sum(passes) for passes in zip(*metric_passes))
        per_image_forwards = forwards * calls + 1 + 1 + 2 * (n_steps + 1) + metric_forwards
        per_image_backwards = backwards * calls + metric_backwards
        for key, metric in computed.items():  # e.g. ROAD's imputation: the same for every method, timed once
            if key not in own_seconds:
                own_seconds[key] = metric.seconds_per_image(sample)
        own_work = sum(own_seconds[key] for key in computed)
        seconds = count * (
            (per_image_forwards * forward_ms + per_image_backwards * backward_ms) / 1000
            + method_work * calls
            + own_work
        )
        results.append(MethodEstimate(name, per_image_forwards, per_image_backwards, seconds))
    return results


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def print_estimate(config: RunConfig, datamodule, methods: list[str]) -> list[MethodEstimate]:
    """Print the estimate table on stdout (nothing is run or written)."""
    from benchmark.markdown_table import markdown_table

    results = estimate(config, datamodule, methods)
    rows = [
        [
            r.method,
            str(len(datamodule.samples)),
            f"{r.forwards_per_image:.0f}",
            f"{r.backwards_per_image:.0f}",
            _duration(r.seconds),
        ]
        for r in results
    ]
    print(markdown_table(["method", "images", "forwards/image", "backwards/image", "expected time"], rows))
    total = sum(r.seconds for r in results)
    print(
        f"expected: {_duration(total)} on this machine ({config.options.execution}, "
        f"{torch.get_num_threads()} threads; model passes and the metrics' own work such as ROAD's imputation); "
        "nothing was run: leave out --estimate to run"
    )
    if config.options.execution == "compiled":
        print(
            "(compiled: the passes are timed uncompiled, channels_last, so this is an upper bound for the "
            "forward-only ones; the compile adds 10-40 s per method on a CPU)"
        )
    return results
