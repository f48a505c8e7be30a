#include "analysis/diversity.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "analysis/nn_kernel.h"
#include "core/atomic_file.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/log.h"
#include "core/progress.h"
#include "eval/provenance.h"
#include "train/sft_data.h"

namespace metamath::analysis {

namespace fs = std::filesystem;

// ---- exact nearest-neighbour search ------------------------------------------------------------

namespace {

constexpr double kUnitRoundoff = 1.0 / (1 << 24);  // float32
constexpr std::size_t kMaxCandidates = 64;         // float32 path
constexpr std::size_t kMaxBf16Candidates = 256;    // the bfloat16 filter's margin is ~2^9 x wider
constexpr int64_t kBf16QueryBlock = 4096;
constexpr double kBf16MaxNorm = 1e30;  // beyond: bfloat16 rounding could overflow (float32 path)
constexpr int64_t kTileBytes = int64_t{64} << 20;
constexpr int64_t kAutoBaseBlock = 8192;

using nn::RowState;

// Squared norms of n rows (float64 sums in 16 lanes, the same bits on every instruction set,
// rounded to float32 once).
void row_norms(const float* rows, int64_t n, int64_t dim, float* out) {
  const std::vector<float> zero(static_cast<std::size_t>(dim), 0.0f);
  nn::parallel_chunks(n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      out[i] = static_cast<float>(nn::exact_sq_l2(rows + i * dim, zero.data(), dim));
  });
}

// Row kernels: the minimum of a tile row, and the positions j where qn + t[j] <= limit (float32
// arithmetic, the same in both paths). AVX2 where the CPU has it (8 lanes, scalar work only where
// a lane passes); GCC does not vectorise these loops by itself (float min reductions need
// -ffast-math).
__attribute__((target("avx2"))) float row_min_avx2(const float* t, int64_t m) {
  __m256 acc = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 8 <= m; j += 8) acc = _mm256_min_ps(acc, _mm256_loadu_ps(t + j));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float r = *std::min_element(lanes, lanes + 8);
  for (; j < m; ++j) r = std::min(r, t[j]);
  return r;
}

__attribute__((target("avx2"))) void scan_avx2(const float* t, int64_t m, float qn, float limit,
                                               int64_t b0,
                                               std::vector<std::pair<float, int64_t>>& out) {
  const __m256 q = _mm256_set1_ps(qn), l = _mm256_set1_ps(limit);
  int64_t j = 0;
  for (; j + 8 <= m; j += 8) {
    const __m256 v = _mm256_add_ps(q, _mm256_loadu_ps(t + j));
    for (int mask = _mm256_movemask_ps(_mm256_cmp_ps(v, l, _CMP_LE_OQ)); mask; mask &= mask - 1) {
      const int k = __builtin_ctz(static_cast<unsigned>(mask));
      out.emplace_back(qn + t[j + k], b0 + j + k);
    }
  }
  for (; j < m; ++j)
    if (qn + t[j] <= limit) out.emplace_back(qn + t[j], b0 + j);
}

float row_min(const float* t, int64_t m) {
  if (kernel_isa() >= Isa::avx2) return row_min_avx2(t, m);
  float r = std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < m; ++j) r = std::min(r, t[j]);
  return r;
}

void scan(const float* t, int64_t m, float qn, float limit, int64_t b0,
          std::vector<std::pair<float, int64_t>>& out) {
  if (kernel_isa() >= Isa::avx2) return scan_avx2(t, m, qn, limit, b0, out);
  for (int64_t j = 0; j < m; ++j)
    if (qn + t[j] <= limit) out.emplace_back(qn + t[j], b0 + j);
}

// Folds one tile row (t[j] = ||b_j||^2 - 2 q.b_j for base rows b0 + j) into the row's state:
// the new minimum, then the candidates within the margin of it.
void fold_tile_row(RowState& st, float qn, const float* t, int64_t m, int64_t b0, bool recheck) {
  const float tile_min = row_min(t, m);
  const float v_min = qn + tile_min;
  if (v_min < st.best) {
    st.best = v_min;
    st.best_index = b0 + (std::find(t, t + m, tile_min) - t);
  }
  if (!recheck || st.overflow) return;
  const float limit = st.best + st.margin;
  std::erase_if(st.candidates, [limit](const auto& c) { return c.first > limit; });
  if (v_min > limit) return;
  scan(t, m, qn, limit, b0, st.candidates);
  if (st.candidates.size() > kMaxCandidates) {
    st.overflow = true;
    st.candidates.clear();
  }
}

// The exact minimum of one query: over its candidates, or over every base row after an overflow.
std::pair<double, int64_t> exact_minimum(const RowState& st, const float* q, const float* base,
                                         int64_t nb, int64_t dim) {
  double best = std::numeric_limits<double>::infinity();
  int64_t at_ = -1;
  auto consider = [&](int64_t j) {
    const double d = nn::exact_sq_l2(q, base + j * dim, dim);
    if (d < best || (d == best && j < at_)) {
      best = d;
      at_ = j;
    }
  };
  if (st.overflow) {
    for (int64_t j = 0; j < nb; ++j) consider(j);
  } else {
    for (const auto& c : st.candidates) consider(c.second);
  }
  return {best, at_};
}

bool amx_usable() { return kernel_isa() >= Isa::avx512 && nn::amx_bf16_supported(); }
bool avx512_bf16_usable() { return kernel_isa() >= Isa::avx512 && nn::avx512_bf16_supported(); }

bool is_bf16(NearestKernel k) {
  return k == NearestKernel::amx_bf16 || k == NearestKernel::avx512_bf16;
}

// The kernel a search uses: AMX where the CPU has it, else AVX512-BF16 where a short measurement
// says it beats the float32 GEMM on this CPU, else f32 (and f32 when the values are out of
// bfloat16's range or the re-check is off).
NearestKernel pick_kernel(const NearestOptions& o, const float* base, int64_t nb, int64_t dim,
                          double bn_max) {
  switch (o.kernel) {
    case NearestKernel::f32_gemm:
      return NearestKernel::f32_gemm;
    case NearestKernel::amx_bf16:
    case NearestKernel::avx512_bf16: {
      const bool amx = o.kernel == NearestKernel::amx_bf16;
      if (amx ? !nn::amx_bf16_supported() : !nn::avx512_bf16_supported())
        fail(
            "nearest neighbours: --nn-kernel {} needs a CPU with {} (and a kernel that allows "
            "it); use auto or f32",
            nearest_kernel_name(o.kernel), amx ? "AMX-BF16" : "AVX512-BF16");
      if (!o.recheck) fail("nearest neighbours: the bfloat16 kernels always re-check in float64");
      if (!(bn_max < kBf16MaxNorm)) fail("nearest neighbours: base norms too large for bfloat16");
      return o.kernel;
    }
    case NearestKernel::automatic:
      break;
  }
  if (!o.recheck || !(bn_max < kBf16MaxNorm)) return NearestKernel::f32_gemm;
  if (amx_usable()) return NearestKernel::amx_bf16;
  if (avx512_bf16_usable() && avx512_bf16_beats_f32(base, nb, dim))
    return NearestKernel::avx512_bf16;
  return NearestKernel::f32_gemm;
}

// Searches one block of queries (float32 GEMM tiles through libtorch), leaving rows[0, n) ready
// for the re-check.
struct F32Search {
  const float* base = nullptr;
  int64_t nb = 0, dim = 0, bb = 0;
  at::Tensor B, bn;
  double rel_error = 0, bn_max = 0;
  double abs_error = 0;  // float32 denormals: half a unit (2^-150) per operation, d + 4 of them
  at::Tensor tile_buf;

  void block(const at::Tensor& qbuf, int64_t n, const float* qn, RowState* rows, bool recheck) {
    for (int64_t i = 0; i < n; ++i)
      rows[i] = nn::fresh_row(static_cast<float>(2 * (rel_error * (qn[i] + bn_max) + abs_error)));
    const at::Tensor Q = qbuf.narrow(0, 0, n);
    for (int64_t b0 = 0; b0 < nb; b0 += bb) {
      const int64_t m = std::min(bb, nb - b0);
      at::Tensor T = tile_buf.narrow(0, 0, n * m).view({n, m});
      at::addmm_out(T, bn.narrow(0, b0, m).unsqueeze(0), Q, B.narrow(0, b0, m).t(), 1, -2);
      const float* tp = T.data_ptr<float>();
      nn::parallel_chunks(n, 256, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) fold_tile_row(rows[i], qn[i], tp + i * m, m, b0, recheck);
      });
    }
  }
};

}  // namespace

// (vdpbf16ps runs at twice the float32 FMA rate on Zen 4, and at about half of it on the Sapphire
// Rapids class core this was written on: measured, not assumed.)
bool avx512_bf16_beats_f32(const float* base, int64_t nb, int64_t dim) {
  if (!nn::avx512_bf16_supported()) fail("nearest neighbours: this CPU has no AVX512-BF16");
  static const bool faster = [&] {
    const int64_t n = std::min<int64_t>(nb, 256), m = std::min<int64_t>(nb, 4096);
    std::vector<float> norms(static_cast<std::size_t>(m));
    row_norms(base, m, dim, norms.data());
    const nn::PackedBase packed = nn::pack_base(base, m, dim, norms.data());
    F32Search f32;
    f32.nb = m;
    f32.bb = m;
    f32.B = at::from_blob(const_cast<float*>(base), {m, dim}, at::kFloat);
    f32.bn = at::from_blob(norms.data(), {m}, at::kFloat);
    f32.tile_buf = at::empty({n * m}, at::kFloat);
    const at::Tensor queries = f32.B.narrow(0, 0, n);
    std::vector<RowState> rows(static_cast<std::size_t>(n));
    auto best_of_3 = [](const std::function<void()>& f) {
      double best = std::numeric_limits<double>::infinity();
      for (int r = 0; r < 3; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(
            best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      return best;
    };
    const double bf16 = best_of_3([&] {
      for (auto& r : rows) r = nn::fresh_row(0);
      nn::bf16_filter(nn::Bf16Engine::avx512, packed, base, n, norms.data(), rows.data(),
                      kMaxBf16Candidates);
    });
    const double f32s = best_of_3([&] { f32.block(queries, n, norms.data(), rows.data(), true); });
    log::debug("nearest neighbours: avx512-bf16 {:.2f} ms vs f32 {:.2f} ms on a {} x {} sample",
               bf16 * 1e3, f32s * 1e3, n, m);
    return bf16 < f32s;
  }();
  return faster;
}

const char* nearest_kernel_name(NearestKernel k) {
  switch (k) {
    case NearestKernel::automatic:
      return "auto";
    case NearestKernel::f32_gemm:
      return "f32";
    case NearestKernel::amx_bf16:
      return "amx-bf16";
    case NearestKernel::avx512_bf16:
      return "avx512-bf16";
  }
  return "?";
}

NearestKernel parse_nearest_kernel(const std::string& name) {
  for (auto k : {NearestKernel::automatic, NearestKernel::f32_gemm, NearestKernel::amx_bf16,
                 NearestKernel::avx512_bf16})
    if (name == nearest_kernel_name(k)) return k;
  fail("nearest-neighbour kernel '{}': expected auto, f32, amx-bf16 or avx512-bf16", name);
}

Nearest nearest_sq_l2(const RowSource& queries, int64_t nq, const float* base, int64_t nb,
                      int64_t dim, const NearestOptions& o) {
  if (nb <= 0) fail("nearest neighbours: the base set is empty");
  if (dim <= 0) fail("nearest neighbours: vectors have no dimensions");
  Nearest out;
  out.dist2.assign(static_cast<std::size_t>(nq), 0.0);
  out.index.assign(static_cast<std::size_t>(nq), -1);
  at::Tensor bn = at::empty({nb}, at::kFloat);
  row_norms(base, nb, dim, bn.data_ptr<float>());
  const double bn_max = bn.max().item<double>();
  const NearestKernel kernel = pick_kernel(o, base, nb, dim, bn_max);
  out.kernel = nearest_kernel_name(kernel);
  if (nq == 0) return out;

  const bool bf16 = is_bf16(kernel);
  const nn::Bf16Engine engine =
      kernel == NearestKernel::amx_bf16 ? nn::Bf16Engine::amx : nn::Bf16Engine::avx512;
  const int64_t bb = std::min(nb, o.base_block > 0 ? o.base_block : kAutoBaseBlock);
  const int64_t auto_qb =
      bf16 ? kBf16QueryBlock : std::clamp<int64_t>(kTileBytes / (4 * bb), 64, 8192);
  const int64_t qb = std::min(nq, o.query_block > 0 ? o.query_block : auto_qb);
  const double gamma = dim * kUnitRoundoff / (1 - dim * kUnitRoundoff);
  F32Search f32;
  f32.base = base;
  f32.nb = nb;
  f32.dim = dim;
  f32.bb = bb;
  f32.B = at::from_blob(const_cast<float*>(base), {nb, dim}, at::kFloat);
  f32.bn = bn;
  f32.rel_error = gamma + 10 * kUnitRoundoff;  // of ||q||^2 + ||b||^2
  f32.bn_max = bn_max;
  f32.abs_error = (dim + 4) * std::ldexp(1.0, -150);
  if (!bf16) f32.tile_buf = at::empty({qb * bb}, at::kFloat);
  nn::PackedBase packed;
  if (bf16) packed = nn::pack_base(base, nb, dim, bn.data_ptr<float>());

  at::Tensor qbuf = at::empty({qb, dim}, at::kFloat);
  std::vector<float> qn(static_cast<std::size_t>(qb));
  std::vector<RowState> rows(static_cast<std::size_t>(qb));
  std::atomic<int64_t> candidates{0}, rescanned{0};
  std::unique_ptr<Progress> bar;
  if (o.progress) bar = std::make_unique<Progress>(o.label, static_cast<uint64_t>(nq));

  for (int64_t q0 = 0; q0 < nq; q0 += qb) {
    const int64_t n = std::min(qb, nq - q0);
    float* qp = qbuf.data_ptr<float>();
    queries(q0, n, qp);
    row_norms(qp, n, dim, qn.data());
    if (bf16) {
      for (int64_t i = 0; i < n; ++i) {
        rows[i] = nn::fresh_row(nn::bf16_margin(qn[i], packed));
        rows[i].overflow = !(qn[i] < kBf16MaxNorm);  // rescanned in float64 instead
      }
      nn::bf16_filter(engine, packed, qp, n, qn.data(), rows.data(), kMaxBf16Candidates);
    } else {
      f32.block(qbuf, n, qn.data(), rows.data(), o.recheck);
    }
    nn::parallel_chunks(n, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const auto k = static_cast<std::size_t>(q0 + i);
        if (!o.recheck) {
          out.dist2[k] = rows[i].best;
          out.index[k] = rows[i].best_index;
          continue;
        }
        std::tie(out.dist2[k], out.index[k]) = exact_minimum(rows[i], qp + i * dim, base, nb, dim);
        if (rows[i].overflow)
          rescanned.fetch_add(1);
        else
          candidates.fetch_add(static_cast<int64_t>(rows[i].candidates.size()));
      }
    });
    if (bar) bar->tick(static_cast<uint64_t>(n));
  }
  if (bar) bar->finish();
  out.candidates = candidates.load();
  out.rescanned = rescanned.load();
  return out;
}

Nearest nearest_sq_l2(const float* queries, int64_t nq, const float* base, int64_t nb, int64_t dim,
                      const NearestOptions& o) {
  auto source = [queries, dim](int64_t start, int64_t n, float* dst) {
    std::memcpy(dst, queries + start * dim, static_cast<std::size_t>(n * dim) * sizeof(float));
  };
  return nearest_sq_l2(source, nq, base, nb, dim, o);
}

// ---- the gain ----------------------------------------------------------------------------------

namespace {

// Neumaier-compensated sum.
struct Sum {
  double s = 0, c = 0;
  void add(double x) {
    const double t = s + x;
    c += std::abs(s) >= std::abs(x) ? (s - t) + x : (x - t) + s;
    s = t;
  }
  double value() const { return s + c; }
};

}  // namespace

GainSummary summarize_gain(const std::vector<double>& dist2, const std::vector<std::string>& types,
                           int points_per_decade) {
  if (!types.empty() && types.size() != dist2.size())
    fail("summarize_gain: {} types for {} distances", types.size(), dist2.size());
  if (points_per_decade < 1) fail("the curve needs at least 1 point per decade");
  GainSummary g;
  g.items = static_cast<int64_t>(dist2.size());
  std::vector<int64_t> curve_n;
  for (int k = 0;; ++k) {
    const auto n =
        static_cast<int64_t>(std::llround(std::pow(10.0, double(k) / points_per_decade)));
    if (n >= g.items) break;
    if (curve_n.empty() || n > curve_n.back()) curve_n.push_back(n);
  }
  if (g.items > 0) curve_n.push_back(g.items);

  Sum total;
  std::vector<Sum> group_sums;
  std::unordered_map<std::string, std::size_t> group_of;
  std::size_t next_point = 0;
  for (std::size_t i = 0; i < dist2.size(); ++i) {
    total.add(dist2[i]);
    if (!types.empty()) {
      auto [it, fresh] = group_of.emplace(types[i], g.by_type.size());
      if (fresh) {
        g.by_type.push_back({types[i], 0, 0});
        group_sums.emplace_back();
      }
      g.by_type[it->second].items++;
      group_sums[it->second].add(dist2[i]);
    }
    const auto n = static_cast<int64_t>(i + 1);
    if (next_point < curve_n.size() && curve_n[next_point] == n) {
      g.curve.push_back({n, total.value() / static_cast<double>(n)});
      ++next_point;
    }
  }
  g.gain = g.items > 0 ? total.value() / static_cast<double>(g.items) : 0.0;
  for (std::size_t k = 0; k < g.by_type.size(); ++k)
    g.by_type[k].gain = group_sums[k].value() / static_cast<double>(g.by_type[k].items);
  return g;
}

// ---- the job -----------------------------------------------------------------------------------

namespace {

struct TextRows {
  fs::path file;
  std::vector<std::string> text, type;
};

std::string field_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// "{name}" placeholders (identifiers only) filled from the row's fields.
std::string render_row(const std::string& tmpl, const json& row, const std::string& where) {
  std::string out;
  std::size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl[i] == '{') {
      const std::size_t close = tmpl.find('}', i);
      if (close != std::string::npos && close > i + 1) {
        const std::string name = tmpl.substr(i + 1, close - i - 1);
        bool ident = true;
        for (char c : name)
          ident = ident && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
        if (ident) {
          if (!row.contains(name) || row[name].is_null())
            fail("{}: the text template names {{{}}} but the row has no field '{}'", where, name,
                 name);
          out += field_text(row[name]);
          i = close + 1;
          continue;
        }
      }
    }
    out.push_back(tmpl[i++]);
  }
  return out;
}

std::string row_text(const json& row, const std::string& field, const std::string& tmpl,
                     const std::string& where) {
  if (!tmpl.empty()) return render_row(tmpl, row, where);
  if (!field.empty()) return require_string(row, field.c_str(), where);
  for (const char* f : {"query", "question", "problem"})
    if (row.contains(f) && row[f].is_string()) return row[f].get<std::string>();
  fail("{}: the row has no text field (query, question or problem); name one with --field", where);
}

TextRows read_texts(const fs::path& file, const std::string& field, const std::string& tmpl,
                    const std::string& type_field) {
  TextRows r;
  r.file = file;
  JsonlReader reader(file);
  json row;
  while (reader.next(row)) {
    const std::string where = reader.where();
    r.text.push_back(row_text(row, field, tmpl, where));
    const auto it = type_field.empty() ? row.end() : row.find(type_field);
    r.type.push_back(it == row.end() || it->is_null() ? "" : field_text(*it));
  }
  if (r.text.empty()) fail("{}: no rows", file.string());
  return r;
}

json file_meta(const fs::path& file, int64_t rows) {
  json j = eval::data_file_provenance(file);                      // path, sha256, bytes
  j["fnv1a64"] = fmt::format("{:016x}", train::hash_file(file));  // as the SFT cache keys it
  j["rows"] = rows;
  return j;
}

json summary_json(const DiversityOptions& o, const Embedder& e, const DiversityResult& r,
                  const std::vector<TextRows>& base, const TextRows& fresh, double embed_s,
                  double search_s) {
  json by_type = json::object();
  for (const auto& g : r.summary.by_type)
    by_type[g.type.empty() ? "(none)" : g.type] = {{"items", g.items}, {"gain", g.gain}};
  json curve = json::array();
  for (const auto& p : r.summary.curve) curve.push_back({{"n", p.n}, {"gain", p.gain}});
  json base_files = json::array();
  for (const auto& b : base)
    base_files.push_back(file_meta(b.file, static_cast<int64_t>(b.text.size())));
  auto embed_stats = [](const EmbedStats& s) {
    return json{
        {"texts", s.texts}, {"unique", s.unique}, {"cached", s.cached}, {"embedded", s.embedded}};
  };
  return {
      {"kind", "diversity"},
      {"gain", r.summary.gain},
      {"items", r.summary.items},
      {"base_rows", r.base_rows},
      {"base_unique", r.base_unique},
      {"by_type", by_type},
      {"curve", curve},
      {"data",
       {{"new", file_meta(fresh.file, static_cast<int64_t>(fresh.text.size()))},
        {"base", base_files}}},
      {"texts",
       {{"field", o.field.empty() ? "auto (query, question, problem)" : o.field},
        {"base_field", o.base_field},
        {"new_field", o.new_field},
        {"template", o.text_template},
        {"type_field", o.type_field}}},
      {"embedding",
       {{"backend", e.backend}, {"model", e.model}, {"model_id", e.model_id}, {"dim", r.dim}}},
      {"cache", {{"base", embed_stats(r.base_embed)}, {"new", embed_stats(r.new_embed)}}},
      {"nearest",
       {{"method", !o.nearest.recheck ? "float32 blocked GEMM"
                   : r.nearest.kernel == "amx-bf16"
                       ? "exact: bfloat16 AMX tiles, candidates re-checked in float64"
                   : r.nearest.kernel == "avx512-bf16"
                       ? "exact: bfloat16 AVX512-BF16 blocks, candidates re-checked in float64"
                       : "exact: float32 blocked GEMM, candidates re-checked in float64"},
        {"kernel", r.nearest.kernel},
        {"candidates_rechecked", r.nearest.candidates},
        {"rescanned", r.nearest.rescanned}}},
      {"seconds", {{"embed", embed_s}, {"search", search_s}}},
      {"metamath_version", "0.1.0"},
  };
}

void write_outputs(const fs::path& dir, const DiversityResult& r, const TextRows& fresh) {
  fs::create_directories(dir);
  write_file_atomic(dir / "diversity.json", r.report.dump(2) + "\n");
  std::string t = "type,items,gain\n";
  for (const auto& g : r.summary.by_type)
    t += fmt::format("{},{},{:.9g}\n", g.type.empty() ? "(none)" : g.type, g.items, g.gain);
  write_file_atomic(dir / "by_type.csv", t);
  std::string c = "n,gain\n";
  for (const auto& p : r.summary.curve) c += fmt::format("{},{:.9g}\n", p.n, p.gain);
  write_file_atomic(dir / "curve.csv", c);
  JsonlWriter w(dir / "nearest.jsonl");
  for (std::size_t i = 0; i < r.nearest.dist2.size(); ++i)
    w.write({{"i", i},
             {"type", fresh.type[i]},
             {"dist2", r.nearest.dist2[i]},
             {"nearest", r.nearest.index[i]}});
  w.commit();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

fs::path default_embedding_cache_dir() {
  if (const char* c = std::getenv("METAMATH_CACHE"); c && *c) return fs::path(c) / "embeddings";
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return fs::path(x) / "metamath" / "embeddings";
  if (const char* h = std::getenv("HOME"); h && *h)
    return fs::path(h) / ".cache" / "metamath" / "embeddings";
  return fs::path(".cache") / "metamath" / "embeddings";
}

DiversityResult run_diversity(const DiversityOptions& o, Embedder& embedder) {
  if (o.base.empty()) fail("diversity: give at least one --base file");
  if (o.new_set.empty()) fail("diversity: give the --new file");
  if (o.out.empty()) fail("diversity: give --out DIR");
  std::vector<TextRows> base;
  for (const auto& f : o.base)
    base.push_back(
        read_texts(f, o.base_field.empty() ? o.field : o.base_field, o.text_template, ""));
  const TextRows fresh = read_texts(o.new_set, o.new_field.empty() ? o.field : o.new_field,
                                    o.text_template, o.type_field);

  // Embeddings (cached). Base rows are deduplicated: a repeated text is one row of the matrix.
  const auto t0 = std::chrono::steady_clock::now();
  EmbeddingCache cache(o.cache_dir.empty() ? default_embedding_cache_dir() : o.cache_dir,
                       embedder.model_id);
  DiversityResult r;
  std::vector<std::string> base_texts;
  for (const auto& b : base) base_texts.insert(base_texts.end(), b.text.begin(), b.text.end());
  r.base_rows = static_cast<int64_t>(base_texts.size());
  const std::vector<TextHash> base_hashes =
      ensure_embedded(base_texts, embedder, cache, &r.base_embed, o.progress, "embed base");
  const std::vector<TextHash> new_hashes =
      ensure_embedded(fresh.text, embedder, cache, &r.new_embed, o.progress, "embed new");
  const double embed_s = seconds_since(t0);
  r.dim = cache.dim();

  std::vector<TextHash> unique_base;
  std::vector<int64_t> base_row_of;  // matrix row -> first base row with that text
  std::unordered_set<TextHash, TextHashHasher> seen;
  for (std::size_t i = 0; i < base_hashes.size(); ++i)
    if (seen.insert(base_hashes[i]).second) {
      unique_base.push_back(base_hashes[i]);
      base_row_of.push_back(static_cast<int64_t>(i));
    }
  r.base_unique = static_cast<int64_t>(unique_base.size());
  std::vector<float> base_matrix(static_cast<std::size_t>(r.base_unique * r.dim));
  gather_vectors(cache, unique_base, 0, r.base_unique, base_matrix.data());

  // Nearest base row of every new item, the new vectors streamed from the cache a block at a time.
  const auto t1 = std::chrono::steady_clock::now();
  NearestOptions no = o.nearest;
  no.progress = o.progress;
  auto source = [&](int64_t start, int64_t n, float* dst) {
    gather_vectors(cache, new_hashes, start, n, dst);
  };
  r.nearest = nearest_sq_l2(source, static_cast<int64_t>(new_hashes.size()), base_matrix.data(),
                            r.base_unique, r.dim, no);
  for (auto& j : r.nearest.index) j = base_row_of[static_cast<std::size_t>(j)];
  const double search_s = seconds_since(t1);

  const bool typed =
      std::any_of(fresh.type.begin(), fresh.type.end(), [](const auto& t) { return !t.empty(); });
  r.summary = summarize_gain(r.nearest.dist2, typed ? fresh.type : std::vector<std::string>{},
                             o.points_per_decade);
  r.report = summary_json(o, embedder, r, base, fresh, embed_s, search_s);
  write_outputs(o.out, r, fresh);
  log::info("diversity gain {:.6g} over {} new items against {} base rows ({} distinct), {}-dim {}",
            r.summary.gain, r.summary.items, r.base_rows, r.base_unique, r.dim, embedder.model_id);
  return r;
}

}  // namespace metamath::analysis
