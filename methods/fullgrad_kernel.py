"""FullGrad's layer term as one C++ function on the CPU, built once per Python environment.

Each bias layer's term of FullGrad (:mod:`methods.fullgrad_device`) is, per image and channel
``c`` of the layer's gradient ``g`` (``[h*w, C]``, channels_last), ``a = |g_c|`` taken to
``(a - min a) * f_c / (1e-7 + (max a - min a) * f_c)`` and summed over the channels at each
pixel (``f = |b|``, the layer's bias). Inductor compiles it
(:func:`methods.fullgrad_device.channel_sum_of_pixels`) into a reduction over the pixels that
walks each vector of channels down all the pixels of an image, at about twice the time of a
plain read of the gradient, and a weighted sum. This function takes one image at a time
(images in parallel over torch's threads): it streams the image's rows once for the channels'
minimum and maximum, then once more for the weighted sum, while the image's gradient is still
in the cache. On EfficientNet-Lite0's 49 layers (batch 16, the 2-core CPU of
``perf/README.md``) the terms took 1.43 ms/image against 2.51 for the compiled graph, and
FullGrad 21.7 against 22.7 (a plain forward+backward: 19.2).

The function is compiled for AVX-512, AVX2 and plain x86-64 at once (GCC's ``target_clones``:
the loader picks the one the CPU runs), so the build stays valid on any machine that shares
PyTorch's extension cache. A ``NaN`` in an image's gradient makes its whole term ``NaN``, and
an infinity the pixels it reaches, as the compiled and eager terms do (torch's ``amin`` and
``amax`` propagate a ``NaN``); the check costs nothing where no pixel's sum is ``NaN``.

Building needs a C++ compiler and ninja (a dependency of this package); it takes about 23 s
once per Python environment, then PyTorch loads it from its cache (``~/.cache/torch_extensions``,
or ``TORCH_EXTENSIONS_DIR``). A failed build says so in one line, and the compiled graph serves
instead.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import Tensor

from metrics.functional.image import memory_format_of
from models.execution import compiler_failure, quiet_compiler_warnings

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <limits>
#include <vector>

// One image: x [P, C] (row-major), f [C]; writes o [P].
__attribute__((target_clones("avx512f", "avx2", "default")))
static void term_of_image(const float* x, const float* f, float* o, int64_t P, int64_t C,
                          float* lo, float* hi, float* w) {
  for (int64_t c = 0; c < C; ++c) {
    lo[c] = std::numeric_limits<float>::infinity();
    hi[c] = -std::numeric_limits<float>::infinity();
  }
  for (int64_t p = 0; p < P; ++p) {  // a NaN is passed over here (see below)
    const float* row = x + p * C;
    for (int64_t c = 0; c < C; ++c) {
      const float a = std::fabs(row[c]);
      lo[c] = a < lo[c] ? a : lo[c];
      hi[c] = a > hi[c] ? a : hi[c];
    }
  }
  for (int64_t c = 0; c < C; ++c) w[c] = f[c] / ((hi[c] - lo[c]) * f[c] + 1e-7f);
  for (int64_t p = 0; p < P; ++p) {
    const float* row = x + p * C;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; ++c) s += (std::fabs(row[c]) - lo[c]) * w[c];
    o[p] = s;
  }
  // torch's amin/amax give a channel with a NaN a NaN minimum and maximum, and so every pixel
  // of the image a NaN term. A NaN in the gradient makes its pixel's sum NaN above (an infinity
  // can too, and torch leaves the other pixels alone there): only where a pixel's sum is NaN are
  // its numbers looked at, so a gradient without NaN sums costs nothing more.
  bool has_nan = false;
  for (int64_t p = 0; p < P && !has_nan; ++p) {
    if (!std::isnan(o[p])) continue;
    for (int64_t c = 0; c < C; ++c) has_nan = has_nan || std::isnan(x[p * C + c]);
  }
  if (has_nan)
    for (int64_t p = 0; p < P; ++p) o[p] = std::numeric_limits<float>::quiet_NaN();
}

// flat [B, P, C] contiguous float32, factor [C] float32 (>= 0): the terms [B, P].
torch::Tensor layer_term(torch::Tensor flat, torch::Tensor factor) {
  TORCH_CHECK(flat.dim() == 3 && flat.is_contiguous() && flat.scalar_type() == torch::kFloat, "flat: [B, P, C] float32");
  TORCH_CHECK(factor.dim() == 1 && factor.is_contiguous() && factor.size(0) == flat.size(2), "factor: [C]");
  const int64_t B = flat.size(0), P = flat.size(1), C = flat.size(2);
  auto out = torch::empty({B, P}, flat.options());
  const float* x = flat.data_ptr<float>();
  const float* f = factor.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> lo(C), hi(C), w(C);
    for (int64_t b = begin; b < end; ++b)
      term_of_image(x + b * P * C, f, o + b * P, P, C, lo.data(), hi.data(), w.data());
  });
  return out;
}
"""

#: The process's built modules, by the builder that built them (:func:`build` in a run).
_BUILT: dict[Callable[[], Any], Any] = {}


def build() -> Any:
    """The compiled module (``layer_term``), built or loaded from PyTorch's extension cache."""
    quiet_compiler_warnings()  # before the import, which warns of the missing CUDA runtime
    from torch.utils.cpp_extension import load_inline

    return load_inline("saliency_fullgrad_term", cpp_sources=SOURCE, functions=["layer_term"],
                       extra_cflags=["-O3", "-fopenmp", "-fopenmp-simd"], extra_ldflags=["-fopenmp"], verbose=False)


class KernelTerm:
    """Each layer's term of FullGrad through :data:`SOURCE`'s function (the ``compiled``
    execution on the CPU): float32 ``channels_last`` gradients on the CPU; others get ``None``
    (the caller's next term serves them), and so does every term after a failed build (one
    line through ``note``). The first call in the process builds or loads it (``build_s``)."""

    def __init__(self, note: Callable[[str], None] | None = None, builder: Callable[[], Any] = build):
        from models.registry import note as default_note

        self.note = note or default_note
        self.builder = builder
        self.failure: str | None = None
        self.build_s: float | None = None

    def covers(self, values: Tensor) -> bool:
        return (self.failure is None and values.device.type == "cpu" and values.dtype == torch.float32
                and memory_format_of(values) == torch.channels_last)

    def __call__(self, values: Tensor, scale: Tensor | None) -> Tensor | None:
        """``[B, 1, h, w]``: the layer's term (to the order of the sum), or ``None``."""
        if not self.covers(values):
            return None
        module = self._module()
        if module is None:
            return None
        batch, channels, height, width = values.shape
        flat = values.permute(0, 2, 3, 1).reshape(batch, height * width, channels)  # a view: channels_last
        factor = scale.abs().float().contiguous() if scale is not None else values.new_ones(channels)
        return module.layer_term(flat, factor).view(batch, 1, height, width)

    def _module(self) -> Any:
        if self.failure is not None:
            return None
        if self.builder in _BUILT:
            if self.build_s is None:
                self.build_s = 0.0  # built by another term in this process
            return _BUILT[self.builder]
        self.note("building FullGrad's layer term (C++, once per Python environment; then from PyTorch's "
                  "cache) ...")
        start = time.perf_counter()
        try:
            module = self.builder()
        except Exception as error:  # noqa: BLE001 - any build failure means: the compiled graph serves
            self.failure = compiler_failure(error)
            self.note(f"FullGrad's C++ layer term cannot be built ({self.failure}); the compiled graph serves")
            return None
        self.build_s = round(time.perf_counter() - start, 1)
        _BUILT[self.builder] = module
        self.note(f"built FullGrad's layer term in {self.build_s} s")
        return module

    def describe(self) -> dict:
        """What ran, for results.json."""
        if self.failure is not None:
            return {"fullgrad_kernel": "failed to build, the compiled graph ran", "fullgrad_kernel_failure": self.failure}
        if self.build_s is None:
            return {"fullgrad_kernel": "not used"}
        return {"fullgrad_kernel": "C++", "fullgrad_kernel_build_s": self.build_s}
