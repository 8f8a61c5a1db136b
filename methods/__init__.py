"""Saliency methods: each a LightningModule supplying ``explain(images, classes) -> maps``."""

from benchmark.methods import cam as _cam  # noqa: F401  (registers the CAM methods: gradcam, scorecam, ...)
from benchmark.methods import lots_explainer as _lots_explainer  # noqa: F401  (registers "lots")
from benchmark.methods import saved_maps as _saved_maps  # noqa: F401  (registers "maps": maps computed elsewhere)
from benchmark.methods.base import BatchOutcome, Explainer, Explanation, ExtraColumn, MethodConfig
from benchmark.methods.lots_explainer import LOTS, LOTSConfig
from benchmark.methods.registry import get_method, method_names, register_method
from benchmark.metrics.results import RunResults

__all__ = [
    "BatchOutcome",
    "Explainer",
    "Explanation",
    "ExtraColumn",
    "LOTS",
    "LOTSConfig",
    "MethodConfig",
    "RunResults",
    "get_method",
    "method_names",
    "register_method",
]
