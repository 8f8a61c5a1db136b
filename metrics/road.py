"""ROAD, most and least relevant first (Rong et al. 2022, ICML)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from benchmark.core.seeding import sample_generator
from benchmark.metrics.catalog import register_metric
from benchmark.metrics.functional.road import (
    DEFAULT_NOISE,
    DEFAULT_PERCENTAGES,
    check_noise,
    check_percentages,
    curve_mean,
    road_scores,
)
from benchmark.metrics.options import MetricOptions, checked
from benchmark.metrics.per_sample import PerSampleCurveMetric


@dataclass
class RoadOptions(MetricOptions):
    """The options of both ROAD metrics (``--metrics.road_percentages``, ``--metrics.road_noise``)."""

    road_percentages: list[float] = field(
        default_factory=lambda: list(DEFAULT_PERCENTAGES),
        metadata={"help": "ROAD: the percentages of pixels removed, each in (0, 100), comma-separated"},
    )
    road_noise: float = field(
        default=DEFAULT_NOISE,
        metadata={"help": "ROAD: sigma of the noise added to the imputed pixels, in [0, 1] pixel space (0: none)"},
    )

    def validate(self) -> None:
        checked("road_percentages", check_percentages, self.road_percentages)
        checked("road_noise", check_noise, self.road_noise)


class _Road(PerSampleCurveMetric):
    """ROAD at every percentage: the per-sample scores ("curves", one per percentage) are kept
    for the records and the mean curve; the value is their mean x 100."""

    needs = ("images", "maps", "classes", "class_probability")
    options_class = RoadOptions
    most_relevant_first: bool = True
    #: Noise stream of the per-sample generators (MoRF and LeRF draw different noise).
    noise_stream = 0

    def __init__(
        self, road_percentages: Sequence[float] = DEFAULT_PERCENTAGES, road_noise: float = DEFAULT_NOISE, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.percentages = check_percentages(road_percentages)
        self.noise = check_noise(road_noise)

    def model_passes(self) -> tuple[int, int]:
        return len(self.percentages), 0  # one forward per percentage

    def seconds_per_image(self, images: Tensor) -> float:
        """The imputation of one image at the middle percentage, timed, times the percentages
        (the solve's cost grows with the removed share, so the middle one stands for them). The
        map is a centred blob, as a CAM's: contiguous holes are the slower case (scattered
        single pixels, as a random map removes, have neighbours that are kept, so the solve
        converges in fewer steps)."""
        import time

        from benchmark.metrics.functional.road import linear_imputation, removed_pixels

        image = images[:1]
        height, width = image.shape[-2:]
        rows = torch.linspace(-1, 1, height, dtype=torch.float32)[:, None]
        columns = torch.linspace(-1, 1, width, dtype=torch.float32)[None, :]
        maps = (1 - (rows**2 + columns**2).sqrt() / 2**0.5)[None].to(image)
        middle = sorted(self.percentages)[len(self.percentages) // 2]
        removed = removed_pixels(maps, (middle,), self.most_relevant_first)
        start = time.perf_counter()
        linear_imputation(image, removed)
        return (time.perf_counter() - start) * len(self.percentages)

    def _noise(self, sample_ids: Sequence[int], images: Tensor) -> Tensor | None:
        """``[B, P, C, H, W]`` N(0, sigma^2), each sample's from its own generator."""
        if self.noise == 0:
            return None
        shape = (len(self.percentages), *images.shape[1:])
        drawn = [
            torch.randn(shape, generator=sample_generator(int(i), self.noise_stream), dtype=torch.float32)
            for i in sample_ids
        ]
        return (torch.stack(drawn) * self.noise).to(images.device)

    def update(
        self,
        sample_ids: Tensor | Sequence[int],
        images: Tensor,
        maps: Tensor,
        classes: Tensor,
        class_probability: Callable[[Tensor, Tensor], Tensor],
    ) -> None:
        """Score ``images[B, 3, H, W]`` imputed where ``maps[B, H, W]`` rank their pixels."""
        ids = torch.as_tensor(sample_ids).reshape(-1).tolist()
        scores = road_scores(
            class_probability,
            images,
            maps,
            classes,
            self.percentages,
            self.most_relevant_first,
            noise=self._noise(ids, images),
        )
        self.batch_curves = scores.detach().float()
        self._store(sample_ids, curve_mean(scores), curves=self.batch_curves)


@register_metric("road_morf", "ROAD MoRF")
class RoadMostRelevantFirst(_Road):
    r"""ROAD, most relevant first, in percent (lower is better).

    For each percentage p (``--metrics.road_percentages``, default 10, ..., 90) the p% most
    relevant pixels are removed and filled in by noisy linear imputation
    (:mod:`benchmark.metrics.functional.road`; noise sigma ``--metrics.road_noise``, default 0.01, drawn
    per sample id); with :math:`s_p` the probability of c on that image:

    .. math:: \mathrm{ROAD}_{MoRF} = \frac{100}{|P|} \sum_{p \in P} s_p

    Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
    ICML 2022.
    """

    higher_is_better = False
    most_relevant_first = True
    noise_stream = 101


@register_metric("road_lerf", "ROAD LeRF")
class RoadLeastRelevantFirst(_Road):
    r"""ROAD, least relevant first, in percent (higher is better).

    As :class:`RoadMostRelevantFirst` with the p% *least* relevant pixels removed:

    .. math:: \mathrm{ROAD}_{LeRF} = \frac{100}{|P|} \sum_{p \in P} s_p

    Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
    ICML 2022.
    """

    higher_is_better = True
    most_relevant_first = False
    noise_stream = 102
