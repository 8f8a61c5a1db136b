"""``--execution``: the model's passes in NCHW (eager), channels_last, or compiled. The Grad-CAM
metrics agree with eager's to float32 rounding on real images (measured on the 4 built-in
photos, 2 threads, 16 curve steps: channels_last at most 1.05e-4 points (Average Drop),
1.5e-5 (Insertion), 1.3e-5 (Deletion), 7.6e-6 (Coherency), 1.8e-7 in probability; compiled
2.2e-5, 2.3e-5, 2.2e-5, 7.6e-6 and 4.8e-7; the test allows about 10x the larger), and
results.json records the execution."""

from __future__ import annotations

import pytest
import torch

from benchmark import evaluate
from benchmark.core.errors import BenchmarkError
from benchmark.models import build_classifier

BOUNDS = {
    "avg_drop": 1e-3,
    "avg_increase": 0.0,
    "coherency": 1e-4,
    "insertion": 2e-4,
    "deletion": 2e-4,
    "pred_prob": 5e-6,
}


def test_channels_last_puts_the_weights_in_that_format_and_keeps_the_logits():
    eager = build_classifier("efficientnet_lite0")
    fast = build_classifier("efficientnet_lite0", execution="channels_last")
    assert fast.execution == "channels_last" and eager.execution == "eager"
    conv = fast.submodule("conv_stem").weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fast(images), eager(images), atol=1e-4, rtol=0)
    with pytest.raises(
        BenchmarkError, match="--execution 'jit' is unknown; choose one of: eager, channels_last, compiled"
    ):
        build_classifier("efficientnet_lite0", execution="jit")


@pytest.mark.slow
def test_gradcam_metrics_agree_across_executions_to_float32_rounding():
    runs = {
        ex: evaluate(method="gradcam", limit=4, metrics={"n_steps": 16}, overlay_images=0, threads=2, execution=ex)
        for ex in ("eager", "channels_last", "compiled")
    }
    assert [r.results["execution"] for r in runs.values()] == ["eager", "channels_last", "compiled"]
    assert runs["compiled"].results["compiled_forward"] == "batches of 16"
    assert runs["compiled"].results["compile_s"] > 0
    for execution in ("channels_last", "compiled"):
        for a, b in zip(runs["eager"].per_sample, runs[execution].per_sample):
            assert a["pred_class"] == b["pred_class"]
            for key, bound in BOUNDS.items():
                assert abs(a[key] - b[key]) <= bound, (execution, a["sample_id"], key, a[key], b[key])
