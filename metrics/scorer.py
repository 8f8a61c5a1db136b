"""The five thesis metrics (and, on request, any registered metric: Complexity, ADCC, the
pointing games, plugins) behind one object that also computes the inputs they need.

Each metric declares what it needs (:attr:`~metrics.per_sample.PerSampleMetric.needs`); per
batch the scorer computes each needed input once (:class:`BatchInputs`: one forward of
``x * M`` for every metric that uses its probabilities, one call of the method on ``x * M``,
one set of Insertion/Deletion curves) and hands it to every metric that asked for it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import is_import_string
from benchmark.metrics.catalog import builtin_metric_keys, metric_class, metric_names
from benchmark.metrics.functional.bootstrap import DEFAULT_RESAMPLES
from benchmark.metrics.functional.image import MAP_NON_FINITE, map_problems
from benchmark.metrics.functional.insertion_deletion import (
    check_blur,
    check_chunk_size,
    check_n_steps,
    check_score,
    insertion_deletion_curves,
)
from benchmark.metrics.functional.localization import Boxes
from benchmark.metrics.functional.randomization import check_steps
from benchmark.metrics.functional.road import DEFAULT_NOISE, DEFAULT_PERCENTAGES, check_noise, check_percentages
from benchmark.metrics.max_sensitivity import check_radius, check_samples
from benchmark.metrics.per_sample import PerSampleMetric

#: The thesis's five metrics, always computed, in the order of every dict this module returns.
METRIC_KEYS = ("avg_drop", "avg_increase", "coherency", "insertion", "deletion")

#: What a metric may need (``needs``), computed at most once per batch by :class:`BatchInputs`.
INPUTS = {
    "maps": "the maps M [B, H, W] in [0, 1]",
    "images": "the images x [B, 3, H, W] in [0, 1] pixel space",
    "classes": "the top-1 classes c [B] on x",
    "base_prob": "softmax probability of c on x [B]",
    "explanation_prob": "softmax probability of c on x * M [B] (one forward of x * M)",
    "explanation_probs": "softmax probabilities on x * M [B, classes]",
    "maps_of_explanation": "the method's maps of x * M for c [B, H, W] (the method again)",
    "insertion_curves": "Insertion curves [B, S + 1]",
    "deletion_curves": "Deletion curves [B, S + 1]",
    "boxes": "per image a [K, 4] tensor of boxes in map pixels, or None",
    "classifier": "the classifier: pixel-space images -> logits",
    "class_probability": "probability(images [N, 3, H, W], classes [N]) -> softmax probability of each class [N] "
    "(forward-only passes in the benchmark's chunks)",
    "explain": "the method again: explain(images, classes) -> maps [B, H, W]",
    "method_for_inputs": "the method on other images: method(images [B, 3, H, W], None) -> maps [B, H, W] for the "
    "batch's classes (unavailable for maps computed elsewhere)",
    "method_for_classes": "the method for other classes: method(images, classes [B]) -> maps (unavailable where "
    "the maps do not depend on the class)",
    "class_count": "the number of classes of the classifier",
}
#: Inputs that call the method again: unavailable for maps computed elsewhere.
METHOD_INPUTS = ("maps_of_explanation", "explain", "method_for_inputs", "method_for_classes")


def metric_needs(cls: type[PerSampleMetric]) -> dict[str, str]:
    """``{parameter: input}`` of a metric class."""
    needs = cls.needs
    return dict(needs) if isinstance(needs, Mapping) else {name: name for name in needs}


def extra_metric_keys() -> tuple[str, ...]:
    """The built-in metrics beyond the thesis's five (``--metrics.extra``), in their order."""
    return tuple(key for key in builtin_metric_keys() if key not in METRIC_KEYS)


def check_extra(extra: Sequence[str] | None) -> tuple[str, ...]:
    """The metric keys beyond the thesis's: the chosen ones (built-in keys, plugin names or
    import strings) and the metrics they need (ADCC brings Complexity), each after what it
    needs, built-ins in their canonical order first; an unknown name is an error."""
    names = [str(name).strip() for name in (extra or []) if str(name).strip()]
    builtin = extra_metric_keys()
    plugins = [name for name in metric_names() if name not in METRIC_KEYS + builtin]
    for name in names:
        if name in METRIC_KEYS:
            raise BenchmarkError(f"--metrics.extra: {name} is always computed; leave it out")
        if name not in builtin and name not in plugins and not is_import_string(name):
            close = difflib.get_close_matches(name, [*builtin, *plugins], n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise BenchmarkError(
                f"--metrics.extra: unknown metric {name!r}{hint}; choose from: {', '.join([*builtin, *plugins])}, "
                "or your own as package.module:Class"
            )
        try:
            metric_class(name)
        except BenchmarkError as error:
            raise BenchmarkError(f"--metrics.extra: {error}") from None
    chosen: list[str] = []

    def add(key: str) -> None:
        if key in chosen or key in METRIC_KEYS:
            return
        for needed in metric_needs(metric_class(key)).values():
            if needed not in INPUTS:
                add(needed)
        chosen.append(key)

    ordered = [key for key in builtin if key in names] + [n for n in dict.fromkeys(names) if n not in builtin]
    for key in ordered:
        add(key)
    canonical = [key for key in builtin if key in chosen]
    return tuple(canonical + [key for key in chosen if key not in canonical])


def metric_info(key: str) -> dict[str, Any]:
    """Title and direction of a metric, as ``results.json`` records them."""
    cls = metric_class(key)
    return {"title": cls.title or key, "higher_is_better": bool(cls.higher_is_better)}


def higher_is_better(key: str) -> bool:
    return bool(metric_class(key).higher_is_better)


class _HigherIsBetter(Mapping):
    """``HIGHER_IS_BETTER[key]`` for every registered metric (plugins included)."""

    def __getitem__(self, key: str) -> bool:
        return higher_is_better(key)

    def __iter__(self):
        return iter(METRIC_KEYS + extra_metric_keys())

    def __len__(self) -> int:
        return len(METRIC_KEYS) + len(extra_metric_keys())


#: Whether a higher value of each metric is better.
HIGHER_IS_BETTER: Mapping[str, bool] = _HigherIsBetter()


#: Images per forward along the Insertion/Deletion curves when ``--metrics.chunk_size`` is not
#: given. CPU: per-image forward time grows with the batch beyond about 16 (perf/README.md);
#: CUDA: large batches are what a GPU is fast at, bounded to keep memory modest.
DEFAULT_CHUNK_SIZE = {"cpu": 16, "cuda": 128}


def _option(name: str, check, *values):
    """``check(*values)`` with a failure naming the option ``--metrics.<name>``."""
    try:
        return check(*values)
    except BenchmarkError as error:
        raise BenchmarkError(f"--metrics.{name}: {error}") from None


def _softmax(logits: Tensor) -> Tensor:
    return logits.softmax(dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))


def _module_name(key: str) -> str:
    return key.replace(".", "_dot_").replace(":", "_colon_")


class BatchInputs:
    """The inputs of one batch's metrics (:data:`INPUTS`), each computed once, when first asked.

    ``images``, ``maps``, ``classes`` and ``base_prob`` are given; the forward of ``x * M``, the
    method on ``x * M`` and the Insertion/Deletion curves are computed on first use and shared.
    """

    def __init__(
        self,
        scorer: SaliencyScorer,
        classifier,
        explain_fn,
        images,
        maps,
        classes,
        base_prob,
        boxes,
        forward_only=None,
        method=None,
    ):
        self._scorer = scorer
        self.classifier = classifier
        #: ``method(images, classes or None)``: the method on any images (``None``: the batch's classes)
        self.method_for_inputs = self.method_for_classes = method
        #: the classifier for passes that need no hooks or gradients (possibly compiled)
        self.forward_only = forward_only if forward_only is not None else classifier
        self.explain = explain_fn
        self.images = images
        self.maps = maps
        self.classes = classes
        self.base_prob = base_prob.detach().to(images.device)
        self.boxes = list(boxes) if boxes is not None else [None] * maps.shape[0]

    @cached_property
    def explanation(self) -> Tensor:
        """``x * M``."""
        return self.images.detach() * self.maps.unsqueeze(1)

    @cached_property
    def explanation_probs(self) -> Tensor:
        with torch.no_grad():
            return _softmax(self.forward_only(self.explanation))

    @cached_property
    def explanation_prob(self) -> Tensor:
        probs = self.explanation_probs
        return probs.gather(1, self.classes.to(probs.device).unsqueeze(1)).squeeze(1)

    @cached_property
    def maps_of_explanation(self) -> Tensor:
        return torch.as_tensor(self.explain(self.explanation, self.classes)).detach().to(self.maps.device)

    @cached_property
    def class_count(self) -> int:
        return int(self.explanation_probs.shape[1])

    @cached_property
    def class_probability(self) -> Callable[[Tensor, Tensor], Tensor]:
        chunk = self._scorer.chunk_size_for(self.images.device)

        def probability(images: Tensor, classes: Tensor) -> Tensor:
            classes = classes.to(device=images.device, dtype=torch.long)
            scores = []
            with torch.no_grad():
                for start in range(0, images.shape[0], chunk):
                    probs = _softmax(self.forward_only(images[start : start + chunk]))
                    scores.append(probs.gather(1, classes[start : start + chunk, None]).squeeze(1))
            return torch.cat(scores) if scores else images.new_zeros(0)

        return probability

    @cached_property
    def _curves(self) -> tuple[Tensor, Tensor]:
        scorer = self._scorer

        def score_fn(inputs: Tensor) -> Tensor:
            with torch.no_grad():
                return _softmax(self.forward_only(inputs))

        return insertion_deletion_curves(
            score_fn,
            self.images,
            self.maps,
            self.classes,
            n_steps=scorer.n_steps,
            chunk_size=scorer.chunk_size_for(self.images.device),
            blur_kernel=scorer.blur_kernel,
            blur_sigma=scorer.blur_sigma,
            score=scorer.score,
        )

    @property
    def insertion_curves(self) -> Tensor:
        return self._curves[0]

    @property
    def deletion_curves(self) -> Tensor:
        return self._curves[1]


class SaliencyScorer(torch.nn.Module):
    """Average Drop, Average Increase, Coherency, Insertion and Deletion of saliency maps, and
    the extra metrics asked for.

    The metrics are submodules (``self.metrics[key]``), so moving the scorer (e.g. by
    Lightning) moves their states. ``update()`` needs the classifier and the explanation
    method only as callables; it never knows which method made a map.

    Args:
        n_steps: Insertion/Deletion steps; ``None`` = the image side (224 for 224x224).
        score: ``"original_class"`` (probability of c) or ``"max_class"`` (highest probability,
            the thesis's variant) along the Insertion/Deletion curves.
        chunk_size: images per classifier forward when scoring the curves; ``None`` = the
            device's default (:data:`DEFAULT_CHUNK_SIZE`, measured in ``perf/README.md``).
        blur_kernel, blur_sigma: the Gaussian blur of the Insertion/Deletion baseline (odd
            kernel; sigma 0 = OpenCV's rule for the kernel).
        extra: metrics beyond the thesis: built-in keys (``complexity``, ``adcc`` (adds
            complexity), ``pointing_game``, ``energy_pointing_game`` (these two need bounding
            boxes)), plugin names or import strings (:func:`check_extra`).
        tolerance: the pointing game's tolerance in pixels of the 224x224 map (TorchRay: 15);
            given to every metric whose constructor takes ``tolerance``.
        road_percentages, road_noise: ROAD's percentages of removed pixels and the sigma of its
            imputation noise (0 = off); given to every metric whose constructor takes them.
        sensitivity_samples, sensitivity_radius: max-sensitivity's draws and the L-infinity
            radius of its perturbations in [0, 1] pixel space.
        randomization_steps: the stages of the cascading model randomization.
        bootstrap: resamples of the 95% bootstrap interval of every metric mean.

    Raises:
        BenchmarkError: an option out of range.
    """

    def __init__(
        self,
        n_steps: int | None = None,
        score: str = "original_class",
        chunk_size: int | None = None,
        blur_kernel: int = 11,
        blur_sigma: float = 5.0,
        extra: list[str] | None = None,
        tolerance: float = 15,
        bootstrap: int = DEFAULT_RESAMPLES,
        road_percentages: list[float] = list(DEFAULT_PERCENTAGES),  # noqa: B006 (read, never changed)
        road_noise: float = DEFAULT_NOISE,
        sensitivity_samples: int = 10,
        sensitivity_radius: float = 0.02,
        randomization_steps: int = 5,
    ) -> None:
        super().__init__()
        self.score = _option("score", check_score, score)
        self.chunk_size = None if chunk_size is None else _option("chunk_size", check_chunk_size, chunk_size)
        self.n_steps = _option("n_steps", check_n_steps, n_steps)
        _option("blur_kernel/blur_sigma", check_blur, blur_kernel, blur_sigma)
        self.blur_kernel = blur_kernel
        self.blur_sigma = blur_sigma
        self.extra = check_extra(extra)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
            raise BenchmarkError(f"--metrics.tolerance must be a number of pixels >= 0, got {tolerance!r}")
        if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 1:
            raise BenchmarkError(f"--metrics.bootstrap must be a number of resamples >= 1, got {bootstrap!r}")
        self.tolerance = tolerance
        self.bootstrap = bootstrap
        #: The metric keys of this scorer: the thesis's five, then the extras (each after the
        #: metrics it needs).
        self.keys: tuple[str, ...] = METRIC_KEYS + self.extra
        options = {
            "tolerance": tolerance,
            "road_percentages": _option("road_percentages", check_percentages, road_percentages),
            "road_noise": _option("road_noise", check_noise, road_noise),
            "sensitivity_samples": check_samples(sensitivity_samples),
            "sensitivity_radius": check_radius(sensitivity_radius),
            "randomization_steps": check_steps(randomization_steps),
        }
        # A ModuleDict (so the states move with the scorer) under names without "." and ":"
        # (an import string's key); ``self.metrics`` gives them by key.
        self._metric_modules = torch.nn.ModuleDict({_module_name(key): self._build(key, options) for key in self.keys})
        #: ``{parameter: input}`` of each metric.
        self.needs: dict[str, dict[str, str]] = {key: metric_needs(type(self.metrics[key])) for key in self.keys}
        #: Metrics that cannot be computed for the method being scored, with the reason (e.g.
        #: Coherency for saved maps): their values stay undefined and are not counted as such.
        self.not_computable: dict[str, str] = {}
        #: Inputs that cannot be computed for the method being scored (see :meth:`mark_unavailable`).
        self.unavailable: dict[str, str] = {}

    @property
    def metrics(self) -> dict[str, PerSampleMetric]:
        """The metric objects by key."""
        return {key: self._metric_modules[_module_name(key)] for key in self.keys}

    @staticmethod
    def _build(key: str, options: dict[str, Any]) -> PerSampleMetric:
        cls = metric_class(key)
        accepted = inspect.signature(cls.__init__).parameters
        return cls(**{name: value for name, value in options.items() if name in accepted})

    def mark_unavailable(self, input_name: str, reason: str) -> None:
        """Declare that an input cannot be computed (e.g. ``explain``, the method again, for maps
        computed elsewhere): every metric needing it, directly or through another metric, is
        not computable with ``reason``."""
        self.unavailable[input_name] = reason
        if input_name == "explain":
            self.unavailable["maps_of_explanation"] = reason
        if input_name == "method_for_inputs":  # no method on other images: none for other classes either
            self.unavailable.setdefault("method_for_classes", reason)
        for key in self.keys:
            needed = list(self.needs[key].values())
            missing = [n for n in needed if n in self.unavailable]
            if missing and key not in self.not_computable:
                self.not_computable[key] = reason
                continue
            through = [n for n in needed if n in self.not_computable]
            if through and key not in self.not_computable:
                first = through[0]
                self.not_computable[key] = (
                    f"{self.metrics[key].title or key} combines {self.metrics[first].title or first}, which is not "
                    f"computable: {self.not_computable[first]}"
                )

    def chunk_size_for(self, device: torch.device) -> int:
        """Images per forward along the curves on ``device``: the option, else the device's
        fixed default (fixed, not tuned at run time, so runs stay reproducible)."""
        if self.chunk_size is not None:
            return self.chunk_size
        return DEFAULT_CHUNK_SIZE.get(device.type, DEFAULT_CHUNK_SIZE["cpu"])

    def update(
        self,
        classifier: Callable[[Tensor], Tensor],
        explain_fn: Callable[[Tensor, Tensor], Tensor],
        sample_ids: Tensor | Sequence[int],
        images: Tensor,
        maps: Tensor,
        classes: Tensor,
        base_prob: Tensor,
        boxes: Boxes | None = None,
        forward_only: Callable[[Tensor], Tensor] | None = None,
        method: Callable[[Tensor, Tensor | None], Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Score a batch and add it to every metric; returns the per-sample values (CPU).

        ``classifier(images) -> logits``; ``explain_fn(images, classes) -> maps[B, H, W]``
        (the method that made ``maps``: it is called on ``x * M``, with grad mode as it is).
        ``images[B, 3, H, W]`` in [0, 1] pixel space, ``maps[B, H, W]`` in [0, 1],
        ``classes[B]`` = c (top-1 on ``images``), ``base_prob[B]`` = softmax probability of c.
        ``boxes`` (pointing games): per sample a ``[K, 4]`` tensor of boxes in map pixels, or
        ``None`` (no box: the sample is left out of those metrics and counted).
        ``forward_only``: ``classifier`` for the passes that need neither hooks nor gradients
        (``x * M``, the curves), e.g. compiled; default ``classifier``. ``method(images,
        classes)``: the method on other images (``classes`` ``None`` = the batch's) or for other
        classes, for the metrics that need it (random logit, max-sensitivity).
        """
        batch, _, height, width = images.shape
        if maps.shape != (batch, height, width):
            raise ValueError(f"expected maps of shape {(batch, height, width)}, got {tuple(maps.shape)}")
        maps = maps.detach().to(device=images.device, dtype=images.dtype)
        # A map with NaN/Inf has no defined metric: score a zero map in its place (so nothing
        # NaN reaches the model) and mark all its values undefined below.
        non_finite = map_problems(maps) == MAP_NON_FINITE
        if non_finite.any():
            maps = torch.where(non_finite[:, None, None], torch.zeros_like(maps), maps)
        classes = classes.to(device=images.device, dtype=torch.long)
        inputs = BatchInputs(
            self, classifier, explain_fn, images, maps, classes, base_prob, boxes, forward_only, method
        )
        # In the order of the keys: the forward of x * M (Average Drop), the method on x * M
        # (Coherency), then the curves (Insertion), as the thesis metrics always were.
        values: dict[str, Tensor] = {}
        self.last_curves: dict[str, Tensor] = {}
        for key in self.keys:
            metric = self.metrics[key]
            if key in self.not_computable:
                metric.update_undefined(sample_ids, batch)
            else:
                arguments = {
                    parameter: values[name] if name in values else getattr(inputs, name)
                    for parameter, name in self.needs[key].items()
                }
                metric.update(sample_ids, **arguments)
                # The batch's curves of each curve metric (for the records): the curves it was
                # given ([B, S + 1]), or those it computed itself (``batch_curves``, e.g. ROAD's).
                curves = arguments["curves"] if "curves" in arguments else getattr(metric, "batch_curves", None)
                if curves is not None:
                    self.last_curves[key] = curves.detach().cpu()
            values[key] = metric.values[-1]
        if non_finite.any():
            for key in self.keys:
                self.metrics[key].values[-1][non_finite.to(self.metrics[key].values[-1].device)] = float("nan")
        return {key: self.metrics[key].values[-1].detach().cpu() for key in self.keys}

    def restore(self, sample_ids: Tensor, values: dict[str, Tensor], curves: dict[str, Tensor]) -> None:
        """Put back per-sample values computed earlier (a resumed run's records): ``values[key]
        [N]`` for every metric key, ``curves[key][N, S + 1]`` for the curve metrics."""
        missing = [key for key in self.keys if key not in values]
        if missing:
            raise BenchmarkError(f"the records lack the metric(s) {', '.join(missing)}; start a new run")
        for key in self.keys:
            extra = {"curves": curves[key]} if key in curves else {}
            self.metrics[key].restore(sample_ids, values[key], **extra)

    def compute(self) -> dict[str, float]:
        """Mean of each metric over all samples (and processes: every rank must call it)."""
        return {key: float(self.metrics[key].compute()) for key in self.keys}

    def mean_curves(self) -> dict[str, Tensor]:
        """Mean curves ``[S + 1]`` of the curve metrics (every rank must call it)."""
        return {key: self.metrics[key].mean_curve() for key in self.keys if hasattr(self.metrics[key], "mean_curve")}

    def details(self) -> dict[str, dict[str, Any]]:
        """What each metric reports beyond its value (``details()``; every rank must call it)."""
        return {
            key: self.metrics[key].details()
            for key in self.keys
            if hasattr(self.metrics[key], "details") and key not in self.not_computable
        }

    def examples(self) -> dict[str, dict[str, Any]]:
        """Each metric's example image of this process (``example``), where it keeps one."""
        return {key: example for key in self.keys if (example := getattr(self.metrics[key], "example", None))}

    def per_sample(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``(ids, values)`` of each metric, sorted by id (every rank must call it)."""
        return {key: self.metrics[key].per_sample() for key in self.keys}

    def undefined_counts(self) -> dict[str, int]:
        """Samples with an undefined value per metric (every rank must call it)."""
        return {key: 0 if key in self.not_computable else self.metrics[key].undefined_count() for key in self.keys}

    def info(self) -> dict[str, dict[str, Any]]:
        """Title and direction of each metric (for results.json and tables)."""
        return {key: metric_info(key) for key in self.keys}

    def reset(self) -> None:
        """Forget every sample."""
        for metric in self.metrics.values():
            metric.reset()
