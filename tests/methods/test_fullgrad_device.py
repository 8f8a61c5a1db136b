"""FullGrad on the device (methods/cam/fullgrad_device.py): a map computed by hand, grad-cam's maps
where both read the same layers (a CNN with in-place ReLUs, a torchvision ResNet whose shortcut
hands one gradient to two BatchNorms), and timm's BatchNormAct2d read before its activation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.methods import get_method
from benchmark.methods.cam import FullGradConfig, grad_cam_bias_layers
from benchmark.methods.cam.fullgrad_device import bias_layers, effective_bias
from tests.methods.test_cam import _images, _wrap
from tests.support.helpers import layer_term_tolerance

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _fullgrad(model, images, classes, backend: str) -> torch.Tensor:
    return get_method("fullgrad")(model, FullGradConfig(backend=backend)).explain(images, classes)


def _randomized_batchnorms(net: nn.Module, seed: int) -> nn.Module:
    """Non-trivial running statistics and affine parameters (fresh ones make the bias 0)."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.rand(channels, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(channels, generator=generator) - 0.5)
    return net.eval()


def test_fullgrad_by_hand_on_a_one_conv_network():
    """``z = w . x + b`` (a 1x1 conv, 3 -> 1 channel) on a 2x2 image, ``y = sum_ij a_ij z_ij``:
    ``dy/dx_c,ij = w_c a_ij`` and ``dy/dz = a``, so the map is
    ``minmax(sum_c psi(|w_c a x_c|) + psi(|b a|))`` with ``psi(v) = (v - min) / (1e-7 + max - min)``."""
    conv = nn.Conv2d(3, 1, 1)
    linear = nn.Linear(4, 1, bias=False)
    w, b = torch.tensor([0.5, -2.0, 1.0]), 0.7
    a = torch.tensor([[1.0, -3.0], [2.0, 0.5]])
    with torch.no_grad():
        conv.weight.copy_(w.view(1, 3, 1, 1))
        conv.bias.fill_(b)
        linear.weight.copy_(a.view(1, 4))
    model = _wrap(nn.Sequential(conv, nn.Flatten(), linear))
    x = torch.tensor([[[0.2, 0.9], [0.4, 0.1]], [[0.3, 0.3], [0.8, 0.6]], [[1.0, 0.0], [0.5, 0.25]]])[None]

    def psi(v: np.ndarray) -> np.ndarray:
        return (v - v.min()) / (1e-7 + v.max() - v.min())

    an, xn = a.numpy().astype(np.float64), x[0].numpy().astype(np.float64)
    total = sum(psi(np.abs(float(w[c]) * an * xn[c])) for c in range(3)) + psi(np.abs(b * an))
    expected = (total - total.min()) / (1e-7 + (total - total.min()).max())
    got = _fullgrad(model, x, torch.tensor([0]), "device")[0].numpy()
    assert np.abs(got - expected).max() < 1e-6
    assert len(bias_layers(model.net)) == 1 and effective_bias(conv).item() == pytest.approx(b)


class _ConvBatchNormNet(nn.Module):
    """conv(bias) - BN - ReLU(in place) - conv(stride 2, no bias) - BN - ReLU(in place) - pool - linear."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(inplace=True),
            nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def _channel_sum_reference(values: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """grad-cam's per-channel min-max of ``|values * scale|``, written out, summed over the channels."""
    v = (values * (scale.view(1, -1, 1, 1) if scale is not None else 1)).abs()
    v = v - v.amin(dim=(2, 3), keepdim=True)
    return (v / (1e-7 + v.amax(dim=(2, 3), keepdim=True))).sum(dim=1, keepdim=True)


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "one_pixel", "one_channel", "permuted", "sliced"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_scale", [True, False])
def test_the_scaled_channel_sum_equals_grad_cams_formula_in_every_layout(layout, dtype, with_scale):
    """The rewritten sum ((|g| - min|g|) times per-channel weights, one batched product, the
    channels read where they lie) against the formula, for gradients in the layouts autograd can
    hand over: NCHW, channels_last (the fast executions), 1x1 maps and one channel (both layouts
    at once), a permuted one and a channel slice of a channels_last one (neither); a channel of
    bias 0 and a constant channel included."""
    from benchmark.methods.cam.fullgrad_device import _scaled_channel_sum

    generator = torch.Generator().manual_seed(7)
    shape = {"one_pixel": (3, 5, 1, 1), "one_channel": (3, 1, 6, 4)}.get(layout, (3, 5, 6, 4))
    values = torch.randn(*shape, generator=generator, dtype=dtype)
    if shape[1] > 1:
        values[1, 2] = 0.75  # a constant channel: (v - min) = 0 everywhere
    if layout == "channels_last":
        values = values.contiguous(memory_format=torch.channels_last)
    elif layout == "permuted":
        values = values.permute(0, 1, 3, 2)  # [3, 5, 4, 6], neither layout
    elif layout == "sliced":
        values = torch.randn(3, 10, 6, 4, generator=generator, dtype=dtype).contiguous(
            memory_format=torch.channels_last
        )[:, ::2]
    scale = None
    if with_scale:
        scale = torch.randn(values.shape[1], generator=generator, dtype=dtype)
        if values.shape[1] > 1:
            scale[0] = 0.0  # a bias of 0: a zero term
    got = _scaled_channel_sum(values, scale)
    expected = _channel_sum_reference(values, scale)
    assert got.shape == expected.shape == (values.shape[0], 1, *values.shape[2:])
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)
    if layout != "one_pixel":  # one pixel per channel: every term is 0 (v - min)
        assert expected.abs().max() > 0.5  # not a sum of zeros


@pytest.mark.parametrize("pixels, channels", [(12544, 16), (3136, 24), (196, 672), (49, 1280), (50, 3), (7, 5), (1, 4)])
def test_the_folded_reduction_over_the_pixels_is_each_channels_own_minimum_and_maximum(pixels, channels):
    """``_over_pixels`` folds pixels into longer rows (a view) before reducing: it must still
    give each image's and each channel's own extreme. Each channel is offset by a different
    amount, so a fold that mixed channels or images would return another channel's value."""
    from benchmark.methods.cam.fullgrad_device import _over_pixels

    generator = torch.Generator().manual_seed(3)
    flat = torch.rand(2, pixels, channels, generator=generator)
    flat = flat + 10 * torch.arange(channels).view(1, 1, channels) + 1e5 * torch.arange(2).view(2, 1, 1)
    for reduce in (torch.amin, torch.amax):
        got = _over_pixels(flat, reduce)
        assert got.shape == (2, 1, channels)
        assert torch.equal(got, reduce(flat, dim=1, keepdim=True))
        by_loop = torch.tensor([[float(reduce(flat[b, :, c])) for c in range(channels)] for b in range(2)])
        assert torch.equal(got[:, 0], by_loop.to(got.dtype))


@pytest.mark.parametrize("execution", ["eager", "channels_last", "compiled", "compiled graph"])
def test_device_fullgrad_equals_grad_cam_where_both_read_the_same_layers(execution, monkeypatch):
    """The in-place ReLU after each BatchNorm must not change the gradient read at it (dy/dz);
    under ``channels_last`` (the fast executions) the gradients arrive in that layout; under
    ``compiled`` the layers' terms go through the C++ term (:mod:`methods.cam.fullgrad_kernel`), and
    with that one unavailable ("compiled graph") through the compiled graph."""
    from benchmark.methods.cam.fullgrad_kernel import KernelTerm
    from benchmark.models.execution import apply_execution

    if execution == "compiled graph":
        monkeypatch.setattr(KernelTerm, "covers", lambda self, values: False)
        execution = "compiled"
        kernel = "not used"
    else:
        kernel = "C++" if execution == "compiled" else None

    model = _wrap(_randomized_batchnorms(_ConvBatchNormNet(), seed=1))
    apply_execution(model.net, execution)
    model.execution = execution
    images = _images(batch=3, size=16, seed=3)
    classes = torch.tensor([0, 2, 4])
    assert len(bias_layers(model.net)) == len(grad_cam_bias_layers(model.net)) == 3
    expected = _fullgrad(model, images, classes, "grad-cam")
    method = get_method("fullgrad")(model, FullGradConfig(backend="device"))
    got = method.explain(images, classes)
    assert (got - expected).abs().max() < 1e-5
    assert expected.amax() == 1.0 and expected.std() > 0.05
    facts = method.execution_facts()
    assert facts.get("fullgrad_kernel") == kernel
    assert facts.get("fullgrad_term") == (
        None if execution != "compiled" else "compiled" if kernel == "not used" else "not used"
    )


def _gradient_like(shape, layout: str, seed: int) -> torch.Tensor:
    values = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    values[0, 1] = 0.25  # a constant channel: (v - min) = 0 everywhere
    return values.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else values


@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_the_compiled_term_is_the_eager_terms_to_the_order_of_its_sum(layout):
    """The compiled graph of a layer's term (the ``compiled`` execution) against the eager term
    and the formula, in both layouts and at several shapes (one graph serves them: dynamic
    shapes), to :func:`tests.support.helpers.layer_term_tolerance` (the arithmetic's bound; a fixed 2e-6
    was two spacings at 12, and Inductor's vector code sums in the CPU's order). Measured: at
    most 4.8e-7 apart (maps of about 1 per channel, summed over up to 12 channels); a bias of 0
    gives a zero term in both."""
    from benchmark.methods.cam.fullgrad_device import CompiledTerm, _scaled_channel_sum

    notes: list[str] = []
    term = CompiledTerm(note=notes.append, kernel=False)  # the graph alone (the C++ term: test_fullgrad_kernel)
    for index, shape in enumerate([(3, 5, 6, 4), (2, 12, 7, 7), (4, 3, 16, 16)]):
        values = _gradient_like(shape, layout, seed=index)
        scale = torch.randn(shape[1], generator=torch.Generator().manual_seed(10 + index))
        scale[2] = 0.0
        got = term(values, scale)
        assert got is not None and got.shape == (shape[0], 1, *shape[2:])
        expected = _scaled_channel_sum(values, scale)
        bound = layer_term_tolerance(shape[1])
        torch.testing.assert_close(got, expected, **bound)
        torch.testing.assert_close(got, _channel_sum_reference(values, scale), **bound)
        assert expected.abs().max() > 0.5
        torch.testing.assert_close(term(values, None), _scaled_channel_sum(values, None), **bound)
    assert term.failure is None and term.compile_s is not None
    assert term.describe() == {"fullgrad_term": "compiled", "fullgrad_term_compile_s": term.compile_s}
    assert notes[0].startswith("compiling FullGrad's layer term") and notes[-1].startswith("compiled FullGrad")


def test_the_compiled_term_leaves_sizes_of_one_and_float64_to_the_eager_term():
    """One image, one channel or one pixel would make the compiler specialise (and compile
    again); float64 is not the graph's dtype: those terms return None (the eager term runs)."""
    from benchmark.methods.cam.fullgrad_device import CompiledTerm

    term = CompiledTerm(note=lambda message: None, kernel=False)
    for shape in [(1, 4, 5, 5), (2, 1, 5, 5), (2, 4, 1, 1)]:
        assert term(torch.rand(*shape), None) is None
    assert term(torch.rand(2, 4, 5, 5, dtype=torch.float64), None) is None
    assert term.describe() == {"fullgrad_term": "not used"}


def compiled_and_channels_last_maps():
    """``(method, maps, maps under channels_last)`` of device FullGrad on a BatchNorm network run
    under ``compiled`` (its terms through the C++ function or the compiled graph) and then under
    ``channels_last`` (the eager term), on the same images."""
    from benchmark.models.execution import apply_execution

    net = _randomized_batchnorms(_ConvBatchNormNet(), seed=1)
    model = _wrap(apply_execution(net, "compiled"))
    model.execution = "compiled"
    images, classes = _images(batch=3, size=16, seed=3), torch.tensor([0, 2, 4])
    method = get_method("fullgrad")(model, FullGradConfig(backend="device"))
    got = method.explain(images, classes)
    model.execution = "channels_last"
    return method, got, get_method("fullgrad")(model, FullGradConfig(backend="device")).explain(images, classes)


def test_after_prepare_a_runs_fullgrad_compiles_nothing(monkeypatch):
    """``prepare`` (before a run's first map is timed) compiles the term's graph for the
    gradients a run hands it: without grad mode (a run's test loop), in both layouts, at other
    batch sizes, with the compiled graph for every layer (the C++ function set aside), the maps
    that follow compile no graph."""
    from torch._dynamo.utils import counters

    from benchmark.methods.cam import fullgrad_kernel
    from benchmark.models.execution import apply_execution

    monkeypatch.setattr(fullgrad_kernel.KernelTerm, "covers", lambda self, values: False)
    torch._dynamo.reset()  # the graphs earlier tests compiled would serve without prepare
    net = _randomized_batchnorms(_ConvBatchNormNet(), seed=1)
    model = _wrap(apply_execution(net, "compiled"))
    model.execution = "compiled"
    method = get_method("fullgrad")(model, FullGradConfig(backend="device"))
    images = _images(batch=3, size=16, seed=3)
    with torch.no_grad():
        method.prepare(images)
        graphs = counters["stats"]["unique_graphs"]
        for batch in (3, 2):
            maps = method.explain(images[:batch], torch.tensor([0, 2, 4])[:batch])
            assert maps.shape == (batch, 16, 16) and torch.isfinite(maps).all()
        nchw = images.contiguous()  # a gradient in the other layout
        assert method._compiled_term.graph_term(nchw, None) is not None
        assert method._compiled_term.graph_term(nchw.contiguous(memory_format=torch.channels_last), None) is not None
    assert counters["stats"]["unique_graphs"] == graphs
    assert method.execution_facts()["fullgrad_term"] == "compiled"


def test_a_term_that_cannot_be_compiled_falls_back_with_one_line(monkeypatch):
    """A compiler failure: one line naming it, the eager term for that layer and every later
    one, the same maps as under ``channels_last``, and results.json says so."""
    from benchmark.methods.cam import fullgrad_device

    def refuses(flat, factor):
        raise RuntimeError("backend refused\nsecond line")

    monkeypatch.setitem(fullgrad_device._COMPILED_SUM, "sum", refuses)
    monkeypatch.setattr(fullgrad_device.KernelTerm, "covers", lambda self, values: False)  # the graph's path
    notes: list[str] = []
    monkeypatch.setattr("benchmark.core.notes.note", notes.append)
    method, got, expected = compiled_and_channels_last_maps()
    failures = [n for n in notes if "cannot be compiled" in n]
    assert failures == ["FullGrad's layer term cannot be compiled (RuntimeError: backend refused); it runs uncompiled"]
    assert method.execution_facts()["fullgrad_term"] == "failed to compile, ran eager"
    assert torch.equal(got, expected)


def test_device_fullgrad_equals_grad_cam_on_a_resnet_whose_shortcut_shares_a_gradient():
    """In a ResNet's downsampling block, ``bn2(..) + downsample(x)`` hands one gradient tensor to
    both BatchNorms: the device path must not change it in place for one and read it for the other."""
    torchvision = pytest.importorskip("torchvision")
    from benchmark.models.registry import NormalizedClassifier

    torch.manual_seed(0)
    net = _randomized_batchnorms(torchvision.models.resnet18(num_classes=10), seed=2)
    model = NormalizedClassifier(net, (0.5,) * 3, (0.25,) * 3).eval().requires_grad_(False)
    images = _images(batch=2, size=64, seed=5)
    classes = torch.tensor([1, 7])
    assert len(bias_layers(net)) == len(grad_cam_bias_layers(net)) == 20
    expected = _fullgrad(model, images, classes, "grad-cam")
    got = _fullgrad(model, images, classes, "device")
    assert (got - expected).abs().max() < 1e-5


def test_a_batchnorm_act_is_read_before_its_activation():
    """timm's BatchNormAct2d (BN, dropout, activation in one module) gives the map of the same
    network written as BatchNorm2d + ReLU; grad-cam skips it (its type is not BatchNorm2d)."""
    from timm.layers.norm_act import BatchNormAct2d

    plain = _randomized_batchnorms(_ConvBatchNormNet(), seed=4)
    fused = _ConvBatchNormNet()
    fused.load_state_dict(plain.state_dict())
    for index in (1, 4):
        module = BatchNormAct2d(plain.features[index].num_features, act_layer=nn.ReLU)
        module.load_state_dict(plain.features[index].state_dict())
        fused.features[index], fused.features[index + 1] = module, nn.Identity()
    images = _images(batch=2, size=16, seed=6)
    classes = torch.tensor([1, 3])
    plain_model, fused_model = _wrap(plain), _wrap(fused.eval())
    assert len(bias_layers(fused)) == 3 and len(grad_cam_bias_layers(fused)) == 1  # the first conv only
    expected = _fullgrad(plain_model, images, classes, "device")
    got = _fullgrad(fused_model, images, classes, "device")
    assert (got - expected).abs().max() < 1e-5
    assert (_fullgrad(fused_model, images, classes, "grad-cam") - expected).abs().max() > 1e-2


def test_fullgrad_backend_is_checked_and_recorded():
    from benchmark.core.errors import BenchmarkError

    model = _wrap(_ConvBatchNormNet().eval())
    with pytest.raises(BenchmarkError, match="--method.backend 'numpy' is unknown"):
        FullGradConfig(backend="numpy").validate()
    assert get_method("fullgrad")(model).describe()["backend"] == "device"
    described = get_method("fullgrad")(model, FullGradConfig(backend="grad-cam")).describe()
    assert described["backend"] == "grad-cam" and described["layers"].endswith("(3 layers)")


@pytest.mark.parametrize("name", ["fullgrad", "ablationcam"])
def test_the_new_device_paths_run_a_float64_model(name):
    """``--precision 64``: the model and images are float64; the device paths keep them so (they
    do not cast the input to float32) and give grad-cam's maps."""
    model = _wrap(_randomized_batchnorms(_ConvBatchNormNet(), seed=5)).double()
    images = _images(batch=2, size=16, seed=7).double()
    classes = torch.tensor([1, 4])
    cls = get_method(name)
    expected = cls(model, cls.config_class(backend="grad-cam")).explain(images, classes)
    got = cls(model, cls.config_class(backend="device")).explain(images, classes)
    assert got.dtype == expected.dtype == torch.float64
    assert (got - expected).abs().max() < 1e-5


def test_memory_format_of_names_the_layout_a_tensor_lies_in():
    """NHWC strides read as channels_last; a tensor contiguous both ways (one channel), a
    permuted one and a 3-d one read as contiguous_format, which the callers copy into or keep."""
    from benchmark.core.tensors import memory_format_of

    x = torch.rand(2, 3, 4, 5)
    assert memory_format_of(x) == torch.contiguous_format
    assert memory_format_of(x.contiguous(memory_format=torch.channels_last)) == torch.channels_last
    assert (
        memory_format_of(torch.rand(2, 1, 4, 5).contiguous(memory_format=torch.channels_last))
        == torch.contiguous_format
    )
    assert memory_format_of(x.permute(0, 1, 3, 2)) == torch.contiguous_format
    assert memory_format_of(torch.rand(3, 4, 5)) == torch.contiguous_format
