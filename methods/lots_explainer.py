"""LOTS as a benchmark method: adversarial perturbation towards a feature target, read
off as a map (thesis Algorithms 1 and 2; Rozsa et al. 2017, "LOTS about attacking deep
features"). The algorithm itself is in :mod:`methods.lots`."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from benchmark.errors import BenchmarkError
from methods.base import Explainer, Explanation, MethodConfig
from methods.lots import DISTANCES, lots_attack, lots_map
from methods.registry import register_method
from models.features import FeatureExtractor

LOTS_TARGETS = ("zero",)


@dataclass
class LOTSConfig(MethodConfig):
    iterations: int = field(default=500, metadata={"help": "maximum LOTS iterations per image (thesis: 500)"})
    tau: float = field(default=0.1, metadata={"help": "stop when the feature distance is <= tau"})
    alpha: float = field(default=1 / 255, metadata={"help": "step width in pixel space, e.g. 1/255"})
    kernel_size: int = field(default=49, metadata={"help": "Gaussian blur of the map, odd (thesis: 49)"})
    target: str = field(default="zero", metadata={"help": "feature target F_t: " + ", ".join(LOTS_TARGETS)})
    features: str = field(
        default="logits", metadata={"help": "features F_s: logits, penultimate, or a module name"}
    )
    distance: str = field(default="euclidean", metadata={"help": "euclidean or cosine"})

    def validate(self) -> None:
        if self.iterations < 1:
            raise BenchmarkError(f"--method.iterations must be >= 1, got {self.iterations}")
        if self.tau < 0:
            raise BenchmarkError(f"--method.tau must be >= 0, got {self.tau}")
        if not self.alpha > 0:
            raise BenchmarkError(f"--method.alpha must be > 0 (e.g. 1/255), got {self.alpha}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise BenchmarkError(
                f"--method.kernel_size must be an odd number >= 1 (thesis: 49), got {self.kernel_size}"
            )
        if self.target not in LOTS_TARGETS:
            raise BenchmarkError(
                f"--method.target {self.target!r} is not available; choose one of: {', '.join(LOTS_TARGETS)}"
            )
        if self.distance not in DISTANCES:
            raise BenchmarkError(
                f"--method.distance {self.distance!r} is unknown; choose one of: {', '.join(DISTANCES)}"
            )
        if self.distance == "cosine" and self.target == "zero":
            raise BenchmarkError(
                "the cosine distance is undefined for the zero target: use "
                "--method.distance euclidean or another --method.target"
            )


@register_method("lots")
class LOTS(Explainer):
    """LOTS map: ``minmax(blur_k(minmax(|gray(x_adv) - gray(x)|)))`` where ``x_adv`` moves the
    features of ``x`` towards the target ``F_t`` (zero logits by default) with steps
    ``x <- clamp(x - alpha * g / max|g|, 0, 1)``, ``g = d/dx 0.5 ||F_t - F_s||^2``, until
    ``||F_s - F_t|| <= tau`` or ``iterations`` updates. Class-agnostic with the zero target:
    ``classes`` are not used. Per-sample extras: ``iterations``, ``final_distance``.
    """

    config_class = LOTSConfig
    extra_columns = ("iterations", "final_distance")

    def __init__(self, classifier, config: LOTSConfig | None = None, **kwargs) -> None:
        super().__init__(classifier, config, **kwargs)
        self.features = FeatureExtractor(classifier, self.config.features)
        self._feature_dim: int | None = None

    def targets_for(self, images: Tensor, classes: Tensor) -> Tensor:
        """The feature target ``F_t`` per image, ``[B, D]``."""
        if self._feature_dim is None:
            with torch.no_grad():
                self._feature_dim = self.features(images[:1]).shape[1]
        return torch.zeros(images.shape[0], self._feature_dim, dtype=images.dtype, device=images.device)

    def explain(self, images: Tensor, classes: Tensor) -> Explanation:
        config: LOTSConfig = self.config
        bar = tqdm(
            total=config.iterations,
            desc=f"LOTS on {images.shape[0]} images",
            leave=False,
            disable=not self.progress_enabled,
            dynamic_ncols=True,
        )

        def progress(active: int) -> None:
            bar.update(1)
            bar.set_postfix(active=active, refresh=False)

        try:
            result = lots_attack(
                self.features,
                images,
                self.targets_for(images, classes),
                iterations=config.iterations,
                tau=config.tau,
                alpha=config.alpha,
                distance=config.distance,
                progress=progress,
            )
        finally:
            bar.close()
        maps = lots_map(images, result.adversarial, config.kernel_size)
        return Explanation(
            maps,
            {"iterations": result.iterations.float(), "final_distance": result.final_distance},
        )
