"""``--execution compiled``: the forward-only passes through ``torch.compile`` in pieces of one
fixed batch (padded), the fallback for a model that cannot be compiled, what stays uncompiled
(hooks, gradients, other dtypes), pass counting through the compiled path, and the CPU default."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.models import NormalizedClassifier
from benchmark.models.counting import counting_passes
from benchmark.models.execution import CompiledForward, forward_only


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        return self.head(self.conv(x).relu().mean(dim=(2, 3)))


class _Branching(_Tiny):
    """A data-dependent Python branch: no single graph exists, so fullgraph compiling refuses."""

    def forward(self, x):
        features = self.conv(x)
        if bool(features.sum() > 0):
            features = features * 2
        return self.head(features.relu().mean(dim=(2, 3)))


def _classifier(net_class: type[nn.Module]) -> NormalizedClassifier:
    """The net with the same weights on every call (seeded before it is built: a test that compares
    two executions builds it twice, and must not depend on the tests run before it)."""
    torch.manual_seed(0)
    net = net_class()
    model = NormalizedClassifier(net, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), name="tiny").eval().requires_grad_(False)
    model.net.to(memory_format=torch.channels_last)
    model.execution = "compiled"
    return model


def _images(count: int) -> torch.Tensor:
    return torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(count))


def test_compiles_once_for_any_count_of_images_and_keeps_the_outputs():
    model = _classifier(_Tiny)
    lines: list[str] = []
    compiled = CompiledForward(model, batch_size=4, note=lines.append)
    counts = (1, 4, 5, 11)  # a padded piece, one piece, a piece and a padded one, three pieces
    with torch.no_grad():
        expected = [model(_images(n)) for n in counts]
        with counting_passes(model.net) as count:
            outputs = [compiled(_images(n)) for n in counts]
    for output, reference in zip(outputs, expected):
        torch.testing.assert_close(output, reference, atol=1e-5, rtol=1e-5)
    assert len(lines) == 2, lines
    assert lines[0] == "compiling tiny's forward (torch.compile, batches of 4 at 3x8x8; once per run) ..."
    assert lines[1] == f"compiled tiny's forward in {compiled.compile_s} s"
    assert count.forward_images == 1 + 4 + 5 + 11  # the images asked for, not the padding
    assert count.forward_batches == {4: 4 * (1 + 1 + 2 + 3)}  # the work: 7 pieces of 4, padding included
    assert compiled.describe() == {"compiled_forward": "batches of 4", "compile_s": compiled.compile_s}


def test_hooks_gradients_and_other_dtypes_run_the_plain_model():
    model = _classifier(_Tiny)
    compiled = CompiledForward(model, batch_size=4, note=lambda line: None)
    seen: list[int] = []
    handle = model.net.conv.register_forward_hook(lambda module, args, output: seen.append(output.shape[0]))
    try:
        assert not compiled.covers(_images(3))
        compiled(_images(3))
    finally:
        handle.remove()
    assert seen == [3]  # the hook saw the pass: it was not compiled away
    assert not compiled.covers(_images(2).double())
    assert not compiled.covers(_images(2).requires_grad_(True))
    assert compiled.covers(_images(2)) and compiled.compile_s is None  # nothing compiled yet


def test_a_model_that_cannot_be_compiled_falls_back_with_one_line():
    model = _classifier(_Branching)
    lines: list[str] = []
    compiled = CompiledForward(model, batch_size=4, note=lines.append)
    with torch.no_grad():
        for n in (3, 6):
            torch.testing.assert_close(compiled(_images(n)), model(_images(n)))
    assert len(lines) == 2 and lines[0].startswith("compiling tiny's forward")
    assert lines[1].startswith("tiny cannot be compiled (") and lines[1].endswith(
        "); its forward-only passes run channels_last"
    )
    assert compiled.describe()["compiled_forward"] == "failed, ran channels_last"
    assert compiled.describe()["compile_failure"].split(":")[0] in lines[1]


def test_only_the_compiled_execution_compiles():
    model = _classifier(_Tiny)
    assert isinstance(forward_only(model, 4), CompiledForward)
    model.execution = "channels_last"
    assert forward_only(model, 4) is model


def test_the_cpu_default_is_compiled_for_float32_only(monkeypatch):
    from benchmark.config import RunOptions
    from benchmark.core.errors import BenchmarkError
    from benchmark.devices import DEVICE_DEFAULTS, device_defaults

    monkeypatch.setitem(DEVICE_DEFAULTS["cpu"], "execution", "compiled")  # the product's (conftest changes it)
    assert device_defaults(RunOptions())["execution"] == "compiled"
    assert device_defaults(RunOptions(precision="64"))["execution"] == "channels_last"
    with pytest.raises(BenchmarkError, match="--execution compiled compiles float32 forwards; with --precision 64"):
        RunOptions(precision="64", execution="compiled").validate(output_folder=False)


def test_score_cam_scores_its_masked_copies_through_the_compiled_forward():
    from benchmark.methods.cam import CAM_METHODS

    images = _images(2)
    maps = {}
    for execution in ("channels_last", "compiled"):
        model = _classifier(_Tiny)
        model.execution = execution
        method = CAM_METHODS["scorecam"](model, CAM_METHODS["scorecam"].config_class(target_layer="conv"))
        with torch.no_grad():
            classes = model(images).argmax(dim=1)
        with counting_passes(model.net) as count:
            maps[execution] = method.explain(images, classes)
        assert count.forward_images == 2 + 2 * 4  # the activations of the batch, then 4 masked copies per image
    assert method._forward_only.compile_s is not None  # the compiled run's copies went through torch.compile
    torch.testing.assert_close(maps["compiled"], maps["channels_last"], atol=1e-5, rtol=0)


def test_weights_changed_in_place_reach_the_compiled_graph():
    """The model randomization test puts random weights into the model in place while the method
    runs again; Score-CAM's masked copies then go through the compiled forward, which must use
    them (parameters are graph inputs, not constants baked in at compile time)."""
    from benchmark.metrics.functional.randomization import CascadingRandomization

    model = _classifier(_Tiny)
    compiled = CompiledForward(model, batch_size=4, note=lambda line: None)
    images = _images(4)
    with torch.no_grad():
        trained = compiled(images)
        stages = CascadingRandomization.build(model, images[:1], steps=1)
        with stages.cascade() as cascade:
            for _ in cascade:
                randomized, eager = compiled(images), model(images)
        after = compiled(images)
    torch.testing.assert_close(randomized, eager, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(randomized, trained, atol=1e-3)
    torch.testing.assert_close(after, trained, atol=0, rtol=0)


class _InPlaceAfterLayer(_Tiny):
    """The layer's output is changed in place right after it (as an in-place ReLU does)."""

    def forward(self, x):
        return self.head(self.conv(x).relu_().mean(dim=(2, 3)))


def _layer_output(model: NormalizedClassifier, images: torch.Tensor) -> torch.Tensor:
    kept = []
    handle = model.net.conv.register_forward_hook(lambda module, args, output: kept.append(output.clone()))
    try:
        with torch.no_grad():
            model(images)
    finally:
        handle.remove()
    return kept[0]


def test_the_one_graph_also_returns_a_layers_output_for_its_full_pieces():
    """``with_layer``: the logits and the layer's output (before an in-place op after it) from
    one forward; full pieces of the graph's batch through the graph, the rest (not padded)
    through the plain model; ``__call__`` gives the logits of the same graph: one compile."""
    model = _classifier(_InPlaceAfterLayer)
    lines: list[str] = []
    compiled = CompiledForward(model, batch_size=4, note=lines.append, layer=model.net.conv)
    from benchmark.models.execution import has_hooks

    assert not has_hooks(model.net)  # its own capture does not count as a user's hook
    counts = (1, 4, 5, 11)
    with torch.no_grad():
        compiled.with_layer(_images(4))  # the compile
    # no call after it compiles again (dynamo would recompile silently on a guard that fails,
    # e.g. on the capture's state between calls)
    with torch.no_grad(), torch._dynamo.config.patch(error_on_recompile=True), counting_passes(model.net) as count:
        outputs = [compiled.with_layer(_images(n)) for n in counts]
        plain_logits = compiled(_images(3))  # __call__: the same graph, its layer output dropped
    for n, (logits, layer_output) in zip(counts, outputs):
        with torch.no_grad():
            torch.testing.assert_close(logits, model(_images(n)), atol=1e-5, rtol=1e-5)
        expected = _layer_output(model, _images(n))
        assert layer_output.shape == (n, 4, 8, 8) and (expected < 0).any()  # before the in-place ReLU
        torch.testing.assert_close(layer_output, expected, atol=1e-5, rtol=1e-5)
    assert count.forward_images == 1 + 4 + 5 + 11 + 3
    # the graph ran the full pieces (4, 4 of 5, 8 of 11) and __call__'s padded 3, the plain model the rest (1, 1, 3)
    assert count.forward_batches == {4: 4 + 4 + 8 + 4, 1: 1 + 1, 3: 3}
    with torch.no_grad():
        torch.testing.assert_close(plain_logits, model(_images(3)), atol=1e-5, rtol=1e-5)
    assert len(lines) == 2 and compiled._captured == {}  # compiled once; nothing kept after a call


def test_the_capture_hook_goes_with_its_compiled_forward():
    import gc

    model = _classifier(_Tiny)
    compiled = CompiledForward(model, batch_size=4, note=lambda line: None, layer=model.net.conv)
    assert len(model.net.conv._forward_hooks) == 1
    del compiled
    gc.collect()
    assert len(model.net.conv._forward_hooks) == 0


def test_a_users_hook_sends_the_layer_read_through_the_plain_model():
    model = _classifier(_Tiny)
    compiled = CompiledForward(model, batch_size=4, note=lambda line: None, layer=model.net.conv)
    seen: list[int] = []
    handle = model.net.conv.register_forward_hook(lambda module, args, output: seen.append(output.shape[0]))
    try:
        with torch.no_grad():
            logits, layer_output = compiled.with_layer(_images(8))
    finally:
        handle.remove()
    assert seen == [8] and compiled.compile_s is None  # the user's hook saw the whole pass
    torch.testing.assert_close(layer_output, _layer_output(model, _images(8)))
    with pytest.raises(ValueError, match="without a layer"):
        CompiledForward(model, batch_size=4).with_layer(_images(1))


@pytest.mark.parametrize("name", ["random", "eigencam"])
def test_random_and_eigen_cam_read_their_layer_from_the_compiled_graph(name):
    """Their one pass is forward-only: under ``compiled`` a batch of the graph's size takes the
    run's graph (no hooked pass), and the maps equal ``channels_last``'s to float32 rounding."""
    from benchmark.methods.cam import CAM_METHODS

    images = _images(4)
    maps, batches = {}, {}
    for execution in ("channels_last", "compiled"):
        model = _classifier(_Tiny)
        model.execution = execution
        method = CAM_METHODS[name](model, CAM_METHODS[name].config_class(target_layer="conv"))
        method.scorer.chunk_size_for = lambda device: 4  # the graph's batch: the 4 images
        with torch.no_grad():
            classes = model(images).argmax(dim=1)
        with counting_passes(model.net) as count:
            maps[execution] = method.explain(images, classes)
        batches[execution] = dict(count.forward_batches)
    assert method.forward_only_layer() is method._target_layers[0]
    # one pass of 4 either way; what tells the graph's from the hooked one is that it compiled
    assert method._forward_only.compile_s is not None
    assert batches == {"channels_last": {4: 4}, "compiled": {4: 4}}
    torch.testing.assert_close(maps["compiled"], maps["channels_last"], atol=1e-5, rtol=0)
