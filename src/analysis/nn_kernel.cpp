#include "analysis/nn_kernel.h"

#include <ATen/Parallel.h>
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/cpu.h"
#include "core/error.h"

// GCC 12 warns inside its own AVX-512 headers (the _mm512_undefined_* operands of min, reduce and
// convert intrinsics) when they are inlined at -O3: false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace metamath::analysis::nn {

RowState fresh_row(float margin) {
  RowState st;
  st.best = std::numeric_limits<float>::infinity();
  st.margin = margin;
  return st;
}

// ---- the float64 re-check ----------------------------------------------------------------------

namespace {

double exact_scalar(const float* a, const float* b, int64_t dim) {
  double acc[16] = {};
  int64_t k = 0;
  for (; k + 16 <= dim; k += 16)
    for (int l = 0; l < 16; ++l) {
      const double t = static_cast<double>(a[k + l]) - static_cast<double>(b[k + l]);
      acc[l] = std::fma(t, t, acc[l]);
    }
  for (int l = 0; k + l < dim; ++l) {
    const double t = static_cast<double>(a[k + l]) - static_cast<double>(b[k + l]);
    acc[l] = std::fma(t, t, acc[l]);
  }
  double s = 0;
  for (double x : acc) s += x;
  return s;
}

__attribute__((target("avx512f"))) double exact_avx512(const float* a, const float* b,
                                                       int64_t dim) {
  __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();  // lanes 0-7, 8-15
  int64_t k = 0;
  for (; k + 16 <= dim; k += 16) {
    const __m512d t0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a + k)),
                                     _mm512_cvtps_pd(_mm256_loadu_ps(b + k)));
    const __m512d t1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a + k + 8)),
                                     _mm512_cvtps_pd(_mm256_loadu_ps(b + k + 8)));
    lo = _mm512_fmadd_pd(t0, t0, lo);
    hi = _mm512_fmadd_pd(t1, t1, hi);
  }
  alignas(64) double acc[16];
  _mm512_store_pd(acc, lo);
  _mm512_store_pd(acc + 8, hi);
  for (int l = 0; k + l < dim; ++l) {
    const double t = static_cast<double>(a[k + l]) - static_cast<double>(b[k + l]);
    acc[l] = std::fma(t, t, acc[l]);
  }
  double s = 0;
  for (double x : acc) s += x;
  return s;
}

}  // namespace

double exact_sq_l2(const float* a, const float* b, int64_t dim) {
  if (kernel_isa() >= Isa::avx512) return exact_avx512(a, b, dim);
  return exact_scalar(a, b, dim);
}

// ---- AMX-BF16 ----------------------------------------------------------------------------------

namespace {

constexpr int kArchReqXcompPerm = 0x1023;  // arch_prctl: ask for an XSAVE feature
constexpr int kXfeatureXtiledata = 18;     // the AMX tile data
constexpr int64_t kPanel = 32;             // rows of a micro-tile (queries and base alike)
constexpr int64_t kChunk = 32;             // bfloat16 values per tile row (64 bytes)
constexpr int64_t kPanelsPerBlock = 12;    // base panels kept in L2 (12 x 32 x 1536 x 2 = 1.2 MB)

// Round to nearest even (finite inputs).
uint16_t to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// (Not _tile_loadconfig: GCC 12's version tells the compiler it reads 8 bytes, so the rest of the
// configuration's initialisation can be dropped as dead stores.)
__attribute__((target("amx-tile"))) void load_tile_config() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
}

__attribute__((target("amx-tile"))) void release_tiles() { _tile_release(); }

// The 32 x 32 float32 block of dot products of a packed query panel and a packed base panel
// (both [chunk of 32 dims][half][16 rows][32 values]: every tile is 1 KiB contiguous, which
// avoids the cache-set conflicts of loading rows 3 KiB apart), over `chunks` chunks. Tiles: 0-3
// C, 4-5 A (query rows 0-15, 16-31), 6-7 B (base rows 0-15, 16-31).
__attribute__((target("amx-tile,amx-bf16"))) void micro_tile(const uint16_t* a, const uint16_t* b,
                                                             int64_t chunks, float* c) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t k = 0; k < chunks; ++k) {
    _tile_loadd(4, a + k * 1024, 64);
    _tile_loadd(5, a + k * 1024 + 512, 64);
    _tile_loadd(6, b + k * 1024, 64);
    _tile_loadd(7, b + k * 1024 + 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, 128);
  _tile_stored(1, c + 16, 128);
  _tile_stored(2, c + 16 * 32, 128);
  _tile_stored(3, c + 16 * 32 + 16, 128);
}

// Folds a 32 x 32 block of dot products (c[i][j] ~ q_i . b_{j0 + j}) into the states of `valid`
// query rows: approximate distance qn + ||b||^2 - 2 c, the new minimum, the candidates.
__attribute__((target("avx512f,avx512dq"))) void fold_block(const float* c, const float* bn,
                                                            int64_t j0, const float* qn,
                                                            RowState* rows, int64_t valid,
                                                            std::size_t max_candidates) {
  const __m512 b0 = _mm512_loadu_ps(bn), b1 = _mm512_loadu_ps(bn + 16);
  const __m512 minus2 = _mm512_set1_ps(-2.0f);
  alignas(64) float v[32];
  for (int64_t i = 0; i < valid; ++i) {
    const __m512 v0 = _mm512_fmadd_ps(minus2, _mm512_loadu_ps(c + 32 * i), b0);  // exact -2c
    const __m512 v1 = _mm512_fmadd_ps(minus2, _mm512_loadu_ps(c + 32 * i + 16), b1);
    RowState& st = rows[i];
    const float q = qn[i];
    const float vmin = _mm512_reduce_min_ps(_mm512_min_ps(v0, v1));
    const float dmin = q + vmin;
    if (dmin > st.best + st.margin) continue;  // the usual case: nothing here can be nearest
    _mm512_store_ps(v, v0);
    _mm512_store_ps(v + 16, v1);
    if (dmin < st.best) {
      st.best = dmin;
      st.best_index = j0 + (std::find(v, v + 32, vmin) - v);
      const float limit = st.best + st.margin;
      std::erase_if(st.candidates, [limit](const auto& x) { return x.first > limit; });
    }
    if (st.overflow) continue;
    const float limit = st.best + st.margin;
    const __m512 qv = _mm512_set1_ps(q), lv = _mm512_set1_ps(limit);
    const uint32_t mask =
        static_cast<uint32_t>(_mm512_cmp_ps_mask(_mm512_add_ps(qv, v0), lv, _CMP_LE_OQ)) |
        static_cast<uint32_t>(_mm512_cmp_ps_mask(_mm512_add_ps(qv, v1), lv, _CMP_LE_OQ)) << 16;
    for (uint32_t m = mask; m; m &= m - 1) {
      const int k = __builtin_ctz(m);
      st.candidates.emplace_back(q + v[k], j0 + k);
    }
    if (st.candidates.size() > max_candidates) {
      st.overflow = true;
      st.candidates.clear();
    }
  }
}

}  // namespace

bool amx_bf16_supported() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (cpu_isa() < Isa::avx512 || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = d & (1u << 24), bf16 = d & (1u << 22);
    return tile && bf16 && syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

PackedBase pack_base(const float* base, int64_t rows, int64_t dim, const float* norms) {
  PackedBase p;
  p.rows = rows;
  p.dim = dim;
  p.padded_rows = (rows + kPanel - 1) / kPanel * kPanel;
  p.padded_dim = (dim + kChunk - 1) / kChunk * kChunk;
  const int64_t chunks = p.padded_dim / kChunk;
  p.data.assign(static_cast<std::size_t>(p.padded_rows * p.padded_dim), 0);
  p.norms.assign(static_cast<std::size_t>(p.padded_rows), std::numeric_limits<float>::infinity());
  at::parallel_for(0, p.padded_rows / kPanel, 1, [&](int64_t b, int64_t e) {
    for (int64_t panel = b; panel < e; ++panel)
      for (int64_t r = 0; r < kPanel; ++r) {
        const int64_t row = panel * kPanel + r;
        if (row >= rows) break;
        const int64_t half = r / 16, n = r % 16;
        for (int64_t k = 0; k < dim; ++k) {
          const int64_t chunk = k / kChunk, pair = (k % kChunk) / 2, e2 = k % 2;
          const int64_t at_ =
              ((((panel * chunks + chunk) * 2 + half) * 16 + pair) * 16 + n) * 2 + e2;
          p.data[static_cast<std::size_t>(at_)] = to_bf16(base[row * dim + k]);
        }
      }
  });
  for (int64_t i = 0; i < rows; ++i) {
    p.norms[static_cast<std::size_t>(i)] = norms[i];
    p.max_norm = std::max(p.max_norm, static_cast<double>(norms[i]));
  }
  return p;
}

float amx_margin(double query_norm, const PackedBase& base) {
  constexpr double u = 1.0 / 256, u32 = 1.0 / (1 << 24);
  const double d = static_cast<double>(base.padded_dim);
  const double gamma = d * u32 / (1 - d * u32);
  const double e = 2 * u + u * u + gamma * (1 + u) * (1 + u);
  const double qn = std::sqrt(query_norm), bn = std::sqrt(base.max_norm);
  const double bound = 2 * e * qn * bn + 12 * u32 * (query_norm + base.max_norm) +
                       d * std::ldexp(1.0, -119) + std::sqrt(d) * std::ldexp(1.0, -125) * (qn + bn);
  return static_cast<float>(2 * bound * (1 + 1e-6));
}

void amx_filter(const PackedBase& base, const float* queries, int64_t n, const float* qn,
                RowState* rows, std::size_t max_candidates) {
  if (!amx_bf16_supported()) fail("nearest neighbours: this CPU or kernel has no AMX-BF16");
  const int64_t lda = base.padded_dim, chunks = lda / kChunk;
  const int64_t qpanels = (n + kPanel - 1) / kPanel, bpanels = base.padded_rows / kPanel;
  // Queries in bfloat16, packed as tiles ([panel][chunk][half][16 rows][32 dims]), padded to whole
  // panels with zero rows (their results are dropped).
  std::vector<uint16_t> a(static_cast<std::size_t>(qpanels * kPanel * lda), 0);
  at::parallel_for(0, n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t panel = i / kPanel, half = (i % kPanel) / 16, row = i % 16;
      for (int64_t k = 0; k < base.dim; ++k) {
        const int64_t at_ =
            ((panel * chunks + k / kChunk) * 2 + half) * 512 + row * 32 + k % kChunk;
        a[static_cast<std::size_t>(at_)] = to_bf16(queries[i * base.dim + k]);
      }
    }
  });
  at::parallel_for(0, qpanels, 1, [&](int64_t p0, int64_t p1) {
    load_tile_config();
    alignas(64) float c[kPanel * kPanel];
    for (int64_t b0 = 0; b0 < bpanels; b0 += kPanelsPerBlock) {
      const int64_t b1 = std::min(bpanels, b0 + kPanelsPerBlock);
      for (int64_t qp = p0; qp < p1; ++qp) {
        const int64_t valid = std::min(kPanel, n - qp * kPanel);
        for (int64_t bp = b0; bp < b1; ++bp) {
          micro_tile(a.data() + qp * kPanel * lda, base.data.data() + bp * kPanel * lda, chunks, c);
          fold_block(c, base.norms.data() + bp * kPanel, bp * kPanel, qn + qp * kPanel,
                     rows + qp * kPanel, valid, max_candidates);
        }
      }
    }
    release_tiles();
  });
}

}  // namespace metamath::analysis::nn
