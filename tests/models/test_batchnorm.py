"""``models.batchnorm``: eval-mode BatchNorm as ``x * s + t`` under the fast executions."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from timm.layers.norm_act import BatchNormAct2d
from torch import nn

from benchmark.models import build_classifier
from benchmark.models.batchnorm import affine_batchnorms, has_affine_forward
from tests.support.helpers import FLOAT32_EPS


def _filled(module: nn.modules.batchnorm._BatchNorm, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    channels = module.num_features
    with torch.no_grad():
        module.running_mean.copy_(torch.randn(channels, generator=g))
        module.running_var.copy_(torch.rand(channels, generator=g) + 0.1)
        if module.weight is not None:
            module.weight.copy_(torch.randn(channels, generator=g))
            module.bias.copy_(torch.randn(channels, generator=g))
    return module.eval()


def test_a_small_case_by_hand():
    bn = nn.BatchNorm2d(2, eps=0.0)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25]))
        bn.weight.copy_(torch.tensor([3.0, 1.0]))
        bn.bias.copy_(torch.tensor([0.5, 0.0]))
    bn.eval()
    assert affine_batchnorms(bn) == 1 and has_affine_forward(bn)
    assert type(bn) is nn.BatchNorm2d  # grad-cam's FullGrad picks its bias layers by exact type
    x = torch.tensor([5.0, 0.0]).view(1, 2, 1, 1).requires_grad_(True)
    # channel 0: (5 - 1) / 2 * 3 + 0.5 = 6.5; channel 1: (0 + 2) / 0.5 * 1 + 0 = 4
    y = bn(x)
    assert y.flatten().tolist() == [6.5, 4.0] and y.grad_fn.name() == "AddcmulBackward0"
    # the input gradient is the scale s = w / sqrt(var): 3 / 2 and 1 / 0.5
    (gradient,) = torch.autograd.grad(y.sum(), x)
    assert gradient.flatten().tolist() == [1.5, 2.0]


def test_a_pass_without_a_graph_keeps_the_kernel_bit_for_bit():
    kernel = _filled(nn.BatchNorm2d(8))
    fast = copy.deepcopy(kernel)
    affine_batchnorms(fast)
    x = torch.randn(3, 8, 5, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fast(x), kernel(x))
    with torch.no_grad():
        assert torch.equal(fast(x.requires_grad_(True)), kernel(x))


@pytest.mark.parametrize("dtype, bound", [(torch.float32, 2e-6), (torch.float64, 1e-14)])
@pytest.mark.parametrize("affine", [True, False])
def test_equal_to_the_kernel_and_so_is_the_input_gradient(dtype, bound, affine):
    kernel = _filled(nn.BatchNorm2d(8, affine=affine)).to(dtype)
    fast = copy.deepcopy(kernel)
    affine_batchnorms(fast)
    x = torch.randn(3, 8, 5, 5, dtype=dtype, generator=torch.Generator().manual_seed(1))
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y_kernel, y_fast = kernel(x), fast(x)
    assert y_fast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_fast, y_kernel, atol=bound * y_kernel.abs().max().item(), rtol=0)
    weights = torch.randn_like(y_kernel)
    (g_kernel,) = torch.autograd.grad((y_kernel * weights).sum(), x)
    (g_fast,) = torch.autograd.grad((y_fast * weights).sum(), x)
    torch.testing.assert_close(g_fast, g_kernel, atol=bound * g_kernel.abs().max().item(), rtol=0)


def test_timm_batchnorm_act_keeps_its_activation_and_follows_weights_changed_in_place():
    kernel = _filled(BatchNormAct2d(4, act_layer=nn.ReLU6))
    fast = copy.deepcopy(kernel)
    affine_batchnorms(fast)
    assert has_affine_forward(fast) and type(fast) is BatchNormAct2d
    x = (4 * torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(2))).requires_grad_(True)
    graph = fast(x).grad_fn  # the activation's backward, then the multiply-add's
    assert graph.name() == "HardtanhBackward0" and graph.next_functions[0][0].name() == "AddcmulBackward0"
    # From the arithmetic, not one CPU's kernel: either side rounds at most 5 times (the kernel's
    # subtraction, square root, division, product and sum; the fast one's scale, shift and
    # multiply-add) on terms |x * w / sqrt(var)| + |b - mean * w / sqrt(var)| below 9.1 where
    # the output lies inside (0, 6) (9.02, and 6.04 with the second weights), so the two are within
    # 10 u * 9.1 = 5 * FLOAT32_EPS * 9.1 = 5.4e-6; the fixed 1e-6 was two spacings at 4-6.
    # Measured: 0 and 1.2e-7 on AMD EPYC.
    bound = 5 * FLOAT32_EPS * 9.1
    torch.testing.assert_close(fast(x), kernel(x), atol=bound, rtol=0)
    assert fast(x).min() == 0 and fast(x).max() == 6  # ReLU6 after the normalization
    for module in (kernel, fast):  # what model randomization does: new weights, in place
        _filled(module, seed=5)
    torch.testing.assert_close(fast(x), kernel(x), atol=bound, rtol=0)


def test_training_mode_and_missing_statistics_run_the_original_forward():
    fast = _filled(nn.BatchNorm2d(3))
    affine_batchnorms(fast)
    x = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    fast.train()
    batch_stats = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(
        x.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + fast.eps
    )
    expected = batch_stats * fast.weight.view(1, -1, 1, 1) + fast.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(fast(x), expected.detach(), atol=1e-5, rtol=0)
    untracked = nn.BatchNorm2d(3, track_running_stats=False).eval()
    affine_batchnorms(untracked)
    torch.testing.assert_close(untracked(x), nn.functional.batch_norm(x, None, None, training=True), atol=1e-5, rtol=0)


def test_other_batchnorm_subclasses_are_left_alone():
    class Special(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) + 1

    net = nn.Sequential(nn.BatchNorm2d(2), Special(2), nn.BatchNorm1d(2))
    assert affine_batchnorms(net) == 1
    assert [has_affine_forward(m) for m in net] == [True, False, False]
    assert affine_batchnorms(net) == 1  # twice: the same


def test_the_fast_executions_switch_the_classifier_and_eager_does_not():
    eager = build_classifier("efficientnet_lite0")
    fast = build_classifier("efficientnet_lite0", execution="channels_last")
    assert not any(has_affine_forward(m) for m in eager.modules())
    switched = [m for m in fast.modules() if has_affine_forward(m)]
    assert len(switched) == sum(isinstance(m, BatchNormAct2d) for m in eager.modules()) == 49
    seen = []
    handle = switched[-1].register_forward_hook(lambda module, args, output: seen.append(output.shape))
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    logits = fast(images)
    torch.testing.assert_close(logits, eager(images), atol=1e-4, rtol=0)
    handle.remove()
    assert seen == [torch.Size([2, 1280, 7, 7])]  # a hook on a switched module still fires
    copied = copy.deepcopy(fast)  # model randomization works on a copy
    assert has_affine_forward(copied.submodule("bn2")) and copied.submodule("bn2").forward.__self__ is copied.submodule(
        "bn2"
    )
    torch.testing.assert_close(copied(images), logits, atol=0, rtol=0)
    restored = pickle.loads(pickle.dumps(fast))  # comes back with the kernel's forward: the same logits
    torch.testing.assert_close(restored(images), logits, atol=1e-5, rtol=0)
