"""The device-side CAMs (methods/cam/device.py) equal grad-cam's maps to 1e-5 (Ablation-CAM's,
whose weights amplify the logits' rounding, to 1e-4): on a tiny CNN, on one whose target layer
is followed by an in-place ReLU, on a GPU when there is one, and on EfficientNet-Lite0 (1280
channels) to the bound its arithmetic allows (``LITE0_TOLERANCE``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.methods.cam import CAM_METHODS, DEVICE_METHODS, BatchedCAMConfig, CAMConfig
from tests.methods.test_cam import _images, _tiny, _top1, _wrap
from tests.support.helpers import FLOAT32_EPS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _maps(name: str, model, images, classes, backend: str, sample_ids=None) -> torch.Tensor:
    method = CAM_METHODS[name](model, CAM_METHODS[name].config_class(backend=backend), seed=3)
    method.current_sample_ids = sample_ids
    return method.explain(images, classes)


@pytest.mark.parametrize("name", DEVICE_METHODS)
def test_device_cams_equal_grad_cam_on_a_tiny_cnn(name):
    model = _tiny(seed=2)
    images = _images(batch=5, size=32, seed=4)
    classes = torch.tensor([0, 1, 2, 3, 4])  # not only the top-1: every class path is exercised
    ids = torch.tensor([7, 3, 11, 0, 5])
    expected = _maps(name, model, images, classes, "grad-cam", ids)
    got = _maps(name, model, images, classes, "device", ids)
    assert got.shape == expected.shape == (5, 32, 32)
    assert got.dtype == expected.dtype == torch.float32
    assert (got - expected).abs().max() < 1e-5
    assert expected.amax() == 1.0  # not a trivially equal pair of zero maps


class _InPlaceAfterTarget(nn.Module):
    """DenseNet's pattern: the target layer's output is changed in place right after it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.norm = nn.BatchNorm2d(6).eval()
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        features = self.norm(self.conv(x))
        features = torch.relu_(features)
        return self.fc(features.mean(dim=(2, 3)))


@pytest.mark.parametrize("name", ["gradcam", "hirescam"])
def test_device_cams_keep_the_activation_an_in_place_op_would_overwrite(name):
    model = _wrap(_InPlaceAfterTarget())
    images = _images(batch=3, size=16, seed=6)
    classes = _top1(model, images)
    expected = CAM_METHODS[name](model, CAMConfig(backend="grad-cam", target_layer="norm")).explain(images, classes)
    got = CAM_METHODS[name](model, CAMConfig(backend="device", target_layer="norm")).explain(images, classes)
    assert (got - expected).abs().max() < 1e-5


#: The Lite0 maps' bound, from the arithmetic rather than one CPU's rounding. Each backend sums
#: ``cam = sum_k w_k A^k`` over the target layer's C = 1280 channels in its own order, within
#: ``(C - 1) u * sum_k |w_k A^k|`` of the exact sum; min-max scaling divides by the map's range, and
#: on these three photos ``sum_k |w_k A^k|`` is at most 3.7 times that range (Grad-CAM 2.7,
#: Grad-CAM++ 1.1, XGradCAM 3.7: a property of the weights and images, not of the kernels). So the
#: two maps are within ``2 * C * u * 4`` (1.2e-3). A wrong formula moves them by tenths. Measured:
#: at most 1.5e-5 (XGradCAM, in the whole suite on an AMD EPYC; 1e-5 held only when run alone).
LITE0_TOLERANCE = 2 * 1280 * FLOAT32_EPS * 4


@pytest.mark.slow
def test_device_cams_equal_grad_cam_on_efficientnet_lite0():
    from benchmark.datamodules import ImageNetDataModule
    from benchmark.models import build_classifier

    model = build_classifier("efficientnet_lite0")
    images = next(iter(ImageNetDataModule(limit=3, batch_size=3).test_dataloader()))["image"]
    classes = _top1(model, images)
    # FullGrad: grad-cam reads none of Lite0's bias layers (tests/methods/test_cam_grad_cam_equality.py)
    # grad-cam's Score-CAM and Ablation-CAM make 1,282 passes per image: one image at 112 x 112
    # (a quarter of the pixels; conv_head 4 x 4), the others the 3 images at 224
    small = torch.nn.functional.interpolate(images[:1], size=(112, 112), mode="bilinear", align_corners=False)
    for name in [m for m in DEVICE_METHODS if m != "fullgrad"]:
        count = 1 if name in ("scorecam", "smoothgradcampp", "ablationcam") else 3
        inputs = small if name in ("scorecam", "ablationcam") else images[:count]
        expected = _maps(name, model, inputs, classes[:count], "grad-cam", torch.arange(count))
        got = _maps(name, model, inputs, classes[:count], "device", torch.arange(count))
        assert (got - expected).abs().max() < LITE0_TOLERANCE, name
        assert expected.amax() > 0.99 and expected.std() > 0.01, name  # a map, not a constant


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_device_cams_on_the_gpu_equal_grad_cam_on_the_cpu():
    model = _tiny(seed=2)
    images = _images(batch=5, size=32, seed=4)
    classes = _top1(model, images)
    for name in DEVICE_METHODS:
        expected = _maps(name, model, images, classes, "grad-cam", torch.arange(5))
        got = _maps(name, model.cuda(), images.cuda(), classes.cuda(), "device", torch.arange(5))
        model.cpu()
        assert got.is_cuda and (got.cpu() - expected).abs().max() < 1e-5, name


def test_auto_uses_the_device_cams_where_they_exist_and_grad_cam_elsewhere():
    assert CAM_METHODS["gradcam"](_tiny(), CAMConfig()).uses_device_backend()
    assert CAM_METHODS["gradcam"](_tiny(), CAMConfig()).describe()["backend"] == "device"
    assert not CAM_METHODS["gradcam"](_tiny(), CAMConfig(backend="grad-cam")).uses_device_backend()
    assert CAM_METHODS["scorecam"](_tiny(), CAM_METHODS["scorecam"].config_class()).uses_device_backend()
    assert CAM_METHODS["ablationcam"](_tiny(), CAM_METHODS["ablationcam"].config_class()).uses_device_backend()
    assert not CAM_METHODS["gradcamelementwise"](_tiny(), CAMConfig()).uses_device_backend()
    assert "backend" not in CAM_METHODS["gradcamelementwise"](_tiny(), CAMConfig()).describe()


def test_device_backend_for_a_method_without_one_is_refused():
    with pytest.raises(BenchmarkError, match="--method.backend device is available for gradcam"):
        CAM_METHODS["gradcamelementwise"](_tiny(), CAMConfig(backend="device"))
    with pytest.raises(BenchmarkError, match="--method.backend 'gpu' is unknown"):
        CAMConfig(backend="gpu").validate()


def test_the_backward_of_a_device_cam_stops_at_the_target_layer():
    """The graph starts at the layer's output: nothing before the layer is kept for autograd (the
    input does not require grad), so the backward never reaches the layers before it."""
    from benchmark.methods.cam.device import layer_activations

    model = _tiny()
    reached = []
    model.net.features[0].register_full_backward_hook(lambda m, gi, go: reached.append("first conv"))
    seen_inputs = []
    model.net.features[0].register_forward_hook(lambda m, a, out: seen_inputs.append(a[0].requires_grad))
    images = torch.rand(2, 3, 32, 32)
    activations, gradients = layer_activations(model, model.net.features[2], images, torch.tensor([0, 1]))
    assert reached == [] and seen_inputs == [False]
    assert gradients is not None and gradients.shape == activations.shape and gradients.abs().sum() > 0


# -- Ablation-CAM: the copies enter after the target layer ------------------------------------


def test_ablation_values_are_grad_cams_by_hand():
    """grad-cam's AblationLayer writes 0 while the chunk's minimum is 0, else minimum - 1e7,
    taking the minimum again before each copy. In float32 (spacing 1 at 1e7, 2 at 2e7):
    -2.5 - 1e7 = -10000002.5 rounds to -10000002 (to even), then -20000002, -30000002."""
    from benchmark.methods.cam.device_ablation import ablation_values

    assert ablation_values(torch.tensor(0.0), 3).tolist() == [0.0, 0.0, 0.0]
    got = ablation_values(torch.tensor(-2.5), 3)
    assert got.dtype == torch.float32 and got.tolist() == [-10000002.0, -20000002.0, -30000002.0]
    # all positive is not 0: 0.5 - 1e7 = -9999999.5 rounds to -10000000 (to even), then -20000000
    assert ablation_values(torch.tensor(0.5), 2).tolist() == [-10000000.0, -20000000.0]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_ablated_copies_are_the_activations_with_one_channel_set_in_their_layout(layout):
    """Copy ``(b, i)`` is image b's activations with channel ``channels[i]`` set to
    ``values[b, i]``, image-major, in the activations' memory format (checked by hand)."""
    from benchmark.methods.cam.device_ablation import ablated_copies

    activations = torch.randn(2, 5, 3, 4).contiguous(memory_format=layout)
    channels = torch.tensor([3, 0, 4])
    values = torch.tensor([[-1.0, -2.0, -3.0, -9.0], [-4.0, -5.0, -6.0, -9.0]])  # [B, >= n]
    copies = ablated_copies(activations, channels, values)
    assert copies.shape == (6, 5, 3, 4) and copies.is_contiguous(memory_format=layout)
    for b in range(2):
        for i, channel in enumerate(channels.tolist()):
            expected = activations[b].clone()
            expected[channel] = values[b, i]
            assert torch.equal(copies[b * 3 + i], expected), (b, i)


class _ResidualAroundTarget(nn.Module):
    """``relu(conv2(h) + h)``: the skip connection is one image broadcast against the copies."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(8)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        return self.fc(torch.relu(self.conv2(h) + h).mean(dim=(2, 3)))


class _ConcatAfterTarget(nn.Module):
    """DenseNet's pattern: ``cat([conv2(h), h])`` cannot take one image for the copies."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(9)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.fc = nn.Linear(10, 5)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        return self.fc(torch.cat([torch.relu(self.conv2(h)), h], dim=1).mean(dim=(2, 3)))


@pytest.mark.parametrize(
    "net, layer, size, entering",
    [
        (lambda: TinyForAblation(), "features.3", 40, "the batch"),  # after a ReLU: minimum 0
        (_ResidualAroundTarget, "conv2", 40, "one image"),  # a conv's output: negative somewhere
        (_ResidualAroundTarget, "conv2", 16, "one image, the stand-in disagreeing"),
        (_ConcatAfterTarget, "conv2", 40, "the copies"),
    ],
)
@pytest.mark.parametrize("execution", ["eager", "channels_last"])
def test_ablation_cam_equals_grad_cam_whatever_enters_the_model(net, layer, size, entering, execution):
    """The copies follow the batch after the layer, and after the first chunk one 32 x 32 image
    of zeros enters for the batch; with a skip connection around the layer one image at a time (the
    stand-in fails there, or, as large as the images, gives other scores); with a concatenation
    they enter as images (grad-cam's way). Under the fast executions the copies' passes stop at
    the logit head and compute the class's logit alone: the head runs once, for the images."""
    from benchmark.models.counting import counting_passes

    model = _wrap(net())
    images = _images(batch=3, size=size, seed=12)
    classes = torch.tensor([0, 3, 1])
    seen = []  # (images, height) of every forward of the backbone
    model.net.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[::2])))
    config = BatchedCAMConfig(target_layer=layer, chunk_size=4)
    expected = CAM_METHODS["ablationcam"](model, dataclasses.replace(config, backend="grad-cam")).explain(
        images, classes
    )
    seen.clear()
    model.execution = execution  # the head's shortcut follows the execution (the weights' layout does not matter here)
    head_calls = []
    model.net.fc.register_forward_hook(lambda module, args, output: head_calls.append(output.shape[0]))
    with counting_passes(model.net) as count:
        got = CAM_METHODS["ablationcam"](model, dataclasses.replace(config, backend="device")).explain(images, classes)
    # From the arithmetic: the weights w_k = (y - y_k) / y take the difference of two float32
    # logits, each rounded to about u S (u = 2^-24, S = sum |w_j f_j| + |b|, here 1.0 to 3.9
    # times |y|), and the map sums w_k A_k over the channels and is scaled by its range, so one
    # rounding of every y_k moves the map by up to u (S / |y|) max_p sum_k |A_k| / range. In
    # float64 on these images that is 9.2e-5 for the concatenation (its third image: a small
    # range; 1.5e-5 on its others) and at most 4e-6 on the other nets. Measured: 5.5e-6 on AMD
    # EPYC (AVX-512), 7.3e-6 there with ATen's AVX2 and default kernels (oneDNN and MKL at AVX2),
    # 1.74e-5 on an Intel Xeon, where 1e-5 failed: the roundings do not all align. The bound is
    # that one worst-case rounding, 1e-4.
    assert (got - expected).abs().max() < 1e-4
    if execution == "eager":  # the images, then the copies through the whole head
        assert head_calls[0] == 3 and len(head_calls) > 1
    else:
        assert head_calls == [3]
    assert expected.amax() == 1.0 and (expected > 0).float().mean() < 1  # a map, not a constant
    # 6 channels, 4 per pass: 2 chunks
    if entering == "the batch":  # the batch, its first chunk with the batch and the stand-in, then the stand-in
        assert seen == [(3, 40), (3, 40), (1, 32), (1, 32)]
        assert (count.forward_images, count.stand_in_forward_images) == (6, 2)
    elif entering == "one image":  # the batch is tried once, then one image per chunk: the stand-in fails
        assert seen == [(3, 40), (3, 40), (1, 40), (1, 32)] + [(1, 40)] * 5
        assert (count.forward_images, count.stand_in_forward_images) == (3 + 3 + 6, 1)
    elif entering == "one image, the stand-in disagreeing":  # zeros of the images' size: no error, other scores
        assert seen == [(3, 16), (3, 16), (1, 16), (1, 16)] + [(1, 16)] * 5
    else:  # the batch and one image are tried, then the copies as grad-cam makes them (4, then 2)
        assert seen[:3] == [(3, 40), (3, 40), (1, 40)] and sorted({n for n, _ in seen[3:]}) == [2, 4]
        assert count.stand_in_forward_images == 0


@pytest.mark.slow
def test_ablation_cams_stand_in_gives_the_images_maps_bit_for_bit_on_efficientnet_lite0(monkeypatch):
    """On EfficientNet-Lite0 (``conv_head``: only its BatchNorm, the pooling and the classifier
    follow) the stand-in enters for every chunk after the first, and the maps are those of the
    images entering, bit for bit; with a stand-in that cannot enter (0 x 0 pixels) the images
    enter for every chunk."""
    import benchmark.methods.cam.device_ablation as perturbation
    from benchmark.datamodules import ImageNetDataModule
    from benchmark.models import build_classifier
    from benchmark.models.counting import counting_passes

    model = build_classifier("efficientnet_lite0", execution="channels_last")
    images = next(iter(ImageNetDataModule(limit=3, batch_size=3).test_dataloader()))["image"]
    classes = _top1(model, images)
    layer = model.net.conv_head
    runs, default = {}, perturbation.STAND_IN_SIDE
    for side in (default, 0):
        monkeypatch.setattr(perturbation, "STAND_IN_SIDE", side)
        with counting_passes(model.net) as count:
            maps = perturbation.ablation_cam(model, model.net, layer, images, classes, chunk=128)
        runs[side] = maps, count
    (with_stand_in, count), (without, plain) = runs[default], runs[0]
    chunks = 1280 // 128
    assert (count.forward_images, count.stand_in_forward_images) == (3 * 2, chunks)
    assert (plain.forward_images, plain.stand_in_forward_images) == (3 * (1 + chunks), 1)  # its one failed try
    assert torch.equal(with_stand_in, without)
    assert abs(with_stand_in.amax() - 1.0) < 1e-6 and with_stand_in.std() > 0.05  # maps, not constants
    # the class's logit alone at the head (the fast executions): y^c and every y^c_k from the same
    # row products, so their differences keep the Linear's to float32 rounding, amplified as
    # every execution's is by w_k = (y^c - y^c_k) / y^c. Measured on these 3 images at chunk 128:
    # 7.7e-5 from these maps and 1.05e-4 from eager's (channels_last's full head from eager's:
    # 3.9e-5); on 4 and 8 images at chunk 64: 6.9e-6, 5.4e-6 (and 9.5e-6). The test allows 3e-4.
    monkeypatch.setattr(perturbation, "STAND_IN_SIDE", default)
    class_only = perturbation.ablation_cam(model, model.net, layer, images, classes, chunk=128, class_logits_only=True)
    eager = build_classifier("efficientnet_lite0")
    eager_maps = perturbation.ablation_cam(eager, eager.net, eager.net.conv_head, images, classes, chunk=128)
    assert (class_only - with_stand_in).abs().max() < 3e-4
    assert (class_only - eager_maps).abs().max() < 3e-4
    assert (with_stand_in - eager_maps).abs().max() < 3e-4
    assert not torch.equal(class_only, with_stand_in)  # the shortcut ran


def test_the_logit_head_is_the_linear_whose_output_is_the_logits():
    """The head's shortcut needs the logits to be one ``nn.Linear``'s output, untouched: found on
    a plain net (on EfficientNet-Lite0, timm's ``classifier``: the Lite0 test above shows the
    shortcut ran); not where the logits are scaled after it, where the Linear runs twice, or
    where a softmax follows it."""
    from benchmark.methods.cam.device_ablation import logit_head

    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    net = TinyForAblation().eval()
    logits, head, features = logit_head(net, lambda: net(images))
    assert head is net.fc and torch.equal(logits, net(images)) and features.shape == (2, 6)

    class Scaled(TinyForAblation):
        def forward(self, x):
            return 2 * super().forward(x)

    class Twice(TinyForAblation):
        def forward(self, x):
            features = self.features(x).mean(dim=(2, 3))
            return self.fc(features) + self.fc(features)

    class SoftmaxAfter(TinyForAblation):
        def forward(self, x):
            return super().forward(x).softmax(dim=1)

    for other in (Scaled(), Twice(), SoftmaxAfter()):
        assert logit_head(other, lambda other=other: other(images))[1] is None, type(other).__name__


def test_class_logits_are_the_heads_logits_of_the_classes_by_hand():
    """``w_c . x + b_c`` per row, against the numbers by hand and the Linear's own output."""
    from benchmark.methods.cam.device_ablation import class_logits

    head = nn.Linear(2, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 0.5], [3.0, 0.0]]))
        head.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    features = torch.tensor([[1.0, 1.0], [2.0, -2.0], [0.0, 4.0]])
    classes = torch.tensor([0, 1, 1])
    # row 0, class 0: 1 + 2 + 0.5; row 1, class 1: -2 - 1 - 1; row 2, class 1: 0 + 2 - 1
    assert class_logits(head, features, classes).tolist() == [3.5, -4.0, 1.0]
    with torch.no_grad():
        assert torch.equal(class_logits(head, features, classes), head(features).gather(1, classes.view(-1, 1))[:, 0])
    head.bias = None
    assert class_logits(head, features, classes).tolist() == [3.0, -3.0, 2.0]


class TinyForAblation(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(10)
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU()
        )
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_ablation_cam_on_a_vision_transformer_stays_with_grad_cam():
    """grad-cam ablates tokens with its own AblationLayerVit: auto keeps it, device refuses."""
    timm = pytest.importorskip("timm")
    from benchmark.models.registry import NormalizedClassifier

    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=32, patch_size=8)
    model = NormalizedClassifier(net.eval(), (0.5,) * 3, (0.5,) * 3, name="vit")
    assert not CAM_METHODS["ablationcam"](model, BatchedCAMConfig()).uses_device_backend()
    with pytest.raises(BenchmarkError, match="convolutional layers only.*--method.backend grad-cam or auto"):
        CAM_METHODS["ablationcam"](model, BatchedCAMConfig(backend="device"))


def _projection_by_the_full_svd(activations: torch.Tensor) -> torch.Tensor:
    batch, _, height, width = activations.shape
    pixels = activations.flatten(2).transpose(1, 2)
    pixels = pixels - pixels.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(pixels, full_matrices=False)
    return (pixels @ vh[:, 0, :, None]).view(batch, height, width)


def _per_matrix_up_to_sign(got: torch.Tensor, expected: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The largest error of ``got`` against ``expected`` (``[B, h, w]``), each map against its
    own largest value and taken with the sign that fits it, and whether the signs agreed."""
    got, expected = got.flatten(1), expected.flatten(1)
    same = (got * expected).sum(dim=1) > 0
    signed = torch.where(same[:, None], expected, -expected)
    return ((got - signed).abs().amax(dim=1) / expected.abs().amax(dim=1)).max().item(), same


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels, side", [(1280, 7), (320, 4), (4096, 14), (960, 7), (96, 7)])
def test_eigen_projection_of_wide_activations_through_qr_is_the_full_svds_map(dtype, channels, side, monkeypatch):
    """Eigen-CAM's projection of activations with at least 20x as many channels as pixels goes
    through a QR of the small side; it is the full SVD's map ``s_1 u_1``, up to its sign, on
    every matrix; narrower activations (960 or 96 channels at 7x7) take the full SVD itself.
    The sign is the factorization's (on random matrices the two routes gave opposite signs for
    1 of 24 matrices of 196 x 4096 at one thread, 2026-12-03, and MKL's and numpy's full SVDs
    disagree on 17-42% of them): on real activations it is pinned against numpy's below. In
    float32 the maps of these random matrices (small gaps between their singular values) came
    within 2.2e-4 of each other, in float64 within 6e-13."""
    from benchmark.methods.cam.device import WIDE_SVD_RATIO, eigen_projection

    generator = torch.Generator().manual_seed(channels + side)
    activations = (torch.randn(24, channels, side, side, generator=generator, dtype=dtype) * 2 + 0.5).clamp(0, 6)
    factorizations = []
    real_qr = torch.linalg.qr
    monkeypatch.setattr(torch.linalg, "qr", lambda *a, **k: factorizations.append(1) or real_qr(*a, **k))
    got = eigen_projection(activations)
    assert bool(factorizations) == (channels >= WIDE_SVD_RATIO * side * side)
    expected = _projection_by_the_full_svd(activations)
    error, _ = _per_matrix_up_to_sign(got, expected)
    assert error < (1e-3 if dtype == torch.float32 else 1e-11)
    assert expected.abs().amax() > 1  # not a pair of zero maps


@pytest.mark.parametrize("channels", [3, 100])  # 4 pixels: the full SVD, then the QR route
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eigen_projection_is_the_first_singular_pair_by_hand(dtype, channels):
    """A centred rank-one matrix ``A = u v^T`` (pixels x channels, ``|v| = 1``): its first right
    singular vector is ``+-v``, so the projection ``A v_1`` is ``+-u`` (the sign is the SVD's),
    and a second image of the batch, ``2 A``, projects to twice the first's map, sign included
    (the same factorization, every step scaled exactly by 2)."""
    from benchmark.methods.cam.device import eigen_projection

    u = torch.tensor([3.0, -1.0, 0.5, -2.5], dtype=dtype)  # sums to 0: already centred
    v = torch.linspace(1.0, 2.0, channels, dtype=dtype)
    v = v / v.norm()
    pixels = u[:, None] * v[None, :]  # [h*w = 4, C]
    activations = torch.stack([pixels, 2 * pixels]).transpose(1, 2).reshape(2, channels, 2, 2)  # [B, C, h, w]
    got = eigen_projection(activations)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    sign = torch.sign(got[0].flatten()[0] / u[0])
    assert (got[0].flatten() - sign * u).abs().max() < tolerance
    assert (got[1] - 2 * got[0]).abs().max() < 2 * tolerance


@pytest.mark.slow
def test_eigen_projection_on_the_sample_images_is_numpys_sign_included():
    """On EfficientNet-Lite0's ``conv_head`` activations of the 200 sample images (49 x 1280:
    the QR route) the projection is the one numpy's SVD gives (grad-cam's
    ``get_2d_projection``), sign included, on every image, at one thread and at two."""
    import numpy as np

    from benchmark.datamodules import ImageNetDataModule
    from benchmark.methods.cam.device import eigen_projection
    from benchmark.models import build_classifier
    from tests.support.helpers import shared_sample_dir

    model = build_classifier("efficientnet_lite0")
    kept = []
    model.net.conv_head.register_forward_hook(lambda module, args, output: kept.append(output.detach()))
    datamodule = ImageNetDataModule(data=str(shared_sample_dir()), per_class=None, batch_size=50)
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            model(batch["image"])
    activations = torch.cat(kept)
    assert activations.shape == (200, 1280, 7, 7)
    pixels = activations.flatten(2).transpose(1, 2)
    pixels = (pixels - pixels.mean(dim=1, keepdim=True)).numpy()
    expected = torch.from_numpy(np.stack([m @ np.linalg.svd(m, full_matrices=True)[2][0] for m in pixels]))
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            error, same = _per_matrix_up_to_sign(eigen_projection(activations).flatten(1), expected)
            assert bool(same.all()), f"{int((~same).sum())} of 200 maps with numpy's opposite sign at {count} threads"
            assert error < 1e-4
    finally:
        torch.set_num_threads(threads)
