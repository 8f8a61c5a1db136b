"""``--execution``: the model's passes in NCHW (eager) or channels_last. The Grad-CAM metrics
of both agree to float32 rounding on real images (measured on the 4 built-in photos, 2
threads, 16 curve steps: at most 1.05e-4 points (Average Drop), 1.5e-5 (Insertion), 7.6e-6
(Coherency), 1.8e-7 in probability; the test allows 10x that), and results.json records it."""

from __future__ import annotations

import pytest
import torch

from benchmark import evaluate
from metrics.errors import BenchmarkError
from models import build_classifier

BOUNDS = {"avg_drop": 1e-3, "avg_increase": 0.0, "coherency": 1e-4, "insertion": 2e-4, "deletion": 2e-4,
          "pred_prob": 2e-6}


def test_channels_last_puts_the_weights_in_that_format_and_keeps_the_logits():
    eager = build_classifier("efficientnet_lite0")
    fast = build_classifier("efficientnet_lite0", execution="channels_last")
    assert fast.execution == "channels_last" and eager.execution == "eager"
    conv = fast.submodule("conv_stem").weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fast(images), eager(images), atol=1e-4, rtol=0)
    with pytest.raises(BenchmarkError, match="--execution 'compiled' is unknown; choose one of: eager, channels_last"):
        build_classifier("efficientnet_lite0", execution="compiled")


@pytest.mark.slow
def test_gradcam_metrics_agree_across_executions_to_float32_rounding():
    runs = {ex: evaluate(method="gradcam", limit=4, metrics={"n_steps": 16}, overlay_images=0, threads=2,
                         execution=ex) for ex in ("eager", "channels_last")}
    assert [r.results["execution"] for r in runs.values()] == ["eager", "channels_last"]
    for a, b in zip(runs["eager"].per_sample, runs["channels_last"].per_sample):
        assert a["pred_class"] == b["pred_class"]
        for key, bound in BOUNDS.items():
            assert abs(a[key] - b[key]) <= bound, (a["sample_id"], key, a[key], b[key])
