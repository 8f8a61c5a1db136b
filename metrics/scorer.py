"""The five thesis metrics (and, on request, any registered metric: Complexity, ADCC, the
pointing games, plugins) behind one object that also computes the inputs they need.

Each metric declares what it needs (:attr:`~metrics.per_sample.PerSampleMetric.needs`); per
batch the scorer computes each needed input once (:class:`~benchmark.metrics.inputs.BatchInputs`: one
forward of ``x * M`` for every metric that uses its probabilities, one call of the method on
``x * M``, one set of Insertion/Deletion curves) and hands it to every metric that asked for
it. Each metric declares its options too (``options_class``,
:class:`~benchmark.metrics.options.MetricOptions`): the scorer builds them from the values given by name
and never names one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from typing import Any

import torch
from torch import Tensor

from benchmark.core.errors import BenchmarkError
from benchmark.metrics.catalog import loadable_metric_classes, metric_class
from benchmark.metrics.functional.image import MAP_NON_FINITE, map_problems
from benchmark.metrics.functional.localization import Boxes
from benchmark.metrics.inputs import BatchInputs
from benchmark.metrics.options import MetricOptions, build_options, options_classes
from benchmark.metrics.per_sample import PerSampleMetric
from benchmark.metrics.scorer_options import DEFAULT_CHUNK_SIZE, ScorerOptions
from benchmark.metrics.selection import METRIC_KEYS, check_extra, metric_info, metric_needs


def _module_name(key: str) -> str:
    return key.replace(".", "_dot_").replace(":", "_colon_")


class SaliencyScorer(torch.nn.Module):
    """Average Drop, Average Increase, Coherency, Insertion and Deletion of saliency maps, and
    the extra metrics asked for.

    The metrics are submodules (``self.metrics[key]``), so moving the scorer (e.g. by
    Lightning) moves their states. ``update()`` needs the classifier and the explanation
    method only as callables; it never knows which method made a map.

    Args:
        options: the ``--metrics.<name>`` values by name (the rest keep their defaults): the
            scorer's own (:class:`~benchmark.metrics.scorer_options.ScorerOptions`: ``n_steps``,
            ``score``, ``chunk_size``, ``blur_kernel``, ``blur_sigma``, ``extra``,
            ``bootstrap``) and those each metric declares (its ``options_class``), built-in or
            plugin. An option of a metric not computed is checked all the same.

    Raises:
        BenchmarkError: an option out of range, or one that no metric has.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__()
        own = {f.name for f in fields(ScorerOptions)}
        #: The scorer's own options.
        self.options = ScorerOptions(**{name: value for name, value in options.items() if name in own})
        self.options.validate()
        #: The metric keys beyond the thesis's (each after the metrics it needs).
        self.extra = check_extra(self.options.extra)
        #: The metric keys of this scorer: the thesis's five, then the extras.
        self.keys: tuple[str, ...] = METRIC_KEYS + self.extra
        #: Each metric's options by options class (every loadable metric's: a value given for a
        #: metric not computed is checked too).
        self.metric_options: dict[type[MetricOptions], MetricOptions] = build_options(
            options_classes(loadable_metric_classes(self.extra)),
            {name: value for name, value in options.items() if name not in own},
        )
        # A ModuleDict (so the states move with the scorer) under names without "." and ":"
        # (an import string's key); ``self.metrics`` gives them by key.
        self._metric_modules = torch.nn.ModuleDict({_module_name(key): self._build(key) for key in self.keys})
        #: ``{parameter: input}`` of each metric.
        self.needs: dict[str, dict[str, str]] = {key: metric_needs(type(self.metrics[key])) for key in self.keys}
        #: Metrics that cannot be computed for the method being scored, with the reason (e.g.
        #: Coherency for saved maps): their values stay undefined and are not counted as such.
        self.not_computable: dict[str, str] = {}
        #: Inputs that cannot be computed for the method being scored (see :meth:`mark_unavailable`).
        self.unavailable: dict[str, str] = {}

    @property
    def bootstrap(self) -> int:
        """Resamples of the 95% bootstrap interval of every metric mean."""
        return self.options.bootstrap

    @property
    def metrics(self) -> dict[str, PerSampleMetric]:
        """The metric objects by key."""
        return {key: self._metric_modules[_module_name(key)] for key in self.keys}

    def _build(self, key: str) -> PerSampleMetric:
        """The metric of ``key``, given its options' values as keyword arguments."""
        cls = metric_class(key)
        if cls.options_class is None:
            return cls()
        return cls(**asdict(self.metric_options[cls.options_class]))

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
        if self.options.chunk_size is not None:
            return self.options.chunk_size
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
            classifier,
            explain_fn,
            images,
            maps,
            classes,
            base_prob,
            boxes,
            forward_only,
            method,
            chunk_size=self.chunk_size_for(images.device),
            curve_options=self.options.curve_options,
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
