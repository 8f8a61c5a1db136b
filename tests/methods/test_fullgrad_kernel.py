"""FullGrad's C++ layer term (methods/cam/fullgrad_kernel.py): the eager term's numbers and grad-cam's
formula to the order of the sum, NaN as torch's reductions give it, what it leaves to the
compiled graph, and a failed build (one line, the graph serves)."""

from __future__ import annotations

import pytest
import torch

from benchmark.methods.cam.fullgrad_device import CompiledTerm, _scaled_channel_sum
from benchmark.methods.cam.fullgrad_kernel import SOURCE, KernelTerm, build
from tests.methods.test_fullgrad_device import _channel_sum_reference, compiled_and_channels_last_maps
from tests.support.helpers import FLOAT32_EPS, layer_term_tolerance

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _channels_last(shape, seed: int) -> torch.Tensor:
    values = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    values[0, 1] = 0.25  # a constant channel: (v - min) = 0 everywhere
    return values.contiguous(memory_format=torch.channels_last)


#: one shape for each path of the C++ function (see the test below)
SHAPES = [
    (3, 5, 6, 4),
    (1, 7, 3, 5),
    (2, 12, 7, 7),
    (4, 3, 16, 16),
    (2, 112, 5, 9),
    (3, 8, 5, 5),
    (2, 16, 9, 9),
    (2, 24, 2, 3),
    (1, 44, 6, 6),
    (2, 48, 4, 4),
    (2, 72, 3, 5),
    (2, 6, 3, 3),
]


def test_the_kernel_term_is_the_eager_terms_to_the_order_of_its_sum():
    """Every path of the function: fewer channels than one vector of 8 (3, 5, 6, 7: read as
    rows of several pixels, the pixels past the last whole row one by one), whole
    vectors held in registers (8, 16, 24, 48: one to six vectors, four, two and one rows at a
    time), with channels past them (12, 44), more than six vectors (72, 112: kept in memory),
    pixel counts that are not a multiple of 8 (the lane sums' last group) or smaller than one
    group, one image, a bias with a 0 and none at all. To the bound of
    :func:`tests.support.helpers.layer_term_tolerance` (measured: at most 2.3e-7 of the value from the
    eager term)."""
    notes: list[str] = []
    term = KernelTerm(note=notes.append)
    worst = 0.0
    for index, shape in enumerate(SHAPES):
        values = _channels_last(shape, seed=index)
        scale = torch.randn(shape[1], generator=torch.Generator().manual_seed(10 + index))
        scale[2] = 0.0
        for bias in (scale, None):
            got = term(values, bias)
            assert got is not None and got.shape == (shape[0], 1, *shape[2:]) and got.dtype == torch.float32
            expected = _scaled_channel_sum(values, bias)
            assert expected.abs().max() > 0.5
            torch.testing.assert_close(got, expected, **layer_term_tolerance(shape[1]))
            torch.testing.assert_close(got, _channel_sum_reference(values, bias), **layer_term_tolerance(shape[1]))
            worst = max(worst, ((got - expected).abs() / expected.abs().clamp_min(1)).max().item())
    # summed in another order than the eager term, so not bit-equal; the bound of the widest shape
    assert 0 < worst < layer_term_tolerance(max(shape[1] for shape in SHAPES))["rtol"]
    assert term.failure is None and term.build_s is not None
    assert term.describe() == {"fullgrad_kernel": "C++", "fullgrad_kernel_build_s": term.build_s}
    assert len(notes) in (0, 2)  # built here (two lines), or already in this process (none)


@pytest.mark.parametrize("channels", [4, 16, 72])  # two pixels a row; in registers; in memory
@pytest.mark.parametrize("odd", ["nan", "inf"])
def test_a_nan_or_an_infinity_gives_the_eager_terms_nans(odd, channels):
    """A NaN makes its image's whole term NaN (torch's amin/amax propagate it), an infinity only
    the pixel it lies at (its channel's weight is 0 elsewhere); the other image is untouched."""
    values = _channels_last((2, channels, 5, 5), seed=3)
    values[1, 2, 3, 1] = float(odd)
    got = KernelTerm(note=lambda message: None)(values, None)
    expected = _scaled_channel_sum(values, None)
    assert torch.equal(torch.isnan(got), torch.isnan(expected))
    assert int(torch.isnan(got[1]).sum()) == (25 if odd == "nan" else 1)
    torch.testing.assert_close(got[0], expected[0], **layer_term_tolerance(channels))
    finite = ~torch.isnan(expected[1])
    torch.testing.assert_close(got[1][finite], expected[1][finite], **layer_term_tolerance(channels))


def test_the_kernel_leaves_other_layouts_dtypes_and_devices_to_the_next_term():
    term = KernelTerm(note=lambda message: None)
    assert term(torch.rand(2, 4, 5, 5), None) is None  # NCHW
    assert term(torch.rand(2, 4, 5, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last), None) is None
    assert term(torch.rand(2, 1, 5, 5).contiguous(memory_format=torch.channels_last), None) is None  # NCHW too
    assert term.describe() == {"fullgrad_kernel": "not used"}


def test_a_kernel_that_cannot_be_built_says_so_once_and_the_compiled_graph_serves():
    def refuses():
        raise RuntimeError("no compiler here\nsecond line")

    notes: list[str] = []
    term = CompiledTerm(note=notes.append)
    term.kernel = KernelTerm(note=notes.append, builder=refuses)
    for seed in range(2):
        values = _channels_last((2, 6, 5, 5), seed=seed)
        got = term(values, None)
        assert got is not None
        torch.testing.assert_close(got, _scaled_channel_sum(values, None), **layer_term_tolerance(6))
    failures = [n for n in notes if "cannot be built" in n]
    assert failures == [
        "FullGrad's C++ layer term cannot be built (RuntimeError: no compiler here); the compiled graph serves"
    ]
    facts = term.describe()
    assert facts["fullgrad_term"] == "compiled"
    assert facts["fullgrad_kernel"] == "failed to build, the compiled graph ran"
    assert facts["fullgrad_kernel_failure"] == "RuntimeError: no compiler here"


def test_fullgrad_under_compiled_runs_the_kernel_and_gives_channels_lasts_maps():
    """A BatchNorm network under ``compiled``: its layers' terms go through the C++ function
    (results.json says so), and the maps are the eager term's (``channels_last``) to the
    arithmetic's bound, relative to the map's largest value: each term sums at most 8
    channels, ``(8 + 3) * FLOAT32_EPS`` apart (:func:`tests.support.helpers.layer_term_tolerance`); the
    8 x 8 layer's is resized bilinearly (weights >= 0 summing to 1: ``3 * FLOAT32_EPS``), the
    terms (all >= 0) are added (``2 * FLOAT32_EPS``) and the map is scaled to [0, 1] by its
    minimum and maximum (``3 * FLOAT32_EPS``): ``19 * FLOAT32_EPS = 2.3e-6`` (measured: 1.2e-7,
    one spacing at 1, on AMD EPYC with ATen's AVX-512, AVX2 and default kernels)."""
    method, got, expected = compiled_and_channels_last_maps()
    assert method.execution_facts()["fullgrad_kernel"] == "C++"
    torch.testing.assert_close(got, expected, atol=(8 + 3 + 3 + 2 + 3) * FLOAT32_EPS, rtol=0)


def test_the_builds_for_plain_x86_64_and_for_avx2_give_the_same_numbers():
    """The loader runs the AVX-512 build on a CPU that has it (this one), so the other two targets
    of ``target_clones`` are built here once more, each alone, and compared with the eager term
    on every path's shape (the same bound as above)."""
    clones = '__attribute__((target_clones("avx512f", "avx2", "default")))'
    assert SOURCE.count(clones) == 4  # every function with vector arithmetic
    targets = {"x86_64": ""}
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        targets["avx2"] = '__attribute__((target("avx2")))'
    for target, attribute in targets.items():
        module = build(SOURCE.replace(clones, attribute), name=f"saliency_fullgrad_term_test_{target}")
        for index, shape in enumerate(SHAPES):
            values = _channels_last(shape, seed=index)
            scale = torch.randn(shape[1], generator=torch.Generator().manual_seed(10 + index)).abs()
            batch, channels, height, width = shape
            flat = values.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
            got = module.layer_term(flat, scale).view(batch, 1, height, width)
            torch.testing.assert_close(got, _scaled_channel_sum(values, scale), **layer_term_tolerance(channels))
