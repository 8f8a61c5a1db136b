"""Base class of the per-sample metrics: every value is kept with its sample id, so that a
mean over processes counts each image exactly once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric

from benchmark.core.errors import BenchmarkError
from benchmark.metrics.options import MetricOptions

#: Sample ids are stored as float32, which holds every integer below 2**24 exactly.
MAX_SAMPLE_ID = 2**24


class PerSampleMetric(Metric):
    """Keeps ``(sample id, value)`` pairs in ``cat`` states and reduces them to a mean.

    Under DDP the states are gathered rank by rank, and Lightning's default sampler repeats
    samples to even out the ranks. ``compute()`` therefore sorts by sample id, keeps the first
    value of each id, and averages the finite values (a non-finite value marks a sample where
    the metric is undefined; ``undefined_count()`` counts them). No values: NaN.

    Every state is float32 and one-dimensional: torchmetrics gives a rank that never called
    ``update()`` an empty float32 1-D tensor, and an int64/float64 or 2-D state would not match
    it (gloo crashes). Ids must be integers in [0, 2**24). Subclasses compute their per-sample
    values in ``update()`` and pass them to :meth:`_store`; extra per-sample states are added
    with :meth:`_add_per_sample_state` and stored flattened, ``width`` numbers per sample.

    ``compute()``, ``per_sample()``, ``undefined_count()`` gather the states: under DDP every
    rank must call them.
    """

    is_differentiable = False
    full_state_update = False
    higher_is_better: bool | None = None
    #: The metric's key (``--metrics.extra KEY``, results.json), set when it is registered.
    key: ClassVar[str] = ""
    #: Its name in tables (default: the key).
    title: ClassVar[str] = ""
    #: The inputs ``update(sample_ids, **inputs)`` takes: names of ``benchmark.metrics.inputs.INPUTS`` or
    #: of other metrics (their per-sample values of the batch), or ``{parameter: input}``.
    needs: ClassVar[tuple[str, ...] | Mapping[str, str]] = ()
    #: Its options (``--metrics.<name>``), if any: a :class:`~benchmark.metrics.options.MetricOptions`
    #: dataclass whose values the constructor receives as keyword arguments.
    options_class: ClassVar[type[MetricOptions] | None] = None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._extra_states: list[str] = []
        self._extra_widths: dict[str, int] = {}
        self.add_state("sample_ids", default=[], dist_reduce_fx="cat")
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def model_passes(self) -> tuple[int, int]:
        """``(forwards, backwards)`` of the classifier per image this metric makes itself, beyond
        the shared inputs (``--estimate`` counts them); default none."""
        return 0, 0

    def seconds_per_image(self, images: Tensor) -> float:
        """Seconds per image of this metric's own work beyond model passes and method calls
        (e.g. ROAD's imputation), timed on ``images`` for ``--estimate``; default none."""
        return 0.0

    def method_calls(self) -> int:
        """Calls of the explanation method per image this metric makes (Coherency's on x * M,
        the sanity checks'), each costing the method's passes (``--estimate`` counts them)."""
        return 0

    def _add_per_sample_state(self, name: str) -> None:
        self.add_state(name, default=[], dist_reduce_fx="cat")
        self._extra_states.append(name)

    # -- update ---------------------------------------------------------------------------

    def _store(self, sample_ids: Tensor | Sequence[int], values: Tensor, **extra: Tensor) -> None:
        """Append ``values[B]`` (and ``extra[name][B, ...]``) for ``sample_ids[B]``."""
        ids = torch.as_tensor(sample_ids).detach()
        if ids.ndim != 1:
            raise ValueError(f"expected sample ids [B], got shape {tuple(ids.shape)}")
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise ValueError(f"sample ids must be integers, got dtype {ids.dtype}")
        if values.shape != ids.shape:
            raise ValueError(f"expected one value per sample id ({tuple(ids.shape)}), got {tuple(values.shape)}")
        if ids.numel():
            low, high = int(ids.min()), int(ids.max())
            if low < 0:
                raise ValueError(f"sample ids must be >= 0, got {low}")
            if high >= MAX_SAMPLE_ID:
                raise BenchmarkError(
                    f"sample id {high} is too large: the metrics hold ids below {MAX_SAMPLE_ID}; "
                    "evaluate fewer images in one run"
                )
        self.sample_ids.append(ids.to(device=self.device, dtype=torch.float32))
        self.values.append(values.detach().to(device=self.device, dtype=torch.float32))
        for name in self._extra_states:
            tensor = extra[name].detach()
            if tensor.shape[:1] != ids.shape:
                raise ValueError(f"expected {name} with {len(ids)} rows, got {tuple(tensor.shape)}")
            width = tensor[0].numel() if len(tensor) else self._extra_widths.get(name, 0)
            if self._extra_widths.setdefault(name, width) != width:
                raise ValueError(
                    f"{name} must keep the same size per sample: got {width} after {self._extra_widths[name]}"
                )
            flat = tensor.reshape(-1).to(device=self.device, dtype=torch.float32)
            getattr(self, name).append(flat)

    def update_undefined(self, sample_ids: Tensor | Sequence[int], count: int) -> None:
        """Undefined (NaN) values for ``count`` samples: the metric cannot be computed for the
        method being scored (e.g. Coherency of maps computed elsewhere)."""
        if self._extra_states:
            raise ValueError(
                f"{type(self).__name__} keeps per-sample {self._extra_states}: it cannot be left undefined"
            )
        self._store(sample_ids, torch.full((count,), float("nan")))
        self._update_count += 1
        self._computed = None

    def restore(self, sample_ids: Tensor | Sequence[int], values: Tensor, **extra: Tensor) -> None:
        """Put back values computed earlier (the records of a resumed run), as an update."""
        self._store(sample_ids, values, **extra)
        self._update_count += 1
        self._computed = None

    # -- gathered, sorted, de-duplicated views --------------------------------------------

    @contextmanager
    def _gathered(self) -> Iterator[None]:
        """States of all processes inside the block (already gathered inside ``compute()``)."""
        if self._is_synced:
            yield
            return
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync, should_unsync=True):
            yield

    def _cat(self, state: Tensor | list[Tensor]) -> Tensor:
        if isinstance(state, list):
            return torch.cat(state) if state else torch.zeros(0, device=self.device)
        return state

    def _rows(self, name: str, count: int) -> Tensor:
        flat = self._cat(getattr(self, name))
        width = flat.numel() // count if count else self._extra_widths.get(name, 0)
        return flat.view(count, width)

    def _unique(self, *extra: str) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Ids (long), values and ``extra`` states ([N, width]), sorted by id, first kept.

        Must run inside :meth:`_gathered`.
        """
        ids = self._cat(self.sample_ids)
        values = self._cat(self.values).to(ids.device)
        rows = [self._rows(name, len(ids)).to(ids.device) for name in extra]
        ids, order = torch.sort(ids, stable=True)
        keep = torch.ones_like(ids, dtype=torch.bool)
        keep[1:] = ids[1:] != ids[:-1]
        chosen = order[keep]
        return ids[keep].long(), values[chosen], [row[chosen] for row in rows]

    def reset(self) -> None:
        super().reset()
        self._extra_widths.clear()

    def per_sample(self) -> tuple[Tensor, Tensor]:
        """``(ids, values)``: one value per sample id, sorted by id (``LongTensor``, float32)."""
        with self._gathered():
            ids, values, _ = self._unique()
        return ids, values

    def undefined_count(self) -> int:
        """How many samples have a non-finite value (e.g. a constant map for Coherency)."""
        _, values = self.per_sample()
        return int((~torch.isfinite(values)).sum())

    def compute(self) -> Tensor:
        """Mean of the finite per-sample values (float64), each sample id counted once."""
        _, values, _ = self._unique()
        finite = values[torch.isfinite(values)].double()
        if finite.numel() == 0:
            return torch.tensor(float("nan"), dtype=torch.float64, device=values.device)
        return finite.mean()


class PerSampleCurveMetric(PerSampleMetric):
    """A per-sample metric that also keeps each sample's curve (``curves``, a fixed number of
    points per sample: Insertion/Deletion's steps, ROAD's percentages) for the records and
    :meth:`mean_curve`."""

    #: The batch's curves ``[B, points]`` after each update, for the records, where the metric
    #: computes them itself (ROAD's, the randomization's; Insertion/Deletion are given theirs).
    batch_curves: Tensor | None = None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._add_per_sample_state("curves")

    @property
    def curve_points(self) -> int | None:
        """The points of each sample's curve where they are known without computing one (a
        metric that can be left undefined must say), else ``None``."""
        return None

    def update_undefined(self, sample_ids: Tensor | Sequence[int], count: int) -> None:
        """Undefined values and NaN curves of :attr:`curve_points` points for ``count`` samples."""
        if self.curve_points is None:
            super().update_undefined(sample_ids, count)  # refuses: the curves' width is unknown
            return
        nan = torch.full((count, self.curve_points), float("nan"))
        self.batch_curves = nan
        self._store(sample_ids, nan[:, 0], curves=nan)
        self._update_count += 1
        self._computed = None

    def mean_curve(self) -> Tensor:
        """Mean curve over the samples with a defined value, each sample id once (NaN when there
        is none)."""
        with self._gathered():
            _, values, (curves,) = self._unique("curves")
        return curves[torch.isfinite(values)].double().mean(dim=0).float()
