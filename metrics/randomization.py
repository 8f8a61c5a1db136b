"""Model parameter randomization test, cascading (Adebayo et al. 2018)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.functional.image import structural_similarity_index_measure

from benchmark.metrics.catalog import register_metric
from benchmark.metrics.functional.randomization import CascadingRandomization, check_steps
from benchmark.metrics.functional.similarity import spearman
from benchmark.metrics.options import MetricOptions
from benchmark.metrics.per_sample import PerSampleCurveMetric

#: SSIM's Gaussian window (torchmetrics' and Wang et al.'s defaults); maps smaller than the
#: window have no SSIM (NaN).
SSIM_KERNEL, SSIM_SIGMA = 11, 1.5


def map_ssim(a: Tensor, b: Tensor) -> Tensor:
    """SSIM of ``a[B, H, W]`` and ``b[B, H, W]`` (maps in [0, 1], data range 1) per image,
    float64; NaN for maps smaller than the 11-pixel window."""
    if min(a.shape[-2:]) < SSIM_KERNEL:
        return torch.full((a.shape[0],), float("nan"), dtype=torch.float64, device=a.device)
    return structural_similarity_index_measure(
        b[:, None].double(),
        a[:, None].double(),
        data_range=1.0,
        kernel_size=SSIM_KERNEL,
        sigma=SSIM_SIGMA,
        reduction="none",
    )


@dataclass
class RandomizationOptions(MetricOptions):
    """The model randomization's option (``--metrics.randomization_steps``)."""

    randomization_steps: int = field(
        default=5,
        metadata={"help": "model randomization: stages, each re-initializing one more group of layers from the output"},
    )

    def validate(self) -> None:
        check_steps(self.randomization_steps)


@register_metric("randomization", "Model Randomization")
class ModelRandomization(PerSampleCurveMetric):
    r"""Cascading model parameter randomization in percent (lower is better): how similar the
    method's map stays when the classifier's layers are re-initialized, from the output towards
    the input.

    The layers holding parameters (with ``reset_parameters()``), in reverse forward order, are
    cut into S = ``--metrics.randomization_steps`` (5) consecutive groups; stage s re-initializes
    groups 1..s (each layer seeded). With :math:`E_s` the method on the model at stage s,

    .. math:: \mathrm{MPRT} = 100\,\rho_S\big(E(x), E_S(x)\big)

    the Spearman rank correlation at full randomization; the per-stage values
    :math:`100\,\rho_S(E, E_s)` and :math:`100\,\mathrm{SSIM}(E, E_s)`, s = 1..S, are each
    sample's curve (its first S points, then the S SSIMs) and their means go to results.json.
    A method whose maps survive randomization does not explain the model. The randomized
    weights are put into the model only while the method runs again and the trained ones back
    straight after (:mod:`benchmark.metrics.functional.randomization`). Adebayo et al., "Sanity Checks
    for Saliency Maps", NeurIPS 2018.
    """

    higher_is_better = False
    needs = {"maps": "maps", "images": "images", "method": "method_for_inputs", "classifier": "classifier"}
    options_class = RandomizationOptions

    def __init__(self, randomization_steps: int = 5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.steps = check_steps(randomization_steps)
        self._stages: CascadingRandomization | None = None
        self._model: nn.Module | None = None
        #: One image of this process across the stages (the paper's Figure 2): ``sample_id``,
        #: ``image [3, H, W]``, ``maps [S + 1, H, W]`` (the original first), ``stages``.
        self.example: dict[str, Any] | None = None

    def method_calls(self) -> int:
        return self.steps  # the map on the model of each stage

    def stages_for(self, classifier: nn.Module, images: Tensor) -> CascadingRandomization:
        """The model's stages, drawn once per run (the first batch shows the forward order)."""
        if self._stages is None or self._model is not classifier:
            self._stages = CascadingRandomization.build(classifier, images[:1], self.steps)
            self._model = classifier
        return self._stages

    def describe(self) -> dict[str, Any]:
        """The layers of each stage, once the model is known."""
        return self._stages.describe() if self._stages is not None else {}

    def details(self) -> dict[str, Any]:
        """The per-stage means (Spearman and SSIM, x 100) and the layers of each stage, for
        results.json (gathers: every rank must call it)."""
        curve = self.mean_curve().tolist()
        return {"spearman_per_stage": curve[: self.steps], "ssim_per_stage": curve[self.steps :], **self.describe()}

    def update(
        self,
        sample_ids: Tensor | Sequence[int],
        maps: Tensor,
        images: Tensor,
        method: Callable[[Tensor, Tensor | None], Tensor],
        classifier: nn.Module,
    ) -> None:
        """Explain ``images`` on the model of each stage and compare with ``maps``."""
        stage_maps = []
        with self.stages_for(classifier, images).cascade() as stages:
            for _ in stages:
                stage_maps.append(torch.as_tensor(method(images, None)).detach().to(maps.device, maps.dtype))
        rho = torch.stack([spearman(maps, m) for m in stage_maps], dim=1)
        ssim = torch.stack([map_ssim(maps, m) for m in stage_maps], dim=1)
        curves = (100 * torch.cat([rho, ssim], dim=1)).float()
        self.batch_curves = curves
        if self.example is None and len(images):
            self.example = {
                "sample_id": int(torch.as_tensor(sample_ids).reshape(-1)[0]),
                "image": images[0].detach().float().cpu().clone(),
                "maps": torch.stack([maps[0]] + [m[0] for m in stage_maps]).detach().float().cpu(),
                "stages": self.describe()["stages"],
            }
        self._store(sample_ids, curves[:, self.steps - 1], curves=curves)

    @property
    def curve_points(self) -> int:
        return 2 * self.steps  # the S Spearman values, then the S SSIMs

    def reset(self) -> None:
        super().reset()
        self.example = None
