"""FullGrad's layer term as one C++ function on the CPU, built once per Python environment.

Each bias layer's term of FullGrad (:mod:`methods.cam.fullgrad_device`) is, per image and channel
``c`` of the layer's gradient ``g`` (``[h*w, C]``, channels_last), ``a = |g_c|`` taken to
``(a - min a) * f_c / (1e-7 + (max a - min a) * f_c)`` and summed over the channels at each
pixel (``f = |b|``, the layer's bias). Inductor compiles it
(:func:`methods.cam.fullgrad_device.channel_sum_of_pixels`) into a reduction over the pixels that
walks each vector of channels down all the pixels of an image, much slower than a plain read of
the gradient, and a weighted sum. This function takes one image at a time
(images in parallel over torch's threads) and reads its rows twice, eight channels to a vector:

1. the channels' minimum and maximum, held in registers for up to 48 channels (the narrow
   ones two or four rows at a time, so that the comparisons do not wait on each other), in
   the L1 cache beyond; fewer channels than 8 (an image's 3) are read as rows of several
   pixels side by side, folded back onto the channels afterwards;
2. the weighted sum: each row's vectors summed lane by lane, then eight rows' lanes summed
   together in three rounds of pairwise sums (one pixel's sum at a time would spend more on
   adding the lanes of a vector than on reading it, for 16 or 32 channels).

On EfficientNet-Lite0's 49 layers the terms take less than half the compiled graph's time, and
FullGrad comes close to a plain forward+backward (``python -m perf.fullgrad_term``; the figures
in ``perf/README.md``).

The function is compiled for AVX-512, AVX2 and plain x86-64 at once (GCC's ``target_clones``:
the loader picks the one the CPU runs), so the build stays valid on any machine that shares
PyTorch's extension cache. A ``NaN`` in an image's gradient makes its whole term ``NaN``, and
an infinity the pixels it reaches, as the compiled and eager terms do (torch's ``amin`` and
``amax`` propagate a ``NaN``); the check costs nothing where no pixel's sum is ``NaN``.

Building needs a C++ compiler and ninja (a dependency of this package); it takes far longer
than a map, once per Python environment (``Explainer.prepare`` does it before the first map is
timed), then PyTorch loads it from its cache (``~/.cache/torch_extensions``,
or ``TORCH_EXTENSIONS_DIR``). A failed build says so in one line, and the compiled graph serves
instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from benchmark.core import notes
from benchmark.core.tensors import memory_format_of
from benchmark.models.execution import compiler_failure, quiet_compiler_warnings

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// Eight floats as one value (GCC's vector extension): the compiler turns its arithmetic into
// the widest instructions of each target below (two SSE registers by default).
typedef float v8 __attribute__((vector_size(32)));
typedef int i8 __attribute__((vector_size(32)));

static inline v8 load8(const float* p) { v8 v; std::memcpy(&v, p, sizeof v); return v; }
static inline void store8(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }
static inline v8 abs8(v8 v) { return (v8)((i8)v & 0x7fffffff); }
// a NaN in a leaves b: a NaN is passed over here (see term_of_image)
static inline v8 min8(v8 a, v8 b) { return a < b ? a : b; }
static inline v8 max8(v8 a, v8 b) { return a > b ? a : b; }

// Folds into lo/hi [8N] the minimum and maximum of |x| over P rows (stride C) of 8N channels,
// held in registers: R rows at a time for the narrow ones, so the comparisons do not wait on
// each other.
template <int N>
__attribute__((target_clones("avx512f", "avx2", "default")))
static void extremes(const float* x, int64_t P, int64_t C, float* lo, float* hi) {
  constexpr int R = N == 1 ? 4 : (N == 2 ? 2 : 1);
  v8 L[R][N], H[R][N];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < N; ++k) { L[r][k] = load8(lo + 8 * k); H[r][k] = load8(hi + 8 * k); }
  int64_t p = 0;
  for (; p + R <= P; p += R)
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < N; ++k) {
        const v8 a = abs8(load8(x + (p + r) * C + 8 * k));
        L[r][k] = min8(a, L[r][k]);
        H[r][k] = max8(a, H[r][k]);
      }
  for (; p < P; ++p)
    for (int k = 0; k < N; ++k) {
      const v8 a = abs8(load8(x + p * C + 8 * k));
      L[0][k] = min8(a, L[0][k]);
      H[0][k] = max8(a, H[0][k]);
    }
  for (int k = 0; k < N; ++k) {
    v8 l = L[0][k], h = H[0][k];
    for (int r = 1; r < R; ++r) { l = min8(L[r][k], l); h = max8(H[r][k], h); }
    store8(lo + 8 * k, l);
    store8(hi + 8 * k, h);
  }
}

// The same for any number NV of vectors, kept in lo/hi (in the L1 cache) between rows.
__attribute__((target_clones("avx512f", "avx2", "default")))
static void extremes_wide(const float* x, int64_t P, int64_t C, int64_t NV, float* lo, float* hi) {
  for (int64_t p = 0; p < P; ++p) {
    const float* row = x + p * C;
    for (int64_t k = 0; k < NV; ++k) {
      const v8 a = abs8(load8(row + 8 * k));
      store8(lo + 8 * k, min8(a, load8(lo + 8 * k)));
      store8(hi + 8 * k, max8(a, load8(hi + 8 * k)));
    }
  }
}

// Lane i of the result: the sum of a[i]'s eight lanes (three rounds of pairwise sums).
static inline v8 lane_sums(const v8* a) {
  const i8 m0 = {0, 1, 2, 3, 8, 9, 10, 11}, m1 = {4, 5, 6, 7, 12, 13, 14, 15};
  const v8 b0 = __builtin_shuffle(a[0], a[1], m0) + __builtin_shuffle(a[0], a[1], m1);
  const v8 b1 = __builtin_shuffle(a[2], a[3], m0) + __builtin_shuffle(a[2], a[3], m1);
  const v8 b2 = __builtin_shuffle(a[4], a[5], m0) + __builtin_shuffle(a[4], a[5], m1);
  const v8 b3 = __builtin_shuffle(a[6], a[7], m0) + __builtin_shuffle(a[6], a[7], m1);
  const i8 n0 = {0, 1, 8, 9, 4, 5, 12, 13}, n1 = {2, 3, 10, 11, 6, 7, 14, 15};
  const v8 c0 = __builtin_shuffle(b0, b1, n0) + __builtin_shuffle(b0, b1, n1);
  const v8 c1 = __builtin_shuffle(b2, b3, n0) + __builtin_shuffle(b2, b3, n1);
  const i8 q0 = {0, 4, 2, 6, 8, 12, 10, 14}, q1 = {1, 5, 3, 7, 9, 13, 11, 15};
  return __builtin_shuffle(c0, c1, q0) + __builtin_shuffle(c0, c1, q1);
}

// o[p] = sum_c (|x[p, c]| - lo[c]) * w[c]: the NV = C / 8 whole vectors of each row summed
// lane-wise, eight rows' lanes summed at once (lane_sums), then the C % 8 channels past them.
// V > 0: NV known when compiled (the loop over the vectors unrolled); 0: any NV.
template <int V>
__attribute__((target_clones("avx512f", "avx2", "default")))
static void weighted_sum(const float* x, int64_t P, int64_t C, int64_t NV, const float* lo, const float* w, float* o) {
  const int64_t nv = V > 0 ? V : NV;
  for (int64_t p0 = 0; p0 < P; p0 += 8) {
    const int64_t n = P - p0 < 8 ? P - p0 : 8;
    v8 rows[8];
    for (int j = 0; j < 8; ++j) rows[j] = v8{};
    for (int64_t j = 0; j < n; ++j) {
      const float* row = x + (p0 + j) * C;
      v8 s = v8{};
      for (int64_t k = 0; k < nv; ++k) s += (abs8(load8(row + 8 * k)) - load8(lo + 8 * k)) * load8(w + 8 * k);
      rows[j] = s;
    }
    float sums[8];
    store8(sums, lane_sums(rows));
    for (int64_t j = 0; j < n; ++j) {
      const float* row = x + (p0 + j) * C;
      float t = sums[j];
      for (int64_t c = 8 * nv; c < C; ++c) t += (std::fabs(row[c]) - lo[c]) * w[c];
      o[p0 + j] = t;
    }
  }
}

// Folds into lo/hi [8 NV] the extremes of |x| over P rows (stride C) of 8 NV channels.
static void extremes_of(const float* x, int64_t P, int64_t C, int64_t NV, float* lo, float* hi) {
  switch (NV) {  // up to 6 vectors (48 channels) in registers
    case 1: extremes<1>(x, P, C, lo, hi); break;
    case 2: extremes<2>(x, P, C, lo, hi); break;
    case 3: extremes<3>(x, P, C, lo, hi); break;
    case 4: extremes<4>(x, P, C, lo, hi); break;
    case 5: extremes<5>(x, P, C, lo, hi); break;
    case 6: extremes<6>(x, P, C, lo, hi); break;
    default: extremes_wide(x, P, C, NV, lo, hi); break;
  }
}

// Fewer channels than a vector (an image's 3, say): K = L / C pixels side by side make rows of
// L = lcm(C, 8) numbers, read as L / 8 whole vectors, the lanes folded back onto the channels
// afterwards; the last P % K pixels one by one. Writes o [P] with lo, hi, w [C] as below.
__attribute__((target_clones("avx512f", "avx2", "default")))
static void narrow_term_of_image(const float* x, const float* f, float* o, int64_t P, int64_t C,
                                 float* lo, float* hi, float* w) {
  int64_t L = 8;
  while (L % C != 0) L += 8;
  const int64_t K = L / C, rows = P / K;
  float lanes_lo[56], lanes_hi[56], lanes_w[56], products[56];
  for (int64_t j = 0; j < L; ++j) {
    lanes_lo[j] = std::numeric_limits<float>::infinity();
    lanes_hi[j] = -std::numeric_limits<float>::infinity();
  }
  extremes_of(x, rows, L, L / 8, lanes_lo, lanes_hi);
  for (int64_t c = 0; c < C; ++c) {
    lo[c] = std::numeric_limits<float>::infinity();
    hi[c] = -std::numeric_limits<float>::infinity();
  }
  for (int64_t j = 0; j < L; ++j) {
    lo[j % C] = lanes_lo[j] < lo[j % C] ? lanes_lo[j] : lo[j % C];
    hi[j % C] = lanes_hi[j] > hi[j % C] ? lanes_hi[j] : hi[j % C];
  }
  for (int64_t p = rows * K; p < P; ++p)
    for (int64_t c = 0; c < C; ++c) {
      const float a = std::fabs(x[p * C + c]);
      lo[c] = a < lo[c] ? a : lo[c];
      hi[c] = a > hi[c] ? a : hi[c];
    }
  for (int64_t c = 0; c < C; ++c) w[c] = f[c] / ((hi[c] - lo[c]) * f[c] + 1e-7f);
  for (int64_t j = 0; j < L; ++j) { lanes_lo[j] = lo[j % C]; lanes_w[j] = w[j % C]; }
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * L;
    for (int64_t k = 0; k < L / 8; ++k)
      store8(products + 8 * k, (abs8(load8(row + 8 * k)) - load8(lanes_lo + 8 * k)) * load8(lanes_w + 8 * k));
    for (int64_t i = 0; i < K; ++i) {
      float t = 0.f;
      for (int64_t c = 0; c < C; ++c) t += products[i * C + c];
      o[r * K + i] = t;
    }
  }
  for (int64_t p = rows * K; p < P; ++p) {
    float t = 0.f;
    for (int64_t c = 0; c < C; ++c) t += (std::fabs(x[p * C + c]) - lo[c]) * w[c];
    o[p] = t;
  }
}

// One image: x [P, C] (row-major), f [C]; writes o [P]. lo, hi, w: room for C floats.
static void term_of_image(const float* x, const float* f, float* o, int64_t P, int64_t C,
                          float* lo, float* hi, float* w) {
  const int64_t NV = C / 8;
  if (NV == 0) {
    narrow_term_of_image(x, f, o, P, C, lo, hi, w);
  } else {
    for (int64_t c = 0; c < C; ++c) {
      lo[c] = std::numeric_limits<float>::infinity();
      hi[c] = -std::numeric_limits<float>::infinity();
    }
    extremes_of(x, P, C, NV, lo, hi);
    for (int64_t c = 8 * NV; c < C; ++c)  // the channels past the last whole vector
      for (int64_t p = 0; p < P; ++p) {
        const float a = std::fabs(x[p * C + c]);
        lo[c] = a < lo[c] ? a : lo[c];
        hi[c] = a > hi[c] ? a : hi[c];
      }
    for (int64_t c = 0; c < C; ++c) w[c] = f[c] / ((hi[c] - lo[c]) * f[c] + 1e-7f);
    switch (NV) {
      case 1: weighted_sum<1>(x, P, C, NV, lo, w, o); break;
      case 2: weighted_sum<2>(x, P, C, NV, lo, w, o); break;
      case 3: weighted_sum<3>(x, P, C, NV, lo, w, o); break;
      case 4: weighted_sum<4>(x, P, C, NV, lo, w, o); break;
      default: weighted_sum<0>(x, P, C, NV, lo, w, o); break;
    }
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
  TORCH_CHECK(flat.dim() == 3 && flat.is_contiguous() && flat.scalar_type() == torch::kFloat,
              "flat: [B, P, C] float32");
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


def build(source: str = SOURCE, name: str = "saliency_fullgrad_term") -> Any:
    """The compiled module (``layer_term``) of ``source``, built or loaded from PyTorch's
    extension cache (under ``name``)."""
    quiet_compiler_warnings()  # before the import, which warns of the missing CUDA runtime
    from torch.utils.cpp_extension import load_inline

    return load_inline(
        name,
        cpp_sources=source,
        functions=["layer_term"],
        extra_cflags=["-O3", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        verbose=False,
    )


class KernelTerm:
    """Each layer's term of FullGrad through :data:`SOURCE`'s function (the ``compiled``
    execution on the CPU): float32 ``channels_last`` gradients on the CPU; others get ``None``
    (the caller's next term serves them), and so does every term after a failed build (one
    line through ``note``). The first call in the process builds or loads it (``build_s``)."""

    def __init__(self, note: Callable[[str], None] | None = None, builder: Callable[[], Any] = build):
        self.note = note or notes.note
        self.builder = builder
        self.failure: str | None = None
        self.build_s: float | None = None

    def covers(self, values: Tensor) -> bool:
        return (
            self.failure is None
            and values.device.type == "cpu"
            and values.dtype == torch.float32
            and memory_format_of(values) == torch.channels_last
        )

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

    def prepare(self) -> None:
        """Builds or loads the function now (before a run's first map is timed)."""
        self._module()

    def _module(self) -> Any:
        if self.failure is not None:
            return None
        if self.builder in _BUILT:
            if self.build_s is None:
                self.build_s = 0.0  # built by another term in this process
            return _BUILT[self.builder]
        self.note("building FullGrad's layer term (C++, once per Python environment; then from PyTorch's cache) ...")
        start = time.perf_counter()
        try:
            module = self.builder()
        except Exception as error:
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
            return {
                "fullgrad_kernel": "failed to build, the compiled graph ran",
                "fullgrad_kernel_failure": self.failure,
            }
        if self.build_s is None:
            return {"fullgrad_kernel": "not used"}
        return {"fullgrad_kernel": "C++", "fullgrad_kernel_build_s": self.build_s}
