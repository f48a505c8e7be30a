#include "model/attention.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "model/row_kernel.h"

namespace metamath::model {

namespace {

// Why hand-written: libtorch 1.13's CPU bmm runs each (batch, head) GEMV on its own (see
// bench/README.md, "What changed: attention in place"). Dot products and axpy in three versions,
// chosen per call by kernel_isa() (core/cpu.h): AVX2/FMA, AVX-512 and plain loops. Only functions
// marked MM_TARGET / MM512_TARGET use those instructions, so the file builds with default flags.
#define MM_TARGET __attribute__((target("avx2,fma")))
#define MM512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

using bf16 = c10::BFloat16;

inline float to_f(float x) { return x; }
inline float to_f(bf16 x) { return static_cast<float>(x); }

// Eight elements widened to f32 (bf16: a 16-bit shift of the raw bits).
MM_TARGET inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
MM_TARGET inline __m256 load8(const bf16* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

MM_TARGET inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// out[i] = q . k_i for the four key rows k_i = k + i * ldk (d elements each).
template <typename T>
MM_TARGET void dot4_avx2(const float* q, const T* k, int64_t ldk, int64_t d, float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) {
    const __m256 qv = _mm256_loadu_ps(q + i);
    a0 = _mm256_fmadd_ps(qv, load8(k + i), a0);
    a1 = _mm256_fmadd_ps(qv, load8(k + ldk + i), a1);
    a2 = _mm256_fmadd_ps(qv, load8(k + 2 * ldk + i), a2);
    a3 = _mm256_fmadd_ps(qv, load8(k + 3 * ldk + i), a3);
  }
  out[0] = hsum(a0);
  out[1] = hsum(a1);
  out[2] = hsum(a2);
  out[3] = hsum(a3);
  for (; i < d; ++i)
    for (int r = 0; r < 4; ++r) out[r] += q[i] * to_f(k[r * ldk + i]);
}

template <typename T>
MM_TARGET float dot1_avx2(const float* q, const T* k, int64_t d) {
  __m256 a = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8(k + i), a);
  float s = hsum(a);
  for (; i < d; ++i) s += q[i] * to_f(k[i]);
  return s;
}

// acc += p * v over d elements.
template <typename T>
MM_TARGET void axpy_avx2(float p, const T* v, float* acc, int64_t d) {
  const __m256 pv = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8)
    _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(pv, load8(v + i), _mm256_loadu_ps(acc + i)));
  for (; i < d; ++i) acc[i] += p * to_f(v[i]);
}

// The same, 16 lanes wide; the tail of d (d % 16) is one masked step (masked lanes load as 0).
// Masked forms with every lane set stand for some plain intrinsics: GCC 12's unmasked AVX-512
// intrinsics start from an "undefined" vector that -Werror=uninitialized rejects.
MM512_TARGET inline __m512 load16(const float* p, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}
MM512_TARGET inline __m512 load16(const bf16* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(
      _mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
}
MM512_TARGET inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
MM512_TARGET inline __m512 load16(const bf16* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(
      _mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
}
// The two halves of v added.
MM512_TARGET inline __m256 fold16(__m512 v) {
  return _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xFF, v, 0),
                       _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
}
// The sum of v's lanes (_mm512_reduce_add_ps has the "undefined" problem above).
MM512_TARGET inline float hsum16(__m512 v) { return hsum(fold16(v)); }

// out[0..3] = the lane sums of a, b, c, d (one shared reduction instead of four).
MM512_TARGET inline void hsum4x16(__m512 a, __m512 b, __m512 c, __m512 d, float* out) {
  const __m256 ab = _mm256_hadd_ps(fold16(a), fold16(b)), cd = _mm256_hadd_ps(fold16(c), fold16(d));
  const __m256 abcd = _mm256_hadd_ps(ab, cd);
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
}
MM512_TARGET inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }

template <typename T>
MM512_TARGET void dot4_avx512(const float* q, const T* k, int64_t ldk, int64_t d, float* out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) {
    const __m512 qv = _mm512_loadu_ps(q + i);
    a0 = _mm512_fmadd_ps(qv, load16(k + i), a0);
    a1 = _mm512_fmadd_ps(qv, load16(k + ldk + i), a1);
    a2 = _mm512_fmadd_ps(qv, load16(k + 2 * ldk + i), a2);
    a3 = _mm512_fmadd_ps(qv, load16(k + 3 * ldk + i), a3);
  }
  if (i < d) {
    const __mmask16 m = tail_mask(d - i);
    const __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
    a0 = _mm512_fmadd_ps(qv, load16(k + i, m), a0);
    a1 = _mm512_fmadd_ps(qv, load16(k + ldk + i, m), a1);
    a2 = _mm512_fmadd_ps(qv, load16(k + 2 * ldk + i, m), a2);
    a3 = _mm512_fmadd_ps(qv, load16(k + 3 * ldk + i, m), a3);
  }
  hsum4x16(a0, a1, a2, a3, out);
}

template <typename T>
MM512_TARGET float dot1_avx512(const float* q, const T* k, int64_t d) {
  __m512 a = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load16(k + i), a);
  if (i < d) {
    const __mmask16 m = tail_mask(d - i);
    a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), load16(k + i, m), a);
  }
  return hsum16(a);
}

template <typename T>
MM512_TARGET void axpy_avx512(float p, const T* v, float* acc, int64_t d) {
  const __m512 pv = _mm512_set1_ps(p);
  int64_t i = 0;
  for (; i + 16 <= d; i += 16)
    _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(pv, load16(v + i), _mm512_loadu_ps(acc + i)));
  if (i < d) {
    const __mmask16 m = tail_mask(d - i);
    _mm512_mask_storeu_ps(acc + i, m,
                          _mm512_fmadd_ps(pv, load16(v + i, m), _mm512_maskz_loadu_ps(m, acc + i)));
  }
}

// One query row's weighted sum of V: acc[0, D) = the sum over keys c with p[c] != 0 of
// p[c] * (value row c), in key order, with the D sums held in registers across all L keys (axpy
// per key sends them through memory: a store-to-load chain per key). The same multiply-adds in the
// same order as axpy's, so the same sums. D = 64 or 128 (the usual head sizes).
template <int D, typename T>
MM_TARGET void weighted_row_avx2(const float* p, const T* v, int64_t ldv, int64_t L, float* acc) {
  constexpr int kN = D / 8;
  __m256 a[kN];
#pragma GCC unroll 16
  for (int i = 0; i < kN; ++i) a[i] = _mm256_setzero_ps();
  for (int64_t c = 0; c < L; ++c) {
    if (p[c] == 0.0f) continue;
    const __m256 pv = _mm256_set1_ps(p[c]);
    const T* vr = v + c * ldv;
#pragma GCC unroll 16
    for (int i = 0; i < kN; ++i) a[i] = _mm256_fmadd_ps(pv, load8(vr + 8 * i), a[i]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < kN; ++i) _mm256_storeu_ps(acc + 8 * i, a[i]);
}

template <int D, typename T>
MM512_TARGET void weighted_row_avx512(const float* p, const T* v, int64_t ldv, int64_t L,
                                      float* acc) {
  constexpr int kN = D / 16;
  __m512 a[kN];
#pragma GCC unroll 8
  for (int i = 0; i < kN; ++i) a[i] = _mm512_setzero_ps();
  for (int64_t c = 0; c < L; ++c) {
    if (p[c] == 0.0f) continue;
    const __m512 pv = _mm512_set1_ps(p[c]);
    const T* vr = v + c * ldv;
#pragma GCC unroll 8
    for (int i = 0; i < kN; ++i) a[i] = _mm512_fmadd_ps(pv, load16(vr + 16 * i), a[i]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < kN; ++i) _mm512_storeu_ps(acc + 16 * i, a[i]);
}

// weighted_row for this level and head size; false when there is none (d not 64 or 128).
template <Isa kIsa, typename T>
inline bool weighted_row(const float* p, const T* v, int64_t ldv, int64_t L, int64_t d,
                         float* acc) {
  if constexpr (kIsa == Isa::avx512) {
    if (d == 64) return weighted_row_avx512<64>(p, v, ldv, L, acc), true;
    if (d == 128) return weighted_row_avx512<128>(p, v, ldv, L, acc), true;
  } else if constexpr (kIsa == Isa::avx2) {
    if (d == 64) return weighted_row_avx2<64>(p, v, ldv, L, acc), true;
    if (d == 128) return weighted_row_avx2<128>(p, v, ldv, L, acc), true;
  }
  return false;
}

template <typename T>
float dot1_plain(const float* q, const T* k, int64_t d) {
  float s = 0;
  for (int64_t i = 0; i < d; ++i) s += q[i] * to_f(k[i]);
  return s;
}

template <typename T>
void axpy_plain(float p, const T* v, float* acc, int64_t d) {
  for (int64_t i = 0; i < d; ++i) acc[i] += p * to_f(v[i]);
}

// The three versions behind one name each, chosen at compile time inside attend_one.
template <Isa kIsa, typename T>
inline float dot1(const float* q, const T* k, int64_t d) {
  if constexpr (kIsa == Isa::avx512)
    return dot1_avx512(q, k, d);
  else if constexpr (kIsa == Isa::avx2)
    return dot1_avx2(q, k, d);
  else
    return dot1_plain(q, k, d);
}

template <Isa kIsa, typename T>
inline void dot4(const float* q, const T* k, int64_t ldk, int64_t d, float* out) {
  if constexpr (kIsa == Isa::avx512)
    dot4_avx512(q, k, ldk, d, out);
  else
    dot4_avx2(q, k, ldk, d, out);
}

template <Isa kIsa, typename T>
inline void axpy(float p, const T* v, float* acc, int64_t d) {
  if constexpr (kIsa == Isa::avx512)
    axpy_avx512(p, v, acc, d);
  else if constexpr (kIsa == Isa::avx2)
    axpy_avx2(p, v, acc, d);
  else
    axpy_plain(p, v, acc, d);
}

struct Shape {
  int64_t B, H, R, L, d, T;  // H: KV heads; R = g * T query rows per head
};

// Element strides of a [B (or slots), H, rows, d] operand along its first three dimensions.
struct Strides {
  int64_t s0 = 0, s1 = 0, s2 = 0;
};
Strides strides_of(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

// In a decode step K and V come from memory (the weights streamed since evicted them), and the
// hardware prefetchers start over at every 4 KiB page: the score loop prefetches the key rows this
// many keys ahead, and the value rows of the keys it scores for the weighted sum that follows.
constexpr int64_t kPrefetchKeys = 16;

// Prefetches n (<= 4; none when n <= 0) rows of d elements at p, p + ld, ...
template <typename T>
inline void prefetch_keys(const T* p, int64_t ld, int64_t d, int64_t n) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < d * static_cast<int64_t>(sizeof(T)); o += 64)
      _mm_prefetch(reinterpret_cast<const char*>(p + r * ld) + o, _MM_HINT_T0);
}

// Query rows are processed in blocks of this many: a block's scores (kRowBlock x L floats) and
// q rows stay in L1/L2 while K and V stream past once per block.
constexpr int64_t kRowBlock = 16;

// One (batch b, KV head h) pair: rows of q against L keys. Scratch: qf R * d, s kRowBlock * L,
// acc kRowBlock * d floats.
template <typename T, Isa kIsa>
void attend_one(const Shape& sh, int64_t b, int64_t kv_row, int64_t h, const T* q, Strides qs,
                const T* k, Strides ks, const T* v, Strides vs, const bool* hidden, float scale,
                T* out, float* qf, float* s, float* acc) {
  constexpr bool kBF16 = std::is_same_v<T, bf16>;
  const int64_t R = sh.R, L = sh.L, d = sh.d, Tq = sh.T;
  const T* qb = q + b * qs.s0 + h * qs.s1;
  const T* kb = k + kv_row * ks.s0 + h * ks.s1;
  const T* vb = v + kv_row * vs.s0 + h * vs.s1;
  const int64_t ldq = qs.s2, ldk = ks.s2, ldv = vs.s2;
  const bool* hid = hidden + b * Tq * L;
  T* ob = out + (b * sh.H + h) * R * d;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < d; ++i) qf[r * d + i] = to_f(qb[r * ldq + i]);
  for (int64_t r0 = 0; r0 < R; r0 += kRowBlock) {
    const int64_t nr = std::min(kRowBlock, R - r0);
    auto hidden_row = [&](int64_t i) { return hid + ((r0 + i) % Tq) * L; };
    // Scores, key-major so each key row is read once for the block's rows; hidden keys are
    // skipped (their entries are never read).
    int64_t j = 0;
    if constexpr (kIsa != Isa::scalar) {
      for (int64_t j0 = 0; j0 < std::min(L, kPrefetchKeys); j0 += 4)  // the loop's first keys
        prefetch_keys(kb + j0 * ldk, ldk, d, std::min<int64_t>(4, L - j0));
      float four[4];
      for (; j + 4 <= L; j += 4) {
        prefetch_keys(kb + (j + kPrefetchKeys) * ldk, ldk, d,
                      std::min<int64_t>(4, L - j - kPrefetchKeys));
        prefetch_keys(vb + j * ldv, ldv, d, 4);
        for (int64_t i = 0; i < nr; ++i) {
          const bool* hr = hidden_row(i) + j;
          if (hr[0] && hr[1] && hr[2] && hr[3]) continue;
          dot4<kIsa>(qf + (r0 + i) * d, kb + j * ldk, ldk, d, four);
          for (int c = 0; c < 4; ++c) s[i * L + j + c] = four[c];
        }
      }
    }
    for (; j < L; ++j)
      for (int64_t i = 0; i < nr; ++i)
        if (!hidden_row(i)[j]) s[i * L + j] = dot1<kIsa>(qf + (r0 + i) * d, kb + j * ldk, d);
    // Masked softmax per row (f32), probabilities rounded to the model dtype.
    for (int64_t i = 0; i < nr; ++i)
      kernels::softmax_row(s + i * L, hidden_row(i), L, scale, kBF16);
    // Weighted sum of V rows, again key-major (one row: in registers).
    if (nr == 1 && weighted_row<kIsa>(s, vb, ldv, L, d, acc)) {
      for (int64_t i = 0; i < d; ++i) ob[r0 * d + i] = static_cast<T>(acc[i]);
      continue;
    }
    std::fill(acc, acc + nr * d, 0.0f);
    for (int64_t c = 0; c < L; ++c) {
      const T* vr = vb + c * ldv;
      for (int64_t i = 0; i < nr; ++i) {
        const float p = s[i * L + c];
        if (p == 0.0f) continue;
        axpy<kIsa>(p, vr, acc + i * d, d);
      }
    }
    for (int64_t i = 0; i < nr * d; ++i) ob[r0 * d + i] = static_cast<T>(acc[i]);
  }
}

// One query position's kernel choice: one query row per head (decode without GQA) streams K and
// V once: memory-bound, and the AVX-512 functions measured 3-10% slower than AVX2 there, 7-22%
// faster with more rows (bench/README.md, "AVX-512 kernel paths").
Isa attention_isa(int64_t rows) {
  return kernel_isa() == Isa::avx512 && rows == 1 ? Isa::avx2 : kernel_isa();
}

template <typename T>
auto attend_one_for(Isa isa) {
  return isa == Isa::avx512 ? &attend_one<T, Isa::avx512>
         : isa == Isa::avx2 ? &attend_one<T, Isa::avx2>
                            : &attend_one<T, Isa::scalar>;
}

template <typename T>
void attend_all(const Shape& sh, const at::Tensor& q, const at::Tensor& K, const at::Tensor& V,
                const at::Tensor& hidden, float scale, const std::vector<int64_t>& rows,
                at::Tensor& out) {
  const auto one = attend_one_for<T>(attention_isa(sh.R));  // once per call: every thread alike
  const T* qp = q.data_ptr<T>();
  const T* kp = K.data_ptr<T>();
  const T* vp = V.data_ptr<T>();
  const bool* hp = hidden.data_ptr<bool>();
  T* op = out.data_ptr<T>();
  const int64_t pairs = sh.B * sh.H;
  // About 32K multiply-adds per task at least, so tiny problems stay on one thread.
  const int64_t work = std::max<int64_t>(1, 2 * sh.R * sh.L * sh.d);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / work);
  at::parallel_for(0, pairs, grain, [&](int64_t p0, int64_t p1) {
    const int64_t block = std::min(kRowBlock, sh.R);
    std::vector<float> qf(sh.R * sh.d), s(block * sh.L), acc(block * sh.d);
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = p / sh.H, h = p % sh.H, kv_row = rows.empty() ? b : rows[b];
      one(sh, b, kv_row, h, qp, strides_of(q), kp, strides_of(K), vp, strides_of(V), hp, scale, op,
          qf.data(), s.data(), acc.data());
    }
  });
}

}  // namespace

int64_t attend_rows_scratch(int64_t g, int64_t L, int64_t d) {
  const int64_t block = std::min(kRowBlock, g);
  return g * d + block * L + block * d;
}

void attend_rows(const AttendRows& a, float* scratch) {
  const Shape sh{1, 1, a.g, a.L, a.d, 1};
  const Strides qs{0, 0, a.d}, ks{0, 0, a.ldk}, vs{0, 0, a.ldv};
  const int64_t block = std::min(kRowBlock, a.g);
  float *qf = scratch, *s = qf + a.g * a.d, *acc = s + block * a.L;
  if (a.bf16)
    attend_one_for<bf16>(a.isa)(sh, 0, 0, 0, static_cast<const bf16*>(a.q), qs,
                                static_cast<const bf16*>(a.k), ks, static_cast<const bf16*>(a.v),
                                vs, a.hidden, a.scale, static_cast<bf16*>(a.out), qf, s, acc);
  else
    attend_one_for<float>(a.isa)(sh, 0, 0, 0, static_cast<const float*>(a.q), qs,
                                 static_cast<const float*>(a.k), ks, static_cast<const float*>(a.v),
                                 vs, a.hidden, a.scale, static_cast<float*>(a.out), qf, s, acc);
}

Isa attend_rows_isa(int64_t g) { return attention_isa(g); }

bool attend_in_place_applies(const at::Tensor& q, const at::Tensor& K, const at::Tensor& V) {
  const auto t = q.scalar_type();
  if (t != at::kFloat && t != at::kBFloat16) return false;
  for (const at::Tensor* x : {&q, &K, &V}) {
    if (!x->is_cpu() || x->layout() != at::kStrided || x->scalar_type() != t || x->dim() != 4)
      return false;
    if (x->size(3) > 1 && x->stride(3) != 1) return false;
    if (at::GradMode::is_enabled() && x->requires_grad()) return false;
  }
  return true;
}

at::Tensor attend_in_place(const at::Tensor& q, const at::Tensor& K, const at::Tensor& V,
                           const at::Tensor& hidden, int64_t T, double scale,
                           const std::vector<int64_t>& rows) {
  if (!attend_in_place_applies(q, K, V))
    fail(
        "attend_in_place: q, K, V must be CPU f32 or bf16 [B, H, rows, d] with unit stride "
        "along d");
  const Shape sh{q.size(0), q.size(1), q.size(2), K.size(2), q.size(3), T};
  if ((rows.empty() ? K.size(0) != sh.B : static_cast<int64_t>(rows.size()) != sh.B) ||
      K.size(1) != sh.H || K.size(3) != sh.d || V.sizes() != K.sizes())
    fail("attend_in_place: K/V shapes do not match q");
  for (int64_t r : rows)
    if (r < 0 || r >= K.size(0)) fail("attend_in_place: row {} outside K's {} rows", r, K.size(0));
  if (T < 1 || sh.R % T != 0)
    fail("attend_in_place: {} query rows are not a multiple of T={}", sh.R, T);
  if (!hidden.is_cpu() || hidden.scalar_type() != at::kBool || hidden.dim() != 3 ||
      hidden.size(0) != sh.B || hidden.size(1) != T || hidden.size(2) != sh.L)
    fail("attend_in_place: hidden must be a CPU [B, T, L] bool tensor");
  const at::Tensor hid = hidden.is_contiguous() ? hidden : hidden.contiguous();
  at::Tensor out = at::empty({sh.B, sh.H, sh.R, sh.d}, q.options());
  if (out.numel() == 0) return out;
  if (sh.L == 0) return out.zero_();
  if (q.scalar_type() == at::kFloat)
    attend_all<float>(sh, q, K, V, hid, static_cast<float>(scale), rows, out);
  else
    attend_all<bf16>(sh, q, K, V, hid, static_cast<float>(scale), rows, out);
  return out;
}

}  // namespace metamath::model
