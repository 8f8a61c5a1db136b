"""LOTS as a benchmark method: adversarial perturbation towards a feature target, read
off as a map (thesis Algorithms 1 and 2; Rozsa et al. 2017, "LOTS about attacking deep
features"). The algorithm itself is in :mod:`methods.lots`, the targets in
:mod:`methods.lots_targets`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from benchmark.core.errors import BenchmarkError
from benchmark.methods.base import Explainer, Explanation, ExtraColumn, MethodConfig
from benchmark.methods.lots import DISTANCES, LotsResult, lots_attack, lots_map
from benchmark.methods.lots_targets import load_target_image, read_targets_file
from benchmark.methods.registry import register_method
from benchmark.models.features import FeatureExtractor

LOTS_TARGETS = ("zero", "class", "mean", "image")
_TARGET_HELP = (
    "feature target F_t: zero (the zero vector), class (features of one training image of the "
    "image's class) or mean (the class's mean features), both from --method.targets_file, or "
    "image (features of --method.target_image); the class is the label when known, else the top-1 class"
)


@dataclass
class LOTSConfig(MethodConfig):
    iterations: int = field(default=500, metadata={"help": "maximum LOTS iterations per image (thesis: 500)"})
    tau: float = field(default=0.1, metadata={"help": "stop when the feature distance is <= tau"})
    alpha: float = field(default=1 / 255, metadata={"help": "step width in pixel space, e.g. 1/255"})
    kernel_size: int = field(default=49, metadata={"help": "Gaussian blur of the map, odd (thesis: 49)"})
    target: str = field(default="zero", metadata={"help": _TARGET_HELP})
    targets_file: str | None = field(
        default=None,
        metadata={"help": "class/mean targets made by: python -m benchmark targets --kind class,mean ..."},
    )
    target_image: str | None = field(default=None, metadata={"help": "image file of --method.target image"})
    features: str = field(default="logits", metadata={"help": "features F_s: logits, penultimate, or a module name"})
    distance: str = field(default="euclidean", metadata={"help": "euclidean or cosine"})
    threshold: float | None = field(
        default=None,
        metadata={
            "help": "zero map values below T after the last normalization (thesis 6.2 noise "
            "clean-up), in [0, 1]; off by default"
        },
    )

    def validate(self) -> None:
        if self.iterations < 1:
            raise BenchmarkError(f"--method.iterations must be >= 1, got {self.iterations}")
        if not (math.isfinite(self.tau) and self.tau >= 0):
            raise BenchmarkError(f"--method.tau must be a finite number >= 0 (the thesis used 0.1), got {self.tau}")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise BenchmarkError(f"--method.alpha must be a finite number > 0 (e.g. 1/255), got {self.alpha}")
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
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise BenchmarkError(f"--method.threshold must be in [0, 1] (or null for off), got {self.threshold}")
        if self.target in ("class", "mean"):
            if not self.targets_file:
                raise BenchmarkError(
                    f"--method.target {self.target} needs --method.targets_file FILE.pt; make one with: "
                    "python -m benchmark targets --data TRAIN_DIR --kind class,mean --output FILE.pt"
                )
            read_targets_file(self.targets_file, self.target)  # exists, readable, holds that kind
        if self.target == "image":
            if not self.target_image:
                raise BenchmarkError("--method.target image needs --method.target_image IMAGE_FILE")
            load_target_image(self.target_image)  # exists and decodes
        for option, path in (("targets_file", self.targets_file), ("target_image", self.target_image)):
            if path and not Path(path).expanduser().is_file():  # even where this target does not read it
                raise BenchmarkError(f"--method.{option} {path}: file does not exist")


@register_method("lots")
class LOTS(Explainer):
    """LOTS map: ``minmax(blur_k(minmax(|gray(x_adv) - gray(x)|)))`` where ``x_adv`` moves the
    features of ``x`` towards the target ``F_t`` (zero logits by default; or a class's image or
    mean features, or another image's features) with steps
    ``x <- clamp(x - alpha * g / max|g|, 0, 1)``, ``g = d/dx 0.5 ||F_t - F_s||^2``, until
    ``||F_s - F_t|| <= tau`` or ``iterations`` updates. The class of class/mean targets is the
    label when known, else the top-1 class. Per-sample extras: ``iterations``, ``final_distance``.
    """

    config_class = LOTSConfig
    perturbation_pictures = True  # explain: adversarial.png, perturbation_x10.png, kernel strip (attack())
    extra_columns = (
        ExtraColumn("iterations", "LOTS iters", integer=True, in_table=True),
        ExtraColumn("final_distance", "final distance"),
    )

    def __init__(self, classifier, config: LOTSConfig | None = None, **kwargs) -> None:
        super().__init__(classifier, config, **kwargs)
        config = self.config
        self.features = FeatureExtractor(classifier, config.features)
        self._feature_dim: int | None = None
        self.targets_file = None
        self._target_picture: Tensor | None = None
        self._image_target: Tensor | None = None
        if config.target in ("class", "mean"):
            self.targets_file = read_targets_file(config.targets_file, config.target)
            model = getattr(classifier, "name", "")
            if model and self.targets_file.model != model:
                raise BenchmarkError(
                    f"--method.targets_file {config.targets_file} was made with model {self.targets_file.model}, "
                    f"this run explains {model}: make the targets with --model {model}"
                )
            if self.targets_file.features != config.features:
                raise BenchmarkError(
                    f"--method.targets_file {config.targets_file} holds {self.targets_file.features} features, "
                    f"this run uses --method.features {config.features}: make the targets with "
                    f"--features {config.features} or use --method.features {self.targets_file.features}"
                )
        elif config.target == "image":
            self._target_picture = load_target_image(config.target_image)

    # -- targets ------------------------------------------------------------------------------

    def choose_classes(self, batch: dict[str, Any], predicted: Tensor) -> Tensor:
        """The class of class/mean targets: the label where known, else the top-1 class."""
        labels = batch.get("label")
        if labels is None:
            return predicted
        labels = torch.as_tensor(labels).to(device=predicted.device, dtype=predicted.dtype)
        return torch.where(labels >= 0, labels, predicted)

    def feature_dim(self, images: Tensor) -> int:
        if self._feature_dim is None:
            with torch.no_grad():
                self._feature_dim = self.features(images[:1]).shape[1]
        return self._feature_dim

    def targets_for(self, images: Tensor, classes: Tensor) -> Tensor:
        """The feature target ``F_t`` per image, ``[B, D]``."""
        config: LOTSConfig = self.config
        batch, dim = images.shape[0], self.feature_dim(images)
        if config.target == "zero":
            return torch.zeros(batch, dim, dtype=images.dtype, device=images.device)
        if config.target == "image":
            if self._image_target is None or self._image_target.device != images.device:
                with torch.no_grad():
                    picture = self._target_picture[None].to(device=images.device, dtype=images.dtype)
                    self._image_target = self.features(picture).detach()
            targets = self._image_target.to(images.dtype).expand(batch, -1)
        else:
            targets = self.targets_file.rows(config.target, torch.as_tensor(classes).reshape(-1))
            targets = targets.to(device=images.device, dtype=images.dtype)
        if targets.shape[1] != dim:
            raise BenchmarkError(
                f"LOTS target has {targets.shape[1]} features, --method.features {config.features} gives {dim}"
            )
        return targets

    def worst_case_passes(self) -> tuple[int, int]:
        """Images through the model per explained image without an early stop (``--estimate``):
        ``iterations`` forward+backward updates and one last forward."""
        return self.config.iterations + 1, self.config.iterations

    def describe(self) -> dict[str, Any]:
        config: LOTSConfig = self.config
        if self.targets_file is not None:
            return {
                "target": config.target,
                "targets_file": self.targets_file.path,
                "targets_data": self.targets_file.data,
                "targets_seed": self.targets_file.seed,
            }
        if config.target == "image":
            return {"target": "image", "target_image": config.target_image}
        return {"target": config.target}

    # -- the method ---------------------------------------------------------------------------

    def attack(self, images: Tensor, classes: Tensor) -> LotsResult:
        """Algorithm 1 on a batch (with a progress bar): the adversarial images and per-sample
        iterations and final distances."""
        config: LOTSConfig = self.config
        bar = tqdm(
            total=config.iterations,
            desc=f"LOTS on {images.shape[0]} image{'' if images.shape[0] == 1 else 's'}",
            leave=False,
            disable=not self.progress_enabled,
            dynamic_ncols=True,
        )

        def progress(active: int) -> None:
            bar.update(1)
            bar.set_postfix(active=active, refresh=False)

        try:
            return lots_attack(
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

    def class_independence(self) -> str | None:
        if self.config.target in ("zero", "image"):
            return f"LOTS moves the features towards the {self.config.target} target whatever the class"
        return None

    def explain(self, images: Tensor, classes: Tensor) -> Explanation:
        config: LOTSConfig = self.config
        result = self.attack(images, classes)
        maps = lots_map(images, result.adversarial, config.kernel_size, config.threshold)
        return Explanation(
            maps,
            {"iterations": result.iterations.float(), "final_distance": result.final_distance},
        )
