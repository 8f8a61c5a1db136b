"""FullGrad's C++ layer term (methods/fullgrad_kernel.py): the eager term's numbers and grad-cam's
formula to the order of the sum, NaN as torch's reductions give it, what it leaves to the
compiled graph, and a failed build (one line, the graph serves)."""

from __future__ import annotations

import pytest
import torch

from methods.fullgrad_device import CompiledTerm, _scaled_channel_sum
from methods.fullgrad_kernel import KernelTerm
from tests.test_fullgrad_device import _channel_sum_reference, compiled_and_channels_last_maps

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _channels_last(shape, seed: int) -> torch.Tensor:
    values = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    values[0, 1] = 0.25  # a constant channel: (v - min) = 0 everywhere
    return values.contiguous(memory_format=torch.channels_last)


def test_the_kernel_term_is_the_eager_terms_to_the_order_of_its_sum():
    """Shapes with one image, odd channel counts (no whole vector) and 112 channels (several),
    a bias with a 0 and none at all. Measured: at most 2.2e-7 of the value (7.6e-6 on a sum of
    112 channels of about 36) from the eager term."""
    notes: list[str] = []
    term = KernelTerm(note=notes.append)
    worst = 0.0
    for index, shape in enumerate([(3, 5, 6, 4), (1, 7, 3, 5), (2, 12, 7, 7), (4, 3, 16, 16), (2, 112, 5, 9)]):
        values = _channels_last(shape, seed=index)
        scale = torch.randn(shape[1], generator=torch.Generator().manual_seed(10 + index))
        scale[2] = 0.0
        for bias in (scale, None):
            got = term(values, bias)
            assert got is not None and got.shape == (shape[0], 1, *shape[2:]) and got.dtype == torch.float32
            expected = _scaled_channel_sum(values, bias)
            assert expected.abs().max() > 0.5
            torch.testing.assert_close(got, expected, atol=2e-6, rtol=1e-6)
            torch.testing.assert_close(got, _channel_sum_reference(values, bias), atol=2e-6, rtol=1e-6)
            worst = max(worst, ((got - expected).abs() / expected.abs().clamp_min(1)).max().item())
    assert 0 < worst < 1e-6  # summed in another order than the eager term, so not bit-equal
    assert term.failure is None and term.build_s is not None
    assert term.describe() == {"fullgrad_kernel": "C++", "fullgrad_kernel_build_s": term.build_s}
    assert len(notes) in (0, 2)  # built here (two lines), or already in this process (none)


@pytest.mark.parametrize("odd", ["nan", "inf"])
def test_a_nan_or_an_infinity_gives_the_eager_terms_nans(odd):
    """A NaN makes its image's whole term NaN (torch's amin/amax propagate it), an infinity only
    the pixel it lies at (its channel's weight is 0 elsewhere); the other image is untouched."""
    values = _channels_last((2, 4, 5, 5), seed=3)
    values[1, 2, 3, 1] = float(odd)
    got = KernelTerm(note=lambda message: None)(values, None)
    expected = _scaled_channel_sum(values, None)
    assert torch.equal(torch.isnan(got), torch.isnan(expected))
    assert int(torch.isnan(got[1]).sum()) == (25 if odd == "nan" else 1)
    torch.testing.assert_close(got[0], expected[0], atol=2e-6, rtol=0)
    finite = ~torch.isnan(expected[1])
    torch.testing.assert_close(got[1][finite], expected[1][finite], atol=2e-6, rtol=0)


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
        torch.testing.assert_close(got, _scaled_channel_sum(values, None), atol=2e-6, rtol=0)
    failures = [n for n in notes if "cannot be built" in n]
    assert failures == ["FullGrad's C++ layer term cannot be built (RuntimeError: no compiler here); "
                        "the compiled graph serves"]
    facts = term.describe()
    assert facts["fullgrad_term"] == "compiled"
    assert facts["fullgrad_kernel"] == "failed to build, the compiled graph ran"
    assert facts["fullgrad_kernel_failure"] == "RuntimeError: no compiler here"


def test_fullgrad_under_compiled_runs_the_kernel_and_gives_channels_lasts_maps():
    """A BatchNorm network under ``compiled``: its layers' terms go through the C++ function
    (results.json says so), and the maps are the eager term's (``channels_last``) to 1e-6."""
    method, got, expected = compiled_and_channels_last_maps()
    assert method.execution_facts()["fullgrad_kernel"] == "C++"
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
