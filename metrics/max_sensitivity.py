"""Max-sensitivity (Yeh et al. 2019)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from benchmark.core.errors import BenchmarkError
from benchmark.core.seeding import sample_generator
from benchmark.metrics.catalog import register_metric
from benchmark.metrics.options import MetricOptions
from benchmark.metrics.per_sample import PerSampleMetric

#: The seed stream of the perturbations.
PERTURBATION_STREAM = 301


def check_samples(samples: int) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise BenchmarkError(f"--metrics.sensitivity_samples must be an integer >= 1, got {samples!r}")
    return samples


def check_radius(radius: float) -> float:
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius) or radius <= 0:
        raise BenchmarkError(
            f"--metrics.sensitivity_radius must be a number > 0 in [0, 1] pixel space (e.g. 0.02), got {radius!r}"
        )
    return float(radius)


@dataclass
class SensitivityOptions(MetricOptions):
    """Max-sensitivity's options (``--metrics.sensitivity_samples``, ``--metrics.sensitivity_radius``)."""

    sensitivity_samples: int = field(
        default=10, metadata={"help": "max-sensitivity: perturbed copies of each image (one map each)"}
    )
    sensitivity_radius: float = field(
        default=0.02,
        metadata={"help": "max-sensitivity: the largest change of a pixel value, > 0, in [0, 1] pixel space"},
    )

    def validate(self) -> None:
        check_samples(self.sensitivity_samples)
        check_radius(self.sensitivity_radius)


def perturbations(sample_ids: Sequence[int], images: Tensor, samples: int, radius: float) -> Tensor:
    """``[N, B, C, H, W]``: ``clamp(x + d, 0, 1)``, ``d ~ U(-radius, radius)`` per pixel and channel,
    sample ``i``'s ``N`` draws from its own generator."""
    drawn = []
    for sample_id in sample_ids:
        generator = sample_generator(int(sample_id), PERTURBATION_STREAM)
        drawn.append(torch.rand((samples, *images.shape[1:]), generator=generator, dtype=torch.float32))
    noise = (torch.stack(drawn, dim=1) * 2 - 1) * radius
    return (images[None] + noise.to(images)).clamp(0, 1)


def relative_change(maps: Tensor, perturbed_maps: Tensor) -> Tensor:
    """``||E(x + d) - E(x)||_2 / ||E(x)||_2`` per image (NaN for an all-zero map)."""
    change = (perturbed_maps - maps).flatten(1).double().norm(dim=1)
    size = maps.flatten(1).double().norm(dim=1)
    return torch.where(size > 0, change / torch.where(size > 0, size, 1), torch.full_like(size, float("nan")))


@register_metric("max_sensitivity", "Max-Sensitivity")
class MaxSensitivity(PerSampleMetric):
    r"""Max-sensitivity in percent (lower is better): the largest relative change of the map
    under small uniform perturbations of the image.

    .. math:: \mathrm{SENS}_{max} = 100 \max_{n \le N}
              \frac{\lVert E(x + d_n) - E(x) \rVert_2}{\lVert E(x) \rVert_2},
              \quad d_n \sim U[-r, r]^{3 \times H \times W}

    with :math:`x + d_n` clamped to [0, 1], N = ``--metrics.sensitivity_samples`` (10), r =
    ``--metrics.sensitivity_radius`` (0.02), the draws seeded per sample id; the maps of the
    perturbed images are for the same class. Captum's ``sensitivity_max`` is the reference.
    Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019.
    """

    higher_is_better = False
    needs = {"maps": "maps", "images": "images", "method": "method_for_inputs"}
    options_class = SensitivityOptions

    def __init__(self, sensitivity_samples: int = 10, sensitivity_radius: float = 0.02, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples = check_samples(sensitivity_samples)
        self.radius = check_radius(sensitivity_radius)

    def method_calls(self) -> int:
        return self.samples  # one map per perturbed copy

    def update(
        self,
        sample_ids: Tensor | Sequence[int],
        maps: Tensor,
        images: Tensor,
        method: Callable[[Tensor, Tensor | None], Tensor],
    ) -> None:
        """Explain ``N`` perturbed copies of ``images`` (one call per draw) and keep the largest change."""
        ids = torch.as_tensor(sample_ids).reshape(-1).tolist()
        changes = [
            relative_change(maps, torch.as_tensor(method(perturbed, None)).to(maps.device))
            for perturbed in perturbations(ids, images, self.samples, self.radius)
        ]
        self._store(sample_ids, 100 * torch.stack(changes).amax(dim=0).float())
