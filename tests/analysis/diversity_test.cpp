// Diversity gain: the exact nearest-neighbour search against float64 brute force (random data,
// block edges, near-ties where float32 alone is wrong, exact duplicates), a hand-checked example,
// the gain summary, the on-disk embedding cache (re-runs, a second new set, a killed run, a torn
// record), and the whole job on the real GSM8K/MATH data, in process and through the CLI with the
// local backend and the openai backend (our server over the same model).
#include "analysis/diversity.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "analysis/embedding.h"
#include "analysis/nn_kernel.h"
#include "core/atomic_file.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/sha256.h"
#include "llm/backend.h"
#include "llm/local_backend.h"
#include "model/init.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "serve/server.h"
#include "test_util.h"
#include "trigram_embedding.h"

namespace fs = std::filesystem;
namespace ma = metamath::analysis;
using metamath::json;
using metamath::testing::error_of;

namespace {

// float64 brute force: the minimum of sum (q - b)^2 over base rows, lowest index on ties.
std::pair<std::vector<double>, std::vector<int64_t>> brute_force(const std::vector<float>& q,
                                                                 const std::vector<float>& b,
                                                                 int64_t dim) {
  const int64_t nq = static_cast<int64_t>(q.size()) / dim,
                nb = static_cast<int64_t>(b.size()) / dim;
  std::vector<double> best(nq, INFINITY);
  std::vector<int64_t> at(nq, -1);
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < nb; ++j) {
      double s = 0;
      for (int64_t k = 0; k < dim; ++k) {
        const double t = double(q[i * dim + k]) - double(b[j * dim + k]);
        s += t * t;
      }
      if (s < best[i]) best[i] = s, at[i] = j;
    }
  return {best, at};
}

std::vector<float> normal(int64_t n, double mean, double sd, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(mean, sd);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<float>(d(rng));
  return v;
}

// n rows of centre.size() values: centre plus normal(0, sd) noise.
std::vector<float> around(const std::vector<float>& centre, int64_t n, double sd, uint64_t seed) {
  const int64_t dim = static_cast<int64_t>(centre.size());
  auto v = normal(n * dim, 0, sd, seed);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < dim; ++k) v[i * dim + k] += centre[k];
  return v;
}

// The float64 re-check leaves only float64 rounding: relative 1e-12 is ~1000x that for dim <= 64.
void expect_exact(const ma::Nearest& got, const std::vector<double>& want_d,
                  const std::vector<int64_t>& want_i) {
  ASSERT_EQ(got.dist2.size(), want_d.size());
  for (std::size_t i = 0; i < want_d.size(); ++i) {
    EXPECT_NEAR(got.dist2[i], want_d[i], 1e-12 * std::abs(want_d[i]) + 1e-300) << "query " << i;
    EXPECT_EQ(got.index[i], want_i[i]) << "query " << i;
  }
}

TEST(Nearest, HandCheckedExample) {
  // Base (0,0) and (3,4); new (1,0) -> 1 to (0,0); (3,3) -> 1 to (3,4); (6,8) -> 25 to (3,4).
  const std::vector<float> base = {0, 0, 3, 4}, q = {1, 0, 3, 3, 6, 8};
  ma::Nearest n = ma::nearest_sq_l2(q.data(), 3, base.data(), 2, 2);
  EXPECT_EQ(n.dist2, (std::vector<double>{1, 1, 25}));
  EXPECT_EQ(n.index, (std::vector<int64_t>{0, 1, 1}));
  ma::GainSummary g = ma::summarize_gain(n.dist2, {"A", "B", "A"});
  EXPECT_DOUBLE_EQ(g.gain, 9.0);  // (1 + 1 + 25) / 3
  ASSERT_EQ(g.by_type.size(), 2u);
  EXPECT_EQ(g.by_type[0].type, "A");
  EXPECT_EQ(g.by_type[0].items, 2);
  EXPECT_DOUBLE_EQ(g.by_type[0].gain, 13.0);
  EXPECT_DOUBLE_EQ(g.by_type[1].gain, 1.0);
  // 5 points per decade: n = 1, round(10^0.2) = 2, then the end (3).
  ASSERT_EQ(g.curve.size(), 3u);
  EXPECT_EQ(g.curve[1].n, 2);
  EXPECT_DOUBLE_EQ(g.curve[1].gain, 1.0);
  EXPECT_DOUBLE_EQ(g.curve[2].gain, 9.0);
}

TEST(Nearest, CurveIsLogSpacedAndEndsAtTheLastItem) {
  std::vector<double> d(1000);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = double(i);
  ma::GainSummary g = ma::summarize_gain(d, {}, 2);
  std::vector<int64_t> ns;
  for (const auto& p : g.curve) ns.push_back(p.n);
  // round(10^(k/2)): 1, 3, 10, 32, 100, 316, then 1000 itself.
  EXPECT_EQ(ns, (std::vector<int64_t>{1, 3, 10, 32, 100, 316, 1000}));
  EXPECT_DOUBLE_EQ(g.curve[3].gain, 15.5);  // mean of 0..31
  EXPECT_TRUE(g.by_type.empty());
}

TEST(Nearest, MatchesFloat64BruteForceAcrossBlockEdges) {
  // Offset data (mean 3): the norms are large against the distances, as with real embeddings.
  const int64_t dim = 37, nq = 301, nb = 517;
  const auto q = normal(nq * dim, 3, 1, 1), b = normal(nb * dim, 3, 1, 2);
  auto [want_d, want_i] = brute_force(q, b, dim);
  for (auto [qb, bb] : {std::pair<int64_t, int64_t>{0, 0}, {64, 100}, {1, 517}, {300, 1}}) {
    SCOPED_TRACE(testing::Message() << "query_block " << qb << " base_block " << bb);
    ma::NearestOptions o;
    o.query_block = qb;
    o.base_block = bb;
    expect_exact(ma::nearest_sq_l2(q.data(), nq, b.data(), nb, dim, o), want_d, want_i);
  }
}

TEST(Nearest, NearTiesAreResolvedExactlyWhereFloat32AloneIsWrong) {
  // Points 1e-3 apart around a centre of norm ~1e3: float32's ||a||^2 + ||b||^2 - 2ab has errors
  // far above the distances (~1e-6), so the float32 minimum is noise; the re-check is exact.
  const int64_t dim = 16, nb = 40, nq = 50;
  const auto centre = normal(dim, 250, 10, 3);
  const auto b = around(centre, nb, 1e-3, 4), q = around(centre, nq, 1e-3, 5);
  auto [want_d, want_i] = brute_force(q, b, dim);
  ma::Nearest exact = ma::nearest_sq_l2(q.data(), nq, b.data(), nb, dim);
  expect_exact(exact, want_d, want_i);
  EXPECT_GT(exact.candidates, nq);  // several candidates per query were needed

  ma::NearestOptions f32;
  f32.recheck = false;
  ma::Nearest rough = ma::nearest_sq_l2(q.data(), nq, b.data(), nb, dim, f32);
  double worst = 0;
  for (int64_t i = 0; i < nq; ++i)
    worst = std::max(worst, std::abs(rough.dist2[i] - want_d[i]) / want_d[i]);
  EXPECT_GT(worst, 0.1) << "float32 alone should be visibly wrong here, or the test proves nothing";
}

TEST(Nearest, MassiveTiesAreRescannedAndDuplicatesGiveTheLowestIndex) {
  // 200 copies of one point, one far point: every query has > 64 candidates within the margin.
  const int64_t dim = 8, nb = 201, nq = 5;
  std::vector<float> b(nb * dim, 1000.0f);
  for (int64_t k = 0; k < dim; ++k) b[200 * dim + k] = -5;
  auto q = normal(nq * dim, 1000, 1e-2, 6);
  auto [want_d, want_i] = brute_force(q, b, dim);
  ma::NearestOptions o;
  o.kernel = ma::NearestKernel::f32_gemm;  // past 64 candidates (the AMX kernel's limit is 256)
  ma::Nearest n = ma::nearest_sq_l2(q.data(), nq, b.data(), nb, dim, o);
  expect_exact(n, want_d, want_i);
  EXPECT_EQ(n.rescanned, nq);
  for (int64_t i = 0; i < nq; ++i) EXPECT_EQ(n.index[i], 0);
  expect_exact(ma::nearest_sq_l2(q.data(), nq, b.data(), nb, dim), want_d, want_i);  // auto
}

// ---- every kernel (forced), against float64 brute force and against each other ------------------

std::vector<ma::NearestKernel> kernels_here() {
  std::vector<ma::NearestKernel> k = {ma::NearestKernel::f32_gemm};
  if (ma::nn::amx_bf16_supported())
    k.push_back(ma::NearestKernel::amx_bf16);
  else
    std::printf("(this CPU has no AMX-BF16: the amx-bf16 kernel is not tested here)\n");
  if (ma::nn::avx512_bf16_supported())
    k.push_back(ma::NearestKernel::avx512_bf16);
  else
    std::printf("(this CPU has no AVX512-BF16: the avx512-bf16 kernel is not tested here)\n");
  return k;
}

ma::Nearest search_with(ma::NearestKernel k, const std::vector<float>& q,
                        const std::vector<float>& b, int64_t dim, int64_t query_block = 0) {
  ma::NearestOptions o;
  o.kernel = k;
  o.query_block = query_block;
  ma::Nearest n = ma::nearest_sq_l2(q.data(), static_cast<int64_t>(q.size()) / dim, b.data(),
                                    static_cast<int64_t>(b.size()) / dim, dim, o);
  EXPECT_EQ(n.kernel, ma::nearest_kernel_name(k));
  return n;
}

TEST(Nearest, EveryKernelGivesTheBruteForceAnswerBitForBit) {
  struct Case {
    const char* name;
    int64_t dim, nq, nb;
    double mean, sd;
  };
  // Odd sizes (padding of rows and dims), offset data, and OpenAI-sized vectors.
  for (const Case& c :
       {Case{"offset 37", 37, 301, 517, 3, 1}, Case{"unit 1536", 1536, 70, 250, 0, 1},
        Case{"tiny values", 40, 33, 65, 0, 1e-20}}) {
    SCOPED_TRACE(c.name);
    const auto q = normal(c.nq * c.dim, c.mean, c.sd, 7), b = normal(c.nb * c.dim, c.mean, c.sd, 8);
    auto [want_d, want_i] = brute_force(q, b, c.dim);
    std::vector<ma::Nearest> got;
    for (auto k : kernels_here()) {
      SCOPED_TRACE(ma::nearest_kernel_name(k));
      got.push_back(search_with(k, q, b, c.dim, 64));
      expect_exact(got.back(), want_d, want_i);
    }
    // Same candidates' float64 sums: every kernel returns the same bits.
    for (const auto& g : got) {
      EXPECT_EQ(g.dist2, got[0].dist2);
      EXPECT_EQ(g.index, got[0].index);
    }
  }
}

std::vector<std::pair<ma::NearestKernel, ma::nn::Bf16Engine>> bf16_kernels_here() {
  std::vector<std::pair<ma::NearestKernel, ma::nn::Bf16Engine>> k;
  if (ma::nn::amx_bf16_supported())
    k.emplace_back(ma::NearestKernel::amx_bf16, ma::nn::Bf16Engine::amx);
  if (ma::nn::avx512_bf16_supported())
    k.emplace_back(ma::NearestKernel::avx512_bf16, ma::nn::Bf16Engine::avx512);
  return k;
}

TEST(Nearest, Bfloat16KernelsAreExactWhereBfloat16AloneCannotTellRowsApart) {
  if (bf16_kernels_here().empty()) GTEST_SKIP() << "no AMX-BF16 or AVX512-BF16 on this CPU";
  for (auto [kernel, engine] : bf16_kernels_here()) {
    SCOPED_TRACE(ma::nearest_kernel_name(kernel));
    // Hand-checked: 1 + 2^-8 - 2^-12 rounds to 1 in bfloat16, so base rows A = (1, ..., 1) and
    // B = (x, ..., x) look identical to the tiles; the query (x, ..., x) is B itself (distance 0),
    // and A is at 64 (2^-8 - 2^-12)^2. bfloat16 alone would name A (the lower index).
    const int64_t dim = 64;
    const float x = 1.0f + 1.0f / 256 - 1.0f / 4096;
    std::vector<float> b(2 * dim, 1.0f);
    std::fill(b.begin() + dim, b.end(), x);
    const std::vector<float> q(dim, x);
    const ma::Nearest n = search_with(kernel, q, b, dim);
    EXPECT_EQ(n.index, (std::vector<int64_t>{1}));
    EXPECT_EQ(n.dist2, (std::vector<double>{0.0}));
    std::vector<ma::nn::RowState> rows = {ma::nn::fresh_row(0.0f)};
    const float qn = static_cast<float>(dim * double(x) * x);
    std::vector<float> norms = {float(dim), qn};
    const ma::nn::PackedBase packed = ma::nn::pack_base(b.data(), 2, dim, norms.data());
    ma::nn::bf16_filter(engine, packed, q.data(), 1, &qn, rows.data(), 256);
    EXPECT_EQ(rows[0].best_index, 0) << "the tiles should not see the difference";
    // The tiles' distance to A: ||b||^2 - 2 q.b = 64 - 2 * 64 exactly (bfloat16 ones), then + qn.
    EXPECT_EQ(rows[0].best, qn - 64.0f);
    const double d = 1.0 / 256 - 1.0 / 4096;
    EXPECT_DOUBLE_EQ(ma::nn::exact_sq_l2(q.data(), b.data(), dim), 64 * d * d);

    // Jitter far below bfloat16's resolution: every base row is a candidate, and past 256 of them
    // the row is rescanned in float64; still the brute-force answer.
    const auto centre = normal(dim, 1, 0.3, 9);
    for (int64_t nb : {100, 300}) {
      const auto bj = around(centre, nb, 1e-4, 10), qj = around(centre, 20, 1e-4, 11);
      auto [want_d, want_i] = brute_force(qj, bj, dim);
      const ma::Nearest got = search_with(kernel, qj, bj, dim);
      expect_exact(got, want_d, want_i);
      if (nb == 100)
        EXPECT_EQ(got.candidates, 20 * nb);
      else
        EXPECT_EQ(got.rescanned, 20);
    }
  }
}

// Both bfloat16 engines compute the same products and the same float32 sums up to order: on
// random 1,536-dim rows (every padding case: 45 query rows, 70 base rows), each block's
// approximate minimum is within the rigorous margin of the float64 distance, and both engines
// keep the true nearest row among their candidates.
TEST(Nearest, Bfloat16EnginesStayWithinTheirErrorBound) {
  if (bf16_kernels_here().empty()) GTEST_SKIP() << "no AMX-BF16 or AVX512-BF16 on this CPU";
  const int64_t dim = 1536, nq = 45, nb = 70;
  const auto q = normal(nq * dim, 0, 1, 21), b = normal(nb * dim, 0.5, 1, 22);
  auto [want_d, want_i] = brute_force(q, b, dim);
  std::vector<float> bn(nb), qn(nq);
  for (int64_t j = 0; j < nb; ++j)
    bn[j] = static_cast<float>(
        ma::nn::exact_sq_l2(b.data() + j * dim, std::vector<float>(dim, 0).data(), dim));
  for (int64_t i = 0; i < nq; ++i)
    qn[i] = static_cast<float>(
        ma::nn::exact_sq_l2(q.data() + i * dim, std::vector<float>(dim, 0).data(), dim));
  const ma::nn::PackedBase packed = ma::nn::pack_base(b.data(), nb, dim, bn.data());
  for (auto [kernel, engine] : bf16_kernels_here()) {
    SCOPED_TRACE(ma::nearest_kernel_name(kernel));
    std::vector<ma::nn::RowState> rows;
    for (int64_t i = 0; i < nq; ++i)
      rows.push_back(ma::nn::fresh_row(ma::nn::bf16_margin(qn[i], packed)));
    ma::nn::bf16_filter(engine, packed, q.data(), nq, qn.data(), rows.data(), 256);
    for (int64_t i = 0; i < nq; ++i) {
      const auto& st = rows[i];
      ASSERT_FALSE(st.overflow);
      EXPECT_LE(std::abs(st.best - want_d[i]), st.margin / 2) << "row " << i;
      bool found = false;
      for (const auto& c : st.candidates) found = found || c.second == want_i[i];
      EXPECT_TRUE(found) << "row " << i;
    }
  }
}

// The filter's loop nest: each thread takes chunks of query panels (at least 4 chunks per thread)
// and walks the base a block of panels at a time (2 panels at 1,536 dims, 3 at 1,000, 48 at 50),
// and the queries are packed 32 dimensions at a time with masked tails. Sizes with a partial last
// query panel, a partial last chunk, a partial last base block and a partial last dimension
// chunk. Random normal rows: each engine's approximate minimum is within its margin of the
// float64 one, and the whole search returns the brute-force answer. Small integers (exact in
// bfloat16, and every product and sum exact in float32): the approximate minimum is the float64
// one exactly, so any packing or blocking slip shows.
TEST(Nearest, Bfloat16FilterIsExactAcrossChunkBlockAndTailEdges) {
  if (bf16_kernels_here().empty()) GTEST_SKIP() << "no AMX-BF16 or AVX512-BF16 on this CPU";
  struct Case {
    int64_t dim, nq, nb;
    bool integers;
  };
  auto integers = [](int64_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> d(-8, 8);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = static_cast<float>(d(rng));
    return v;
  };
  for (const Case& c :
       {Case{1536, 600, 150, false}, Case{1000, 333, 200, false}, Case{50, 300, 5000, false},
        Case{1536, 600, 150, true}, Case{1000, 333, 200, true}, Case{50, 300, 5000, true}}) {
    SCOPED_TRACE("dim " + std::to_string(c.dim) + (c.integers ? ", integers" : ""));
    const auto q = c.integers ? integers(c.nq * c.dim, 31) : normal(c.nq * c.dim, 0, 1, 31);
    const auto b = c.integers ? integers(c.nb * c.dim, 32) : normal(c.nb * c.dim, 0.2, 1, 32);
    auto [want_d, want_i] = brute_force(q, b, c.dim);
    const std::vector<float> zero(c.dim, 0.0f);
    std::vector<float> bn(c.nb), qn(c.nq);
    for (int64_t j = 0; j < c.nb; ++j)
      bn[j] = static_cast<float>(ma::nn::exact_sq_l2(b.data() + j * c.dim, zero.data(), c.dim));
    for (int64_t i = 0; i < c.nq; ++i)
      qn[i] = static_cast<float>(ma::nn::exact_sq_l2(q.data() + i * c.dim, zero.data(), c.dim));
    const ma::nn::PackedBase packed = ma::nn::pack_base(b.data(), c.nb, c.dim, bn.data());
    for (auto [kernel, engine] : bf16_kernels_here()) {
      SCOPED_TRACE(ma::nearest_kernel_name(kernel));
      std::vector<ma::nn::RowState> rows;
      for (int64_t i = 0; i < c.nq; ++i)
        rows.push_back(ma::nn::fresh_row(ma::nn::bf16_margin(qn[i], packed)));
      ma::nn::bf16_filter(engine, packed, q.data(), c.nq, qn.data(), rows.data(), 256);
      for (int64_t i = 0; i < c.nq; ++i) {
        if (c.integers) {
          EXPECT_EQ(rows[i].best, want_d[i]) << "row " << i;
          continue;
        }
        ASSERT_FALSE(rows[i].overflow) << "row " << i;
        EXPECT_LE(std::abs(rows[i].best - want_d[i]), rows[i].margin / 2) << "row " << i;
      }
      expect_exact(search_with(kernel, q, b, c.dim), want_d, want_i);
    }
  }
}

TEST(Nearest, KernelChoiceFollowsTheCpuAndMetamathIsa) {
  const std::vector<float> base = {0, 0, 3, 4}, q = {1, 0};
  const bool amx = ma::nn::amx_bf16_supported() && metamath::kernel_isa() >= metamath::Isa::avx512;
  const std::string picked = ma::nearest_sq_l2(q.data(), 1, base.data(), 2, 2).kernel;
  if (amx)
    EXPECT_EQ(picked, "amx-bf16");
  else if (ma::nn::avx512_bf16_supported() && metamath::kernel_isa() >= metamath::Isa::avx512)
    EXPECT_TRUE(picked == "avx512-bf16" || picked == "f32") << picked;  // by measurement
  else
    EXPECT_EQ(picked, "f32");
  {
    metamath::ScopedIsaLimit limit(metamath::Isa::avx2);
    EXPECT_EQ(ma::nearest_sq_l2(q.data(), 1, base.data(), 2, 2).kernel, "f32");
  }
  if (ma::nn::avx512_bf16_supported()) {
    // The measured choice auto makes without AMX runs on any base and is remembered.
    const auto sample = normal(300 * 64, 0, 1, 5), other = normal(40 * 8, 0, 1, 6);
    const bool first = ma::avx512_bf16_beats_f32(sample.data(), 300, 64);
    EXPECT_EQ(ma::avx512_bf16_beats_f32(other.data(), 40, 8), first);
  }
  ma::NearestOptions rough;
  rough.recheck = false;  // float32 values only: the f32 kernel
  EXPECT_EQ(ma::nearest_sq_l2(q.data(), 1, base.data(), 2, 2, rough).kernel, "f32");
  rough.kernel = ma::NearestKernel::amx_bf16;
  EXPECT_NE(error_of([&] { ma::nearest_sq_l2(q.data(), 1, base.data(), 2, 2, rough); }), "");
  rough.kernel = ma::NearestKernel::avx512_bf16;
  EXPECT_NE(error_of([&] { ma::nearest_sq_l2(q.data(), 1, base.data(), 2, 2, rough); }), "");
  EXPECT_EQ(ma::parse_nearest_kernel("amx-bf16"), ma::NearestKernel::amx_bf16);
  EXPECT_EQ(ma::parse_nearest_kernel("avx512-bf16"), ma::NearestKernel::avx512_bf16);
  EXPECT_NE(error_of([] {
              ma::parse_nearest_kernel("gpu");
            }).find("expected auto, f32, amx-bf16 or avx512-bf16"),
            std::string::npos);
}

TEST(Nearest, ErrorsNameTheProblem) {
  const std::vector<float> v = {1, 2};
  EXPECT_NE(
      error_of([&] { ma::nearest_sq_l2(v.data(), 1, v.data(), 0, 2); }).find("base set is empty"),
      std::string::npos);
}

// ---- embedding cache ---------------------------------------------------------------------------

using metamath::testing::trigram_vector;

struct CountingEmbedder {
  int calls = 0, texts = 0, fail_on_call = 0;
  ma::Embedder make() {
    ma::Embedder e;
    e.model_id = "test trigram24";
    e.backend = "test";
    e.batch = 3;
    e.embed = [this](const std::vector<std::string>& t) {
      if (++calls == fail_on_call) throw metamath::Error("killed");
      texts += static_cast<int>(t.size());
      std::vector<std::vector<float>> out;
      for (const auto& s : t) out.push_back(trigram_vector(s));
      return out;
    };
    return e;
  }
};

TEST(EmbeddingCache, ReRunsEmbedOnlyWhatIsNewAndAKilledRunKeepsItsBatches) {
  const fs::path dir = metamath::testing::temp_dir("emb_cache");
  const std::vector<std::string> first = {"alpha one",  "beta two",     "gamma three", "alpha one",
                                          "delta four", "epsilon five", "zeta six",    "eta seven"};
  CountingEmbedder c;
  ma::Embedder e = c.make();
  {
    ma::EmbeddingCache cache(dir, e.model_id);
    ma::EmbedStats s;
    auto h = ma::ensure_embedded(first, e, cache, &s);
    EXPECT_EQ(s.unique, 7);
    EXPECT_EQ(s.embedded, 7);
    EXPECT_EQ(c.texts, 7);  // the repeated text is embedded once
    std::vector<float> got(24);
    cache.read(h[1], got.data());
    EXPECT_EQ(got, trigram_vector("beta two"));
  }
  {
    ma::EmbeddingCache cache(dir, e.model_id);  // reopened from disk
    ma::EmbedStats s;
    ma::ensure_embedded(first, e, cache, &s);
    EXPECT_EQ(s.cached, 7);
    EXPECT_EQ(s.embedded, 0);
    EXPECT_EQ(c.texts, 7);
    // A second set: only its two new texts are embedded.
    ma::ensure_embedded({"beta two", "theta eight", "iota nine"}, e, cache, &s);
    EXPECT_EQ(s.embedded, 2);
    EXPECT_EQ(c.texts, 9);
  }
  {
    // Killed on the second call: the first batch (3 texts) stays cached.
    CountingEmbedder k;
    k.fail_on_call = 2;
    ma::Embedder ke = k.make();
    ma::EmbeddingCache cache(dir, ke.model_id);
    const std::vector<std::string> more = {"k1 text", "k2 text", "k3 text", "k4 text", "k5 text"};
    EXPECT_EQ(error_of([&] { ma::ensure_embedded(more, ke, cache); }), "killed");
    ma::EmbeddingCache again(dir, ke.model_id);
    ma::EmbedStats s;
    CountingEmbedder r;
    ma::Embedder re = r.make();
    ma::ensure_embedded(more, re, again, &s);
    EXPECT_EQ(s.cached, 3);
    EXPECT_EQ(s.embedded, 2);
  }
}

TEST(EmbeddingCache, TornRecordIsDroppedAndOtherModelsOrJunkAreErrors) {
  const fs::path dir = metamath::testing::temp_dir("emb_torn");
  CountingEmbedder c;
  ma::Embedder e = c.make();
  fs::path file;
  {
    ma::EmbeddingCache cache(dir, e.model_id);
    ma::ensure_embedded({"one", "two", "three", "four"}, e, cache);
    file = cache.file();
  }
  fs::resize_file(file, fs::file_size(file) - 7);  // a writer killed mid-record
  {
    ma::EmbeddingCache cache(dir, e.model_id);
    EXPECT_EQ(cache.size(), 3);
    ma::EmbedStats s;
    auto h = ma::ensure_embedded({"one", "two", "three", "four", "five"}, e, cache, &s);
    EXPECT_EQ(s.embedded, 2);  // the torn one again, and the new one
    std::vector<float> got(24);
    cache.read(h[3], got.data());
    EXPECT_EQ(got, trigram_vector("four"));
  }
  ma::EmbeddingCache reopened(dir, e.model_id);
  EXPECT_EQ(reopened.size(), 5);

  // A file under this model's name holding another model's vectors, or not a cache at all.
  const fs::path other = metamath::testing::temp_dir("emb_other");
  fs::copy_file(file, other / ma::EmbeddingCache(other, "test other").file().filename());
  EXPECT_NE(error_of([&] { ma::EmbeddingCache(other, "test other"); }).find("holds embeddings of"),
            std::string::npos);
  const fs::path junk = metamath::testing::temp_dir("emb_junk");
  metamath::write_file_atomic(junk / ma::EmbeddingCache(junk, "x").file().filename(),
                              "not a cache file at all");
  EXPECT_NE(error_of([&] { ma::EmbeddingCache(junk, "x"); }).find("not an embedding cache"),
            std::string::npos);
}

TEST(EmbeddingCache, TextHashIsFnv1a128) {
  // FNV-1a 128 of "" is the offset basis; of "a" from the reference's published test vector.
  EXPECT_EQ(ma::text_hash("").hex(), "6c62272e07bb014262b821756295c58d");
  EXPECT_EQ(ma::text_hash("a").hex(), "d228cb696f1a8caf78912b704e4a8964");
}

// ---- the whole job on real data ----------------------------------------------------------------

std::vector<std::string> field_of(const fs::path& file, const char* field, std::size_t limit = 0) {
  std::vector<std::string> out;
  for (const json& j : metamath::read_jsonl(file)) {
    if (limit && out.size() == limit) break;
    out.push_back(j[field].get<std::string>());
  }
  return out;
}

TEST(Diversity, RealDataMatchesBruteForceOverallPerTypeAndCurve) {
  METAMATH_REQUIRE_DATA(data);
  const fs::path dir = metamath::testing::temp_dir("div_real");
  // New: 400 MATH test problems (type = subject). Base: GSM8K train + MATH train (15k rows).
  std::string body;
  std::size_t n = 0;
  for (const json& j : metamath::read_jsonl(data / "math/test.jsonl")) {
    if (n++ == 400) break;
    body += json{{"problem", j["problem"]}, {"type", j["type"]}}.dump() + "\n";
  }
  metamath::write_file_atomic(dir / "new.jsonl", body);
  ma::DiversityOptions o;
  o.base = {data / "gsm8k/train.jsonl", data / "math/train.jsonl"};
  o.new_set = dir / "new.jsonl";
  o.out = dir / "out";
  o.cache_dir = dir / "cache";
  o.progress = false;
  CountingEmbedder c;
  ma::Embedder e = c.make();
  e.batch = 4096;
  ma::DiversityResult r = ma::run_diversity(o, e);

  // Independent: vectors straight from the stand-in model, float64 brute force, plain means.
  std::vector<std::string> base_text = field_of(data / "gsm8k/train.jsonl", "question");
  for (auto& t : field_of(data / "math/train.jsonl", "problem")) base_text.push_back(t);
  const auto new_rows = metamath::read_jsonl(dir / "new.jsonl");
  std::vector<float> bv, qv;
  for (const auto& t : base_text)
    for (float x : trigram_vector(t)) bv.push_back(x);
  std::map<std::string, std::pair<double, int>> per_type;
  for (const auto& j : new_rows)
    for (float x : trigram_vector(j["problem"].get<std::string>())) qv.push_back(x);
  auto [want_d, want_i] = brute_force(qv, bv, 24);
  double total = 0;
  for (std::size_t i = 0; i < want_d.size(); ++i) {
    total += want_d[i];
    auto& pt = per_type[new_rows[i]["type"].get<std::string>()];
    pt.first += want_d[i];
    pt.second++;
    EXPECT_NEAR(r.nearest.dist2[i], want_d[i], 1e-12 * want_d[i]);
    // Base duplicates: ours names the first row with the nearest text; so equal texts.
    EXPECT_EQ(base_text[r.nearest.index[i]], base_text[want_i[i]]);
  }
  EXPECT_NEAR(r.summary.gain, total / 400, 1e-12 * total / 400);
  EXPECT_EQ(r.base_rows, 7473 + 7500);
  ASSERT_EQ(r.summary.by_type.size(), per_type.size());
  for (const auto& g : r.summary.by_type)
    EXPECT_NEAR(g.gain, per_type[g.type].first / per_type[g.type].second, 1e-12 * g.gain) << g.type;
  // The curve at n = 100: the mean of the first 100 distances.
  double first100 = 0;
  for (int i = 0; i < 100; ++i) first100 += want_d[i];
  bool seen = false;
  for (const auto& p : r.summary.curve)
    if (p.n == 100) {
      EXPECT_NEAR(p.gain, first100 / 100, 1e-12 * first100);
      seen = true;
    }
  EXPECT_TRUE(seen);

  // The files: the summary names the data by SHA-256, the per-item rows match.
  const json s = metamath::read_json_file(o.out / "diversity.json");
  EXPECT_DOUBLE_EQ(s["gain"].get<double>(), r.summary.gain);
  EXPECT_EQ(s["data"]["new"]["sha256"], metamath::sha256_file(o.new_set));
  EXPECT_EQ(s["data"]["base"][1]["rows"], 7500);
  EXPECT_EQ(s["embedding"]["model_id"], "test trigram24");
  const auto rows = metamath::read_jsonl(o.out / "nearest.jsonl");
  ASSERT_EQ(rows.size(), 400u);
  EXPECT_DOUBLE_EQ(rows[7]["dist2"].get<double>(), r.nearest.dist2[7]);
  EXPECT_TRUE(fs::exists(o.out / "by_type.csv"));
  EXPECT_TRUE(fs::exists(o.out / "curve.csv"));

  // A second run embeds nothing.
  const int before = c.texts;
  ma::DiversityResult again = ma::run_diversity(o, e);
  EXPECT_EQ(c.texts, before);
  EXPECT_EQ(again.new_embed.embedded, 0);
  EXPECT_EQ(again.summary.gain, r.summary.gain);
}

TEST(Diversity, TemplateAndFieldErrorsNameTheRow) {
  const fs::path dir = metamath::testing::temp_dir("div_errors");
  metamath::write_file_atomic(dir / "a.jsonl",
                              "{\"query\": \"q1\", \"response\": \"r1\"}\n"
                              "{\"text\": \"no known field\"}\n");
  ma::DiversityOptions o;
  o.base = {dir / "a.jsonl"};
  o.new_set = dir / "a.jsonl";
  o.out = dir / "out";
  o.cache_dir = dir / "cache";
  o.progress = false;
  CountingEmbedder c;
  ma::Embedder e = c.make();
  EXPECT_NE(error_of([&] { ma::run_diversity(o, e); }).find("a.jsonl:2: the row has no text field"),
            std::string::npos);
  o.text_template = "{query}\n\n{response}";
  EXPECT_NE(
      error_of([&] { ma::run_diversity(o, e); }).find("a.jsonl:2: the text template names {query}"),
      std::string::npos);
}

// ---- through the CLI: local backend, then the openai backend over our own server ---------------

fs::path tiny_model() {
  static const fs::path dir = [] {
    const fs::path d = metamath::testing::temp_dir("div_tiny_model");
    metamath::model::InitModelOptions o;
    o.tokenizer = *metamath::testing::llama2_tokenizer_dir();
    o.out = d;
    o.seed = 11;
    metamath::model::init_model(o);
    return d;
  }();
  return dir;
}

TEST(DiversityCli, LocalBackendCachesAndTheOpenAIBackendAgrees) {
  METAMATH_REQUIRE_DATA(data);
  METAMATH_REQUIRE_TOKENIZER();
  const fs::path dir = metamath::testing::temp_dir("div_cli");
  auto take = [&](const fs::path& from, const char* field, std::size_t skip, std::size_t n,
                  const fs::path& to) {
    std::string body;
    auto rows = metamath::read_jsonl(from);
    for (std::size_t i = skip; i < skip + n; ++i)
      body += json{{field, rows[i][field]}, {"type", i % 2 ? "odd" : "even"}}.dump() + "\n";
    metamath::write_file_atomic(to, body);
  };
  take(data / "gsm8k/train.jsonl", "question", 0, 30, dir / "base.jsonl");
  take(data / "gsm8k/test.jsonl", "question", 0, 20, dir / "new.jsonl");
  take(data / "gsm8k/test.jsonl", "question", 10, 20, dir / "new2.jsonl");  // 10 seen, 10 new
  const std::string model = tiny_model().string();
  auto run = [&](const std::string& new_file, const std::string& out) {
    const std::string cmd = metamath::testing::metamath_bin() +
                            " diversity --backend local --model " + model + " --base " +
                            (dir / "base.jsonl").string() + " --new " + new_file + " --out " + out +
                            " --cache-dir " + (dir / "cache").string() + " -q 2>&1";
    auto res = metamath::testing::run_command(cmd);
    EXPECT_EQ(res.code, 0) << res.output;
    return metamath::read_json_file(fs::path(out) / "diversity.json");
  };
  const json first = run((dir / "new.jsonl").string(), (dir / "o1").string());
  EXPECT_EQ(first["cache"]["new"]["embedded"], 20);
  EXPECT_EQ(first["embedding"]["backend"], "local");
  const json second = run((dir / "new.jsonl").string(), (dir / "o2").string());
  EXPECT_EQ(second["cache"]["new"]["embedded"], 0);
  EXPECT_EQ(second["cache"]["base"]["embedded"], 0);
  EXPECT_EQ(second["gain"], first["gain"]);
  const json third = run((dir / "new2.jsonl").string(), (dir / "o3").string());
  EXPECT_EQ(third["cache"]["new"]["embedded"], 10);
  EXPECT_EQ(third["by_type"].size(), 2u);

  // Independent of the cache and search code: the model's own vectors, float64 brute force.
  auto m = metamath::model::Model::load(model);
  auto tok = metamath::model::Tokenizer::load(model);
  auto vecs = [&](const fs::path& f) {
    std::vector<float> v;
    for (auto& row : metamath::llm::mean_pooled_embeddings(m, *tok, field_of(f, "question"), 4096))
      v.insert(v.end(), row.begin(), row.end());
    return v;
  };
  const int64_t dim = m.config().hidden_size;
  auto [want_d, want_i] = brute_force(vecs(dir / "new.jsonl"), vecs(dir / "base.jsonl"), dim);
  double mean = 0;
  for (double d : want_d) mean += d / want_d.size();
  // Mean pooling in batches of other shapes rounds differently (float32): relative 1e-5.
  EXPECT_NEAR(first["gain"].get<double>(), mean, 1e-5 * mean);

  // The openai backend: our server over the same model, /v1/embeddings.
  metamath::llm::BackendOptions lo;
  lo.model = model;
  lo.max_batch = 2;
  lo.max_len = 512;
  auto local = metamath::llm::make_backend(lo);
  metamath::serve::ServeOptions so;
  so.port = 0;
  so.served_model_name = "tiny";
  metamath::serve::Server server(*local, so);
  const int port = server.bind();
  std::thread serving([&] { server.run(); });
  ma::DiversityOptions o;
  o.base = {dir / "base.jsonl"};
  o.new_set = dir / "new.jsonl";
  o.out = dir / "o4";
  o.cache_dir = dir / "cache";
  o.progress = false;
  metamath::llm::BackendOptions oo;
  oo.kind = "openai";
  oo.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  oo.model = "tiny";
  oo.api_key = "unused";
  std::string err;
  ma::DiversityResult r;
  try {
    ma::Embedder e = ma::make_embedder(oo, 16);
    r = ma::run_diversity(o, e);
  } catch (const std::exception& ex) {
    err = ex.what();
  }
  server.stop();
  serving.join();
  ASSERT_EQ(err, "");
  EXPECT_EQ(r.new_embed.embedded, 20);
  EXPECT_NEAR(r.summary.gain, mean, 1e-5 * mean);
  EXPECT_EQ(r.report["embedding"]["model_id"], "openai " + oo.base_url + " tiny");
}

}  // namespace
