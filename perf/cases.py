"""The cases ``python -m perf`` measures: each returns its time per image, the passes it made
through the model, and the ratio to the ideal (those passes at the model's best speed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch
from torch import Tensor, nn

from models.counting import counting_passes
from perf.limit import ModelLimit
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

    def to_dict(self) -> dict:
        return asdict(self)

    def against(self, limit: ModelLimit) -> "CaseResult":
        """This case with its ideal and ratio taken against ``limit`` (for a case measured in
        another process, ``perf.eager_process``, before the limit of all executions was known)."""
        ideal = self.forward_passes_per_image * limit.best_forward[1] + self.backward_passes_per_image * limit.backward_ms
        return replace(self, ideal_ms_per_image=ideal, ratio=self.ms_per_image / ideal if ideal else float("nan"))


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
) -> CaseResult:
    """Run ``fn`` once counting passes (this also warms up), then time it ``repeats`` times and
    keep the shortest (as the model's limit is the shortest of its runs).

    Times and passes are divided by ``images * per`` (``per`` = e.g. LOTS iterations).
    """
    with counting_passes(net) as count:
        fn()
    synchronize(device)
    elapsed = time_ms(fn, device, repeats=repeats, warmup=0, best=True)
    units = images * per
    ideal = limit.ideal_ms(count.forward_images, count.backward_images)
    return CaseResult(
        case=case,
        images=images,
        ms_per_image=elapsed / units,
        ideal_ms_per_image=ideal / units,
        ratio=elapsed / ideal if ideal else float("nan"),
        forward_passes_per_image=count.forward_images / units,
        backward_passes_per_image=count.backward_images / units,
        note=note,
    )


def classes_of(model: nn.Module, images: Tensor) -> Tensor:
    with torch.no_grad():
        return model(images).argmax(dim=1)
