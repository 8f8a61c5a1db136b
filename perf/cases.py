"""The cases ``python -m perf`` measures: each returns its time per image, the passes it made
through the model, and the ratio to the ideal (those passes at the model's best speed)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import Tensor, nn

from benchmark.core.tensors import memory_format_of
from benchmark.models.counting import counting_passes
from perf.limit import LimitProbe, ModelLimit
from perf.timing import synchronize, time_ms


@dataclass
class CaseResult:
    case: str
    images: int
    ms_per_image: float
    ideal_ms_per_image: float
    ratio: float
    forward_passes_per_image: float
    backward_passes_per_image: float
    note: str = ""
    #: ``{batch size: images}`` of the case's passes (all its images, not per image)
    forward_batches: dict[int, int] = field(default_factory=dict)
    backward_batches: dict[int, int] = field(default_factory=dict)
    #: what the times are divided by: images x LOTS iterations (0: ``images``)
    units: int = 0
    #: the ideal and ratio had every pass run at the model's best for its own batch size
    ideal_at_batches_ms_per_image: float = float("nan")
    ratio_at_batches: float = float("nan")
    #: the model's work that the pass count does not see, per image, added to both ideals:
    #: Ablation-CAM's copies, which enter the model after its target layer (:func:`tail_ms_per_copy`)
    unseen_model_ms_per_image: float = 0.0
    #: whether the issue's bounds apply (``False``: a baseline, an eager case, a reference
    #: backend that is not the default one)
    held: bool = True
    #: how much slower the model's own passes at this case's batches ran right before and after
    #: it than when the limit was measured (:meth:`perf.limit.LimitProbe.drift`; NaN: not probed)
    drift: float = float("nan")
    #: the ratio at its batches with the machine's drift taken out: ``ratio_at_batches / drift``
    ratio_alongside: float = float("nan")

    def __post_init__(self) -> None:  # JSON (perf.eager_process) turns the batch sizes into strings
        self.forward_batches = {int(k): int(v) for k, v in self.forward_batches.items()}
        self.backward_batches = {int(k): int(v) for k, v in self.backward_batches.items()}

    def to_dict(self) -> dict:
        return asdict(self)

    def against(self, limit: ModelLimit) -> CaseResult:
        """This case with its ideals and ratios taken against ``limit`` (for a case measured in
        another process, ``perf.eager_process``, before the limit of all executions was known)."""
        unseen = self.unseen_model_ms_per_image
        ideal = limit.ideal_ms(self.forward_passes_per_image, self.backward_passes_per_image) + unseen
        at_batches = (
            limit.ideal_at_batches_ms(self.forward_batches, self.backward_batches) / (self.units or self.images)
            + unseen
        )
        ratio_at_batches = self.ms_per_image / at_batches if at_batches else float("nan")
        return replace(
            self,
            ideal_ms_per_image=ideal,
            ratio=self.ms_per_image / ideal if ideal else float("nan"),
            ideal_at_batches_ms_per_image=at_batches,
            ratio_at_batches=ratio_at_batches,
            ratio_alongside=ratio_at_batches / self.drift if self.drift > 0 else float("nan"),
        )

    @property
    def held_ratio(self) -> float:
        """The ratio the bounds are held on: at its batches, the drift taken out where it was probed."""
        return self.ratio_alongside if math.isfinite(self.ratio_alongside) else self.ratio_at_batches


def measure(
    case: str,
    fn: Callable[[], object],
    net: nn.Module,
    limit: ModelLimit,
    images: int,
    device: torch.device,
    repeats: int = 1,
    per: int = 1,
    note: str = "",
    held: bool = True,
    probe: LimitProbe | None = None,
) -> CaseResult:
    """Run ``fn`` once counting passes (this also warms up), then time it ``repeats`` times and
    keep the shortest (as the model's limit is the shortest of its runs); with ``probe``, a held
    case's model passes at its batch sizes are timed twice right before and twice right after
    (:func:`around`), for the drift (a case no bound holds is not probed).

    Times and passes are divided by ``images * per`` (``per`` = e.g. LOTS iterations).
    """
    with counting_passes(net) as count:
        fn()
    synchronize(device)
    elapsed, drift = around(
        probe if held else None,
        count.forward_batches,
        count.backward_batches,
        lambda: time_ms(fn, device, repeats=repeats, warmup=0, best=True),
    )
    units = images * per
    return CaseResult(
        case=case,
        images=images,
        ms_per_image=elapsed / units,
        ideal_ms_per_image=float("nan"),
        ratio=float("nan"),
        forward_passes_per_image=count.forward_images / units,
        backward_passes_per_image=count.backward_images / units,
        note=note,
        forward_batches=dict(count.forward_batches),
        backward_batches=dict(count.backward_batches),
        units=units,
        held=held,
        drift=drift,
    ).against(limit)


def around(
    probe: LimitProbe | None,
    forward_batches: dict[int, int],
    backward_batches: dict[int, int],
    timed: Callable[[], float],
) -> tuple[float, float]:
    """``(timed(), drift)``: with ``probe``, the model's passes at the batch sizes of the case
    (``{batch: images}``) are timed twice before ``timed`` and twice after, and the drift is how
    much slower they ran than at the start (:meth:`perf.limit.LimitProbe.drift`); NaN without."""
    if probe is None:
        return timed(), float("nan")
    sizes = probe.sizes_for(forward_batches, backward_batches)
    before = probe.measure(sizes, repeats=2)
    elapsed = timed()
    after = probe.measure(sizes, repeats=2)
    return elapsed, probe.drift(forward_batches, backward_batches, [before, after])


def classes_of(model: nn.Module, images: Tensor) -> Tensor:
    with torch.no_grad():
        return model(images).argmax(dim=1)


def tail_ms_per_copy(
    classifier: nn.Module,
    layer: nn.Module,
    image: Tensor,
    layer_output: Tensor,
    copies: int,
    device: torch.device,
    repeats: int = 5,
) -> float:
    """The model's time per copy for the layers after ``layer``, run on ``copies`` copies of its
    output at once (Ablation-CAM's copies enter there: the pass count sees only the images that
    enter the model). One image's forward with ``layer``'s output (``layer_output``, of that image)
    handed on as ``copies`` copies (built beforehand, in the output's layout, as the method builds
    them), less its plain forward, over ``copies - 1``: the layers before ``layer`` run once in both."""
    if copies < 2:
        raise ValueError(f"copies must be >= 2, got {copies}")
    with torch.no_grad():
        replicated = (
            layer_output[:1]
            .repeat(copies, *([1] * (layer_output.ndim - 1)))
            .contiguous(memory_format=memory_format_of(layer_output))
        )
        plain = time_ms(lambda: classifier(image[:1]), device, repeats=repeats, warmup=1, best=True)
        handle = layer.register_forward_hook(lambda module, args, out: replicated)
        try:
            expanded = time_ms(lambda: classifier(image[:1]), device, repeats=repeats, warmup=1, best=True)
        finally:
            handle.remove()
    return max(expanded - plain, 0.0) / (copies - 1)
