"""The explainer a run configuration names: its method class on its model, with its scorer."""

from __future__ import annotations

from benchmark.config import RunConfig
from benchmark.methods import get_method
from benchmark.metrics import SaliencyScorer
from benchmark.models import build_classifier
from benchmark.variants import base_method


def build_method(config: RunConfig, method: str | None = None, **pipeline):
    """The explainer (a LightningModule) of ``method`` (default: the run's ``--method``) on the run's
    model, with the run's scorer, kept and saved maps and seed; ``pipeline`` goes to its constructor."""
    o = config.options
    method = method or o.method
    classifier = build_classifier(o.model, o.model_weights, mean=o.model_mean, std=o.model_std, execution=o.execution)
    return get_method(base_method(method))(
        classifier,
        config.method_configs[method],
        scorer=SaliencyScorer(**config.metrics),
        keep_maps=max(o.overlay_images, o.log_images if o.logger == "wandb" else 0),
        save_maps=o.save_maps,
        seed=o.seed,
        **pipeline,
    )
