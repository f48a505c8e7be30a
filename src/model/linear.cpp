#include "model/linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <emmintrin.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "model/amx_kernel.h"
#include "model/amx_split_kernel.h"
#include "model/decode.h"
#include "model/huge_pages.h"
#include "model/linear_kernel.h"
#include "model/matmul.h"
#include "model/plan.h"
#include "model/row_kernel.h"

namespace metamath::model {

namespace {

using kernels::Tiles;
using kernels::WeightType;

// The fixed rule (METAMATH_PLAN=off, and keys not yet planned with cached): up to this many rows
// our tiles beat libtorch on an AVX2 Zen 3 (bench/README.md, "Model decoding").
constexpr int64_t kKernelMaxRows = 64;
// f32 calls up to this many rows never list OpenBLAS (see candidates_for).
constexpr int64_t kF32TilesOnlyRows = 128;
// Widened f32 copies of a bf16 / int8 weight are made in column chunks of at most this many
// elements.
constexpr int64_t kWidenChunk = int64_t{8} << 20;
// Calls with more rows are measured on their first this-many rows (bounds a key's planning time;
// per-row speed changes little beyond it).
constexpr int64_t kMeasureMaxRows = 512;
// The fused decode step (model/decode.cpp) runs the planner's tiles without packing or splitting
// activations for the AMX tiles, which are listed only from kAmxMinRows rows on.
static_assert(kFusedMaxRows < kernels::kAmxMinRows, "the fused decode step cannot run AMX tiles");

// One call that may take a fast path: CPU, strided, no autograd recording, w a plain [N, K]
// contiguous f32 / bf16 weight with x (and b) of its dtype, or an int8 weight with f32 scales and
// x (and b) f32 or bf16.
struct Call {
  at::Tensor x, w, b, scale;
  int64_t M = 0, K = 0, N = 0;
  WeightType w_type = WeightType::f32;
  bool int8_activations = false;  // the int8-dot candidates may run (int8 weights only)
};

bool recorded(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return at::GradMode::is_enabled() &&
         (x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad()));
}

bool plain_cpu(const at::Tensor& t) { return t.is_cpu() && t.layout() == at::kStrided; }

bool float_dtype(at::ScalarType t) { return t == at::kFloat || t == at::kBFloat16; }

std::optional<Call> fast_call(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                              const at::Tensor& scale, bool int8_activations) {
  const bool q8 = w.scalar_type() == at::kChar;
  if (recorded(x, w, b) || !plain_cpu(x) || !plain_cpu(w) || !float_dtype(x.scalar_type()) ||
      w.dim() != 2 || !w.is_contiguous() || x.dim() < 1 || x.size(-1) != w.size(1))
    return std::nullopt;
  if (q8 ? !(scale.defined() && plain_cpu(scale) && scale.scalar_type() == at::kFloat &&
             scale.dim() == 1 && scale.size(0) == w.size(0) && scale.is_contiguous())
         : w.scalar_type() != x.scalar_type())
    return std::nullopt;
  if (b.defined() && !(plain_cpu(b) && b.scalar_type() == x.scalar_type() && b.dim() == 1 &&
                       b.size(0) == w.size(0) && b.is_contiguous()))
    return std::nullopt;
  Call c{x, w, b, q8 ? scale : at::Tensor()};
  c.K = w.size(1);
  c.N = w.size(0);
  c.M = c.K > 0 ? x.numel() / c.K : 0;
  c.w_type = q8                                 ? WeightType::i8
             : w.scalar_type() == at::kBFloat16 ? WeightType::bf16
                                                : WeightType::f32;
  if (c.M == 0 || c.K == 0 || c.N == 0) return std::nullopt;
  c.int8_activations = q8 && int8_activations;
  return c;
}

std::vector<int64_t> out_shape(const at::Tensor& x, int64_t n) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = n;
  return shape;
}

// x as [M, K] rows of dtype t with unit stride along K (a view when possible, else a copy).
at::Tensor rows_of(const at::Tensor& x, int64_t M, int64_t K, at::ScalarType t) {
  at::Tensor x2 = x.reshape({M, K});
  if (x2.scalar_type() != t) return x2.to(t).contiguous();
  if (x2.stride(1) != 1 && K > 1) return x2.contiguous();
  return x2;
}

// What the tiles read besides the weight, made once per call for all threads (and kept alive
// here until the product is done).
struct TileInputs {
  at::Tensor xr;              // the activation rows in the tiles' dtype
  at::Tensor xq, xs;          // the int8-dot tiles: int8 blocks and their scales (quantize_rows_q8)
  at::Tensor xq_amx, xs_amx;  // amx-int8: those packed into AMX's B layout (pack_q8_amx)
  at::Tensor split;           // amx-bf16x3: the three bf16 planes (amx_split_rows)
};

// The int8-dot tiles' quantized activations: rows split across the threads when there are many
// (a prefill), at least ~64K values each.
void quantize_x(const Call& c, TileInputs& in, kernels::GemmNT& a) {
  in.xq = at::empty({c.M, kernels::q8_row_bytes(c.K)}, at::kChar);
  in.xs = at::empty({c.M, kernels::q8_row_blocks(c.K)}, at::kFloat);
  const int64_t x_bytes = in.xr.element_size(), grain = std::max<int64_t>(1, (1 << 16) / c.K);
  at::parallel_for(0, c.M, grain, [&](int64_t m0, int64_t m1) {
    kernels::quantize_rows_q8(static_cast<const char*>(a.x) + m0 * a.ldx * x_bytes,
                              in.xr.scalar_type() == at::kBFloat16, a.ldx, m1 - m0, c.K,
                              in.xq.data_ptr<int8_t>() + m0 * in.xq.size(1), in.xq.size(1),
                              in.xs.data_ptr<float>() + m0 * in.xs.size(1), in.xs.size(1));
  });
  a.xq = in.xq.data_ptr<int8_t>();
  a.ldxq = in.xq.size(1);
  a.xq_scale = in.xs.data_ptr<float>();
  a.ldxq_scale = in.xs.size(1);
}

// amx-int8: the quantized activations packed in groups of 16 rows (one B tile each).
void pack_for_amx_int8(const Call& c, TileInputs& in, kernels::GemmNT& a) {
  in.xq_amx = at::empty({kernels::amx_q8_packed_bytes(c.M, c.K)}, at::kChar);
  in.xs_amx = at::empty({kernels::amx_q8_packed_scales(c.M, c.K)}, at::kFloat);
  const int64_t groups = (c.M + 15) / 16, grain = std::max<int64_t>(1, (1 << 16) / (16 * c.K));
  at::parallel_for(0, groups, grain, [&](int64_t g0, int64_t g1) {
    kernels::pack_q8_amx(a.xq, a.ldxq, a.xq_scale, a.ldxq_scale, c.M, c.K, g0, g1,
                         in.xq_amx.data_ptr<int8_t>(), in.xs_amx.data_ptr<float>());
  });
  a.xq_amx = in.xq_amx.data_ptr<int8_t>();
  a.xq_amx_scale = in.xs_amx.data_ptr<float>();
}

// amx-bf16x3: the f32 rows split into three bf16 planes, in 16-row tiles.
void split_for_amx_bf16(const Call& c, TileInputs& in, kernels::GemmNT& a) {
  in.split = at::empty({kernels::amx_split_bytes(c.M, c.K)}, at::kByte);
  at::parallel_for(0, (c.M + 15) / 16, 1, [&](int64_t t0, int64_t t1) {
    kernels::amx_split_rows(in.xr.data_ptr<float>(), a.ldx, c.M, c.K, t0, t1, in.split.data_ptr());
  });
  a.x = in.split.data_ptr();
}

// Output columns in chunks claimed dynamically by the at::parallel_for threads, so a thread that
// starts late (a busy machine) takes fewer chunks instead of leaving a fixed half for the others
// to wait on.
void run_in_column_chunks(const kernels::GemmNT& a, Tiles tiles) {
  const int64_t threads = at::in_parallel_region() ? 1 : std::max(1, at::get_num_threads());
  std::vector<int64_t> bounds;
  if (tiles == Tiles::amx_bf16x3) {
    const int64_t chunk = kernels::amx_column_chunk(a.N, threads);
    for (int64_t n = 0; n < a.N; n += chunk) bounds.push_back(n);
    bounds.push_back(a.N);
  } else {
    bounds = kernels::column_bounds(a.N, a.M, a.K, threads);
    if (tiles == Tiles::amx_int8) {  // whole 16-row weight tiles
      for (int64_t& n : bounds) n = std::min(a.N, (n + 15) / 16 * 16);
      bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
    }
  }
  const int64_t nchunks = static_cast<int64_t>(bounds.size()) - 1;
  if (threads == 1 || nchunks == 1) return kernels::gemm_nt_columns(a, tiles, 0, a.N);
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min(threads, nchunks), 1, [&](int64_t, int64_t) {
    for (int64_t k = next++; k < nchunks; k = next++)
      kernels::gemm_nt_columns(a, tiles, bounds[k], bounds[k + 1]);
  });
}

// Our tiles over all rows, output columns split across at::get_num_threads() threads.
at::Tensor kernel_linear(const Call& c, Tiles tiles) {
  const bool quantized_x = kernels::quantizes_activations(tiles);
  const at::ScalarType xt = tiles == Tiles::avx512_bf16 ? at::kBFloat16
                            : quantized_x               ? c.x.scalar_type()
                                                        : at::kFloat;
  TileInputs in;
  in.xr = rows_of(c.x, c.M, c.K, xt);
  at::Tensor y = at::empty({c.M, c.N}, c.x.options());
  kernels::GemmNT a;
  a.x = in.xr.data_ptr();
  a.ldx = c.M > 1 ? in.xr.stride(0) : c.K;
  a.M = c.M;
  a.K = c.K;
  a.N = c.N;
  a.w = c.w.data_ptr();
  a.w_type = c.w_type;
  a.w_scale = c.scale.defined() ? c.scale.data_ptr<float>() : nullptr;
  a.b = c.b.defined() ? c.b.data_ptr() : nullptr;
  a.b_bf16 = c.b.defined() && c.b.scalar_type() == at::kBFloat16;
  a.y = y.data_ptr();
  a.ldy = c.N;
  a.y_bf16 = y.scalar_type() == at::kBFloat16;
  if (quantized_x) quantize_x(c, in, a);
  if (tiles == Tiles::amx_int8) pack_for_amx_int8(c, in, a);
  if (tiles == Tiles::amx_bf16x3) split_for_amx_bf16(c, in, a);
  run_in_column_chunks(a, tiles);
  return y.view(out_shape(c.x, c.N));
}

// bf16 or int8 weights widened to f32 (in column chunks), multiplied in f32 (BLAS), the result
// rounded to x's dtype once: libtorch 1.13's bf16 GEMM has no AVX2 kernel.
at::Tensor widened_linear(const Call& c) {
  at::Tensor xf = rows_of(c.x, c.M, c.K, at::kFloat);
  const int64_t cols = std::max<int64_t>(1, kWidenChunk / c.K);
  std::vector<at::Tensor> parts;
  for (int64_t n0 = 0; n0 < c.N; n0 += cols) {
    const int64_t nc = std::min(cols, c.N - n0);
    at::Tensor wf = c.w.narrow(0, n0, nc).to(at::kFloat);
    if (c.scale.defined()) wf = wf * c.scale.narrow(0, n0, nc).unsqueeze(1);
    parts.push_back(c.b.defined() ? at::addmm(c.b.narrow(0, n0, nc).to(at::kFloat), xf, wf.t())
                                  : at::mm(xf, wf.t()));
  }
  at::Tensor y = parts.size() == 1 ? parts[0] : at::cat(parts, 1);
  return y.to(c.x.scalar_type()).view(out_shape(c.x, c.N));
}

// libtorch on [M, K] contiguous rows (its bf16 path is several ulps off on strided or 3-d
// inputs).
at::Tensor torch_linear(const Call& c) {
  at::Tensor x2 = c.x.reshape({c.M, c.K}).contiguous();
  at::Tensor y = c.b.defined() ? at::linear(x2, c.w, c.b) : at::linear(x2, c.w);
  return y.view(out_shape(c.x, c.N));
}

// One f32 row as a matrix-vector product (BLAS gemm with one row packs the whole weight first).
at::Tensor mv_linear(const Call& c) {
  at::Tensor y = at::mv(c.w, c.x.reshape({-1}));
  if (c.b.defined()) y = y + c.b;
  return y.view(out_shape(c.x, c.N));
}

const char* tiles_name(Isa isa) { return isa == Isa::avx512 ? "avx512" : "avx2"; }

// The candidates for c under kernel level isa, the fixed rule's choice first.
std::vector<std::string> candidates_for(const Call& c, Isa isa) {
  const bool bf16 = c.w_type == WeightType::bf16, f32 = c.w_type == WeightType::f32;
  std::vector<std::string> names;
  // f32 through libtorch is OpenBLAS, whose threads keep spinning after a call and starve the
  // OpenMP threads of our kernels and libtorch's other ops: a decode step mixing the two ran at
  // 9.4 tok/s against 33.7 with our tiles alone (2 cores), and a 128-token prefill of the 134M
  // model took 0.21-0.34 s where the planner (timing each product alone, OpenBLAS 1.0-1.25x
  // faster there) had picked OpenBLAS for two of its four shapes, against 0.15 s on our tiles
  // alone. So up to kF32TilesOnlyRows rows (decode, prompts of up to 128 tokens) f32 stays off it.
  const bool ours_serve = isa != Isa::scalar && c.M <= (f32 ? kF32TilesOnlyRows : kKernelMaxRows);
  // The fixed rule: our tiles where they serve; then libtorch for f32 and the widened path
  // otherwise; without AVX2, one f32 row through at::mv.
  if (ours_serve)
    names.push_back(tiles_name(isa));
  else if (!f32)
    names.push_back("widened");
  else
    names.push_back(isa == Isa::scalar && c.M == 1 ? "torch-mv" : "torch");
  auto add = [&](const char* name, bool available) {
    if (available && std::find(names.begin(), names.end(), name) == names.end())
      names.push_back(name);
  };
  add("avx512", isa == Isa::avx512);
  add("avx2", isa >= Isa::avx2);
  add("avx512-bf16dot", bf16 && isa == Isa::avx512 && cpu_has_avx512_bf16());
  // int8 weights times activations quantized to int8 blocks (an extra error of half a block
  // step per activation, see linear_kernel.h), never the fixed rule: chosen only by measurement.
  const bool i8 = c.w_type == WeightType::i8 && c.int8_activations;
  add("avx512-vnni", i8 && isa == Isa::avx512 && cpu_has_avx512_vnni());
  add("avx2-i8dot", i8 && isa >= Isa::avx2);
  // The AMX tiles from kAmxMinRows (9) rows: the plan key m16 is shared by 9..16 rows, and the
  // fused decode step's <= 8 rows never see them.
  const bool amx_rows = isa == Isa::avx512 && c.M >= kernels::kAmxMinRows;
  add("amx-int8", i8 && amx_rows && kernels::amx_int8_available());
  // Weight-only int8 with f32 activations on AMX bf16 tiles (x split into three bf16 planes, to
  // f32 accuracy: model/amx_split_kernel.h).
  add("amx-bf16x3", c.w_type == WeightType::i8 && !c.int8_activations &&
                        c.x.scalar_type() == at::kFloat && amx_rows &&
                        kernels::amx_bf16_permitted());
  add("torch", (f32 && !ours_serve) || (bf16 && !bf16_gemm_via_f32(c.w)));
  add("torch-mv", f32 && c.M == 1 && !ours_serve);
  add("widened", !f32);
  return names;
}

at::Tensor run_candidate(const std::string& name, const Call& c) {
  if (const std::optional<Tiles> tiles = candidate_tiles(name)) return kernel_linear(c, *tiles);
  if (name == "torch") return torch_linear(c);
  if (name == "torch-mv") return mv_linear(c);
  if (name == "widened") return widened_linear(c);
  fail("model::linear: unknown candidate '{}'", name);
}

const char* weight_name(const Call& c) {
  const bool xbf = c.x.scalar_type() == at::kBFloat16;
  switch (c.w_type) {
    case WeightType::f32:
      return "f32";
    case WeightType::bf16:
      return "bf16";
    case WeightType::i8:
      if (c.int8_activations) return xbf ? "q8dot-bf16" : "q8dot-f32";
      return xbf ? "q8-bf16" : "q8-f32";
  }
  return "?";
}

std::string plan_key(const Call& c, Isa isa) {
  const int threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  return fmt::format("linear {} m{} k{} n{} t{} {}", weight_name(c), row_class(c.M), c.K, c.N,
                     threads, isa_name(isa));
}

// The call restricted to its first `rows` rows (for measuring).
Call first_rows(const Call& c, int64_t rows) {
  if (rows >= c.M) return c;
  Call s = c;
  s.x = c.x.reshape({c.M, c.K}).narrow(0, 0, rows);
  s.M = rows;
  return s;
}

// Evicts the weight (and its scales) from every cache level: a decode step streams each weight
// from memory (a model is larger than the caches), so candidates are timed as they will run, not
// on a weight left hot by the previous timing.
void evict_weight(const Call& c) {
  auto flush = [](const at::Tensor& t) {
    if (!t.defined()) return;
    const char* p = static_cast<const char*>(t.data_ptr());
    const size_t bytes = t.numel() * t.element_size();
    for (size_t i = 0; i < bytes; i += 64) _mm_clflush(p + i);
  };
  flush(c.w);
  flush(c.scale);
  _mm_mfence();
}

at::Tensor dequantized(const at::Tensor& w, const at::Tensor& scale, at::ScalarType t) {
  return (w.to(at::kFloat) * scale.to(at::kFloat).unsqueeze(1)).to(t);
}

// The planner's candidate for c (measured now when its key is new).
std::string planned_candidate(const Call& c) {
  const Isa isa = kernel_isa();  // once per product: every thread takes the same path
  const std::vector<std::string> names = candidates_for(c, isa);
  const Call probe = first_rows(c, kMeasureMaxRows);
  return choose_candidate(
             plan_key(c, isa), names, [&](size_t i) { run_candidate(names[i], probe); },
             [&] { evict_weight(c); })
      .chosen;
}

}  // namespace

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                  const at::Tensor& w_scale, bool int8_activations) {
  std::optional<Call> c = fast_call(x, w, b, w_scale, int8_activations);
  if (!c) {
    if (w.scalar_type() == at::kChar) {
      if (!w_scale.defined()) fail("model::linear: an int8 weight needs its scales");
      const at::Tensor wd = dequantized(w, w_scale, x.scalar_type());
      return b.defined() ? at::linear(x, wd, b) : at::linear(x, wd);
    }
    return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
  }
  return run_candidate(planned_candidate(*c), *c);
}

std::string linear_choice(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                          const at::Tensor& w_scale, bool int8_activations) {
  std::optional<Call> c = fast_call(x, w, b, w_scale, int8_activations);
  return c ? planned_candidate(*c) : std::string();
}

std::vector<std::string> linear_candidates(const at::Tensor& x, const at::Tensor& w,
                                           const at::Tensor& b, const at::Tensor& w_scale,
                                           bool int8_activations) {
  std::optional<Call> c = fast_call(x, w, b, w_scale, int8_activations);
  if (!c) return {};
  return candidates_for(*c, kernel_isa());
}

at::Tensor linear_using(const std::string& candidate, const at::Tensor& x, const at::Tensor& w,
                        const at::Tensor& b, const at::Tensor& w_scale, bool int8_activations) {
  std::optional<Call> c = fast_call(x, w, b, w_scale, int8_activations);
  const std::vector<std::string> names =
      c ? candidates_for(*c, kernel_isa()) : std::vector<std::string>{};
  if (std::find(names.begin(), names.end(), candidate) == names.end())
    fail("model::linear: candidate '{}' is not available for this call (available: {})", candidate,
         fmt::join(names, ", "));
  return run_candidate(candidate, *c);
}

std::optional<kernels::Tiles> candidate_tiles(const std::string& name) {
  if (name == "avx512") return Tiles::avx512;
  if (name == "avx2") return Tiles::avx2;
  if (name == "avx512-bf16dot") return Tiles::avx512_bf16;
  if (name == "avx512-vnni") return Tiles::avx512_vnni;
  if (name == "avx2-i8dot") return Tiles::avx2_i8dot;
  if (name == "amx-int8") return Tiles::amx_int8;
  if (name == "amx-bf16x3") return Tiles::amx_bf16x3;
  return std::nullopt;
}

bool quantizes_activations(const std::string& candidate) {
  const std::optional<Tiles> tiles = candidate_tiles(candidate);
  return tiles && kernels::quantizes_activations(*tiles);
}

// By hand, one row at a time: libtorch's expression (abs, amax, divide, round, clamp, to int8)
// made four float32 temporaries the size of the weight, which a q8 load paid for every matrix
// (and the heap then kept: core/memory.h). float32, bfloat16 and float16 rows are read where they
// lie (a 16-bit row widened into a per-thread buffer, exactly): no float32 copy of the matrix
// either, which for a 128K-token vocabulary's lm_head was 2 GB.
QuantizedWeight quantize_q8(const at::Tensor& w, HugePageArena* arena) {
  if (w.dim() != 2) fail("quantize_q8: expected a [out, in] weight, got {} dims", w.dim());
  const at::ScalarType t = w.scalar_type();
  const bool in_place = w.device().is_cpu() && (w.size(1) <= 1 || w.stride(1) == 1) &&
                        (t == at::kFloat || t == at::kBFloat16 || t == at::kHalf);
  const at::Tensor src = in_place ? w : w.to(at::kCPU, at::kFloat).contiguous();
  const int64_t N = src.size(0), K = src.size(1), ld = src.stride(0);
  at::Tensor q = arena ? arena->empty({N, K}, at::kChar) : at::empty({N, K}, at::kChar);
  at::Tensor scale = at::empty({N}, at::kFloat);
  int8_t* dst = q.data_ptr<int8_t>();
  float* sc = scale.data_ptr<float>();
  auto row_of = [&](int64_t n, std::vector<float>& buf) -> const float* {
    if (src.scalar_type() == at::kFloat) return src.data_ptr<float>() + n * ld;
    buf.resize(static_cast<size_t>(K));
    if (src.scalar_type() == at::kBFloat16) {
      kernels::widen_bf16_row(static_cast<const uint16_t*>(src.data_ptr()) + n * ld, K, buf.data());
    } else {
      const c10::Half* r = src.data_ptr<c10::Half>() + n * ld;
      for (int64_t k = 0; k < K; ++k) buf[k] = static_cast<float>(r[k]);
    }
    return buf.data();
  };
  at::parallel_for(0, N, std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, K)),
                   [&](int64_t n0, int64_t n1) {
                     std::vector<float> buf;
                     for (int64_t n = n0; n < n1; ++n) {
                       const float* row = row_of(n, buf);
                       float amax = 0;
                       bool nan = false;
                       for (int64_t k = 0; k < K; ++k) {
                         amax = std::max(amax, std::fabs(row[k]));
                         nan = nan || std::isnan(row[k]);
                       }
                       const float s = !nan && amax > 0 ? amax / 127.0f : 1.0f;
                       sc[n] = s;
                       for (int64_t k = 0; k < K; ++k) {
                         const float r = std::nearbyint(row[k] / s);  // half to even
                         dst[n * K + k] = std::isnan(r)
                                              ? 0
                                              : static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f));
                       }
                     }
                   });
  return {q, scale};
}

}  // namespace metamath::model
