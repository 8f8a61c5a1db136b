"""Every CAM that goes through the grad-cam wrapper (methods/cam/base.py ``CAM`` with the
grad-cam backend) gives the maps of the ``pytorch_grad_cam`` class called directly, min-max
normalized per image: on the tiny CNN of tests/methods/test_cam.py (several classes, not only the
top-1) and on EfficientNet-Lite0 with its real weights. Plus the ``chunk_size`` wiring of the
batched methods (ScoreCAM, AblationCAM, SESS).

The references are built here from grad-cam's public classes only (never from the helpers
of methods/cam/) and normalized here in numpy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import pytorch_grad_cam
import torch
import torch.nn.functional as F
from pytorch_grad_cam.ablation_layer import AblationLayer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from benchmark.methods import get_method
from benchmark.methods.cam import FullGradConfig
from tests.methods.test_cam import _images, _tiny, _top1

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

#: What the wrapper's ``chunk_size`` defaults to (BatchedCAMConfig); the references use it too.
DEFAULT_CHUNK = 32

#: Methods whose map does not depend on the class (grad-cam ignores the target).
CLASS_AGNOSTIC = {"eigencam", "kpcacam", "fem"}

METHODS = [
    "scorecam",
    "ablationcam",
    "eigencam",
    "eigengradcam",
    "kpcacam",
    "fem",
    "fullgrad",
    "shapleycam",
    "sess",
    "segeigencam",
    "gradcamelementwise",
]

#: Lite0: the per-channel methods (one forward per channel) get blocks.3 (80 channels)
#: instead of the default conv_head (1280 channels).
LITE0_LAYER = {"scorecam": "blocks.3", "ablationcam": "blocks.3"}

TOLERANCE = 1e-5


# -- the references: grad-cam's classes, called directly -------------------------------------


def _reference_cam(name: str, model, layer_path: str | None):
    """The grad-cam object for ``name``, built from the package's public classes."""
    layer = model.net.get_submodule(layer_path) if layer_path is not None else None
    if name == "scorecam":
        cam = pytorch_grad_cam.ScoreCAM(model=model, target_layers=[layer])
        cam.batch_size = DEFAULT_CHUNK  # ScoreCAM reads this attribute (default 16)
        return cam
    if name == "ablationcam":
        # a fresh AblationLayer: grad-cam's default argument is one instance shared by all calls
        return pytorch_grad_cam.AblationCAM(
            model=model, target_layers=[layer], ablation_layer=AblationLayer(), batch_size=DEFAULT_CHUNK
        )
    if name == "fullgrad":
        return pytorch_grad_cam.FullGrad(model=model, target_layers=[])
    if name == "sess":
        # SESS cuts new (detached) patch tensors out of the input, so with frozen weights its
        # GradCAM has nothing to differentiate: the reference runs on an unfrozen copy of the
        # model (same weights), which gives the same gradients w.r.t. the activations.
        unfrozen = copy.deepcopy(model).requires_grad_(True)
        return pytorch_grad_cam.SESS(
            model=unfrozen,
            target_layers=[unfrozen.net.get_submodule(layer_path)],
            base_method=pytorch_grad_cam.GradCAM,
            batch_size=DEFAULT_CHUNK,
        )
    cls = {
        "eigencam": pytorch_grad_cam.EigenCAM,
        "eigengradcam": pytorch_grad_cam.EigenGradCAM,
        "kpcacam": pytorch_grad_cam.KPCA_CAM,
        "fem": pytorch_grad_cam.FEM,
        "shapleycam": pytorch_grad_cam.ShapleyCAM,
        "segeigencam": pytorch_grad_cam.SegEigenCAM,
        "gradcamelementwise": pytorch_grad_cam.GradCAMElementWise,
    }[name]
    return cls(model=model, target_layers=[layer])


def _minmax(maps: np.ndarray) -> np.ndarray:
    """Per image: (m - min) / (max - min); a constant map becomes zeros."""
    flat = maps.reshape(maps.shape[0], -1).astype(np.float64)
    low, high = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    span = high - low
    scaled = np.where(span > 0, (flat - low) / np.where(span > 0, span, 1), 0.0)
    return scaled.reshape(maps.shape).astype(np.float32)


def _reference(name: str, model, layer_path: str | None, images, classes) -> np.ndarray:
    targets = [ClassifierOutputTarget(int(c)) for c in classes]
    np.random.seed(0)  # KernelPCA's ARPACK start vector comes from numpy's global RNG
    with _reference_cam(name, model, layer_path) as cam:
        raw = cam(images.clone().requires_grad_(True), targets)
    return _minmax(np.asarray(raw, dtype=np.float32))


def _ours(name: str, model, layer_path: str | None, images, classes) -> np.ndarray:
    cls = get_method(name)
    if name == "fullgrad":
        config = FullGradConfig(backend="grad-cam")
    else:
        config = cls.config_class(target_layer=layer_path, backend="grad-cam")
    method = cls(model, config)
    assert not method.uses_device_backend()
    np.random.seed(0)
    maps = method.explain(images, classes)
    assert maps.dtype == images.dtype and tuple(maps.shape) == (images.shape[0], *images.shape[-2:])
    assert all(not m._forward_hooks for m in model.modules()), "hooks left on the model"
    return maps.numpy()


def _assert_equal_and_real(name, ours, theirs):
    difference = float(np.abs(ours - theirs).max())
    assert difference <= TOLERANCE, f"{name}: max |ours - grad-cam| = {difference:.3g}"
    # not a trivially equal pair of constant maps: every map reaches 1
    assert np.all(theirs.reshape(theirs.shape[0], -1).max(axis=1) == 1.0), name
    assert np.all(ours.reshape(ours.shape[0], -1).max(axis=1) == 1.0), name
    return difference


# -- (a) the tiny CNN -------------------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
def test_wrapper_equals_grad_cam_on_the_tiny_cnn(name):
    model = _tiny(seed=2)
    images = _images(batch=5, size=32, seed=4)
    layer = None if name == "fullgrad" else "features.2"
    class_sets = {"top1": _top1(model, images), "each": torch.tensor([0, 1, 2, 3, 4])}
    if name not in CLASS_AGNOSTIC:
        class_sets["shifted"] = torch.tensor([1, 2, 3, 4, 0])
    maps = {}
    for label, classes in class_sets.items():
        ours = _ours(name, model, layer, images, classes)
        theirs = _reference(name, model, layer, images, classes)
        _assert_equal_and_real(f"{name}/{label}", ours, theirs)
        maps[label] = ours
    if name not in CLASS_AGNOSTIC:
        # the class reaches grad-cam: other classes give other maps
        assert np.abs(maps["each"] - maps["shifted"]).max() > 1e-3, name


# -- (b) EfficientNet-Lite0 with its real weights ---------------------------------------------


@pytest.fixture(scope="module")
def lite0_small():
    from benchmark.datamodules import ImageNetDataModule
    from benchmark.models import build_classifier

    model = build_classifier("efficientnet_lite0")
    images = next(iter(ImageNetDataModule(limit=2, batch_size=2).test_dataloader()))["image"]
    small = F.interpolate(images, size=(96, 96), mode="bilinear", antialias=True)
    with torch.no_grad():
        ranked = model(small).argsort(dim=1, descending=True)
    classes = torch.stack([ranked[0, 0], ranked[1, 1]])  # image 0: its top-1, image 1: its top-2
    return model, small, classes


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_wrapper_equals_grad_cam_on_efficientnet_lite0(lite0_small, name):
    model, images, classes = lite0_small
    layer = None if name == "fullgrad" else LITE0_LAYER.get(name, "conv_head")
    ours = _ours(name, model, layer, images, classes)
    theirs = _reference(name, model, layer, images, classes)
    _assert_equal_and_real(name, ours, theirs)


# -- chunk_size of the batched methods ---------------------------------------------------------


def _forward_batch_sizes(name: str, model, images, classes, chunk_size: int) -> tuple[list[int], np.ndarray]:
    """Copies per image in every output of the backbone during ``explain`` (Ablation-CAM's device
    path hands each image's copies on after the target layer: the batch, or after the first
    chunk a one-image stand-in, enters, and ``chunk_size`` copies of each image leave), and the maps."""
    cls = get_method(name)
    method = cls(model, cls.config_class(chunk_size=chunk_size))
    sizes: list[int] = []

    def record(module, args, output):
        entered, left = int(args[0].shape[0]), int(output.shape[0])
        sizes.append(left if left == entered else left // images.shape[0])

    handle = model.net.register_forward_hook(record)
    try:
        maps = method.explain(images, classes)
    finally:
        handle.remove()
    return sizes, maps.numpy()


@pytest.mark.parametrize("name", ["scorecam", "ablationcam", "sess"])
def test_chunk_size_bounds_the_forward_batches(name):
    model = _tiny(seed=2)
    images = _images(batch=2, size=32, seed=4)  # 2 images <= k: only the copies can reach k
    classes = torch.tensor([1, 3])
    k = 3
    sizes, _ = _forward_batch_sizes(name, model, images, classes, chunk_size=k)
    assert max(sizes) == k, sizes
    assert sizes.count(k) >= 2, f"expected several chunks of {k}: {sizes}"
    # for contrast: the default chunk size lets bigger batches through (8 channels / many patches)
    default_sizes, _ = _forward_batch_sizes(name, model, images, classes, chunk_size=DEFAULT_CHUNK)
    assert max(default_sizes) > k, default_sizes


@pytest.mark.parametrize("name", ["scorecam", "ablationcam", "sess"])
def test_chunk_size_does_not_change_the_maps(name):
    model = _tiny(seed=2)
    images = _images(batch=2, size=32, seed=4)
    classes = torch.tensor([1, 3])
    sizes_1, maps_1 = _forward_batch_sizes(name, model, images, classes, chunk_size=1)
    sizes_7, maps_7 = _forward_batch_sizes(name, model, images, classes, chunk_size=7)
    assert max(sizes_7) == 7 and len(sizes_1) > len(sizes_7)
    assert set(sizes_1) <= {1, 2}  # the 2-image forwards on the batch itself, then single copies
    assert float(np.abs(maps_1 - maps_7).max()) <= TOLERANCE
    assert np.all(maps_1.reshape(2, -1).max(axis=1) == 1.0)


# -- FullGrad's bias layers ---------------------------------------------------------------------


def _input_gradient_only_map(model, images, classes) -> np.ndarray:
    """FullGrad without any bias term: per image, the channels of |dy^c/dx * x| each min-max
    scaled (grad-cam's scale_cam_image: (v - min) / (1e-7 + max)), summed, then min-max."""
    x = images.clone().requires_grad_(True)
    score = model(x).gather(1, classes[:, None]).sum()
    (grad,) = torch.autograd.grad(score, x)
    term = (grad * images).abs().double().numpy()
    term = term - term.min(axis=(2, 3), keepdims=True)
    term = term / (1e-7 + term.max(axis=(2, 3), keepdims=True))
    return _minmax(term.sum(axis=1))


def test_fullgrad_on_the_tiny_cnn_uses_the_conv_biases():
    # contrast for the test below: with plain Conv2d biases the bias terms change the map
    model = _tiny(seed=2)
    images = _images(batch=3, size=32, seed=4)
    classes = torch.tensor([0, 2, 4])
    ours = get_method("fullgrad")(model).explain(images, classes).numpy()
    assert np.abs(ours - _input_gradient_only_map(model, images, classes)).max() > 1e-2


@pytest.mark.slow
def test_fullgrad_on_efficientnet_lite0_uses_the_batchnorm_biases(lite0_small):
    """grad-cam's FullGrad selects its bias layers with ``type(layer) in [Conv2d, BatchNorm2d]``:
    timm's 49 BatchNormAct2d (subclasses of BatchNorm2d) are skipped and Lite0's convolutions
    have no bias, so its map is |dy/dx * x| alone. The device backend (the default) reads them."""
    model, images, classes = lite0_small
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 49
    input_only = _input_gradient_only_map(model, images, classes)
    theirs = get_method("fullgrad")(model, FullGradConfig(backend="grad-cam")).explain(images, classes).numpy()
    assert np.abs(theirs - input_only).max() < 1e-5  # grad-cam's: the input-gradient term alone
    method = get_method("fullgrad")(model)
    assert method.describe()["layers"].endswith("(49 layers)")
    ours = method.explain(images, classes).numpy()
    assert np.abs(ours - input_only).max() > 1e-2
