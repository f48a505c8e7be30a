// The kept RoPE table (model/rope_table.h) against rope_cos_sin itself, the layered pass's tables
// and what the fused decode step computed before it kept a table: every position of realistic
// tables bit for bit, one position at a time and in steps of several rows at random positions,
// in float32 and bf16, for the head dims of real models and for dims whose rows straddle
// libtorch's vectors (there the table must say it cannot reproduce a step's call).
#include "model/rope_table.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/model.h"

namespace mm = metamath::model;

namespace {

struct RopeCase {
  int64_t head_dim;
  double theta;
  std::string scaling;  // "", "linear" or "llama3"
  int64_t positions;    // the table's length checked (a realistic max_len)
};

at::Tensor inv_freq_of(const RopeCase& rc) {
  mm::ModelConfig c;
  c.head_dim = rc.head_dim;
  c.rope_theta = rc.theta;
  c.rope_scaling.type = rc.scaling;
  if (rc.scaling == "linear") c.rope_scaling.factor = 2.0;
  if (rc.scaling == "llama3") c.rope_scaling.factor = 8.0;
  return mm::rope_inv_freq(c);
}

// rope_cos_sin over `positions` (a decode step's call: one position per row), as floats.
std::pair<std::vector<float>, std::vector<float>> reference_rows(
    const std::vector<int64_t>& positions, const at::Tensor& inv_freq, at::ScalarType dtype) {
  auto [c, s] = mm::rope_cos_sin(at::tensor(positions, at::kLong), inv_freq, dtype);
  const at::Tensor cf = c.to(at::kFloat).contiguous(), sf = s.to(at::kFloat).contiguous();
  return {std::vector<float>(cf.data_ptr<float>(), cf.data_ptr<float>() + cf.numel()),
          std::vector<float>(sf.data_ptr<float>(), sf.data_ptr<float>() + sf.numel())};
}

// Positions of `rows` (as a step of that many rows reads them) whose table rows differ from the
// reference in any bit; checks every position one at a time for rows == 1, else `batches`
// random draws.
int64_t mismatches(mm::RopeTable& table, const at::Tensor& inv_freq, at::ScalarType dtype,
                   int64_t positions, int64_t rows, int64_t batches) {
  const int64_t d = table.head_dim();
  std::mt19937_64 rng(static_cast<uint64_t>(d * 131 + rows));
  std::uniform_int_distribution<int64_t> pick(0, positions - 1);
  int64_t bad = 0;
  const int64_t draws = rows == 1 ? positions : batches;
  std::vector<float> cos(rows * d), sin(rows * d);
  for (int64_t i = 0; i < draws; ++i) {
    std::vector<int64_t> pos(rows);
    for (int64_t r = 0; r < rows; ++r) pos[r] = rows == 1 ? i : pick(rng);
    const auto [want_cos, want_sin] = reference_rows(pos, inv_freq, dtype);
    table.rows(pos.data(), rows, cos.data(), sin.data());
    for (int64_t r = 0; r < rows; ++r)
      bad += std::memcmp(cos.data() + r * d, want_cos.data() + r * d, d * sizeof(float)) != 0 ||
             std::memcmp(sin.data() + r * d, want_sin.data() + r * d, d * sizeof(float)) != 0;
  }
  return bad;
}

class RopeTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    threads_ = at::get_num_threads();
    at::set_num_threads(2);  // libtorch may split a larger call across threads
  }
  void TearDown() override { at::set_num_threads(threads_); }
  int threads_ = 1;
  c10::InferenceMode guard_;
};

// Real head dims (multiples of 16): every row the table gives equals rope_cos_sin's for a step of
// 1..8 rows wherever rows_exact says so, over every position of a 4096-token cache (angles up to
// 4095 radians, where libtorch's cos and sin switch to their slower argument reduction).
TEST_F(RopeTableTest, RowsEqualTheLayeredPassTables) {
  const std::vector<RopeCase> cases = {{64, 10000.0, "", 4096},
                                       {128, 500000.0, "llama3", 4096},
                                       {128, 1000000.0, "", 4096},
                                       {16, 10000.0, "", 1024},
                                       {256, 10000.0, "linear", 1024}};
  for (const RopeCase& rc : cases)
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      const at::Tensor inv = inv_freq_of(rc);
      mm::RopeTable table(inv, dtype);
      ASSERT_EQ(table.head_dim(), rc.head_dim);
      for (int64_t rows = 1; rows <= 8; ++rows) {
        if (!table.rows_exact(rows)) {
          EXPECT_GT(rows * rc.head_dim, mm::RopeTable::kMaxElements) << "head_dim " << rc.head_dim;
          continue;
        }
        EXPECT_EQ(mismatches(table, inv, dtype, rc.positions, rows, 64), 0)
            << "head_dim " << rc.head_dim << " " << at::toString(dtype) << " rows " << rows;
      }
    }
}

// Head dims whose rows straddle libtorch's vectors (and 80, 96: multiples of 16 that are not of
// 32): whatever rows_exact claims must hold. A table claiming every dim (rows_exact always true)
// fails here: at head_dim 10 a row's cos at position 134 differs in its last bit between a
// one-position call and the table's block, where the next position's angle of 135 radians
// shares the vector and sends it down libtorch's other argument reduction.
TEST_F(RopeTableTest, ClaimsExactnessOnlyWhereItHolds) {
  for (int64_t d : {6, 10, 18, 72, 80, 96})
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      const at::Tensor inv = inv_freq_of({d, 10000.0, "", 1024});
      mm::RopeTable table(inv, dtype);
      for (int64_t rows = 1; rows <= 8; ++rows) {
        if (!table.rows_exact(rows)) continue;
        EXPECT_EQ(mismatches(table, inv, dtype, 1024, rows, 32), 0)
            << "head_dim " << d << " " << at::toString(dtype) << " rows " << rows;
      }
    }
  // Real dims are served (not a table that never claims anything).
  EXPECT_TRUE(mm::RopeTable(inv_freq_of({128, 10000.0, "", 0}), at::kFloat).rows_exact(8));
  EXPECT_TRUE(mm::RopeTable(inv_freq_of({64, 10000.0, "", 0}), at::kBFloat16).rows_exact(1));
}

// rope_table() keeps one table per inverse frequencies and dtype.
TEST_F(RopeTableTest, KeptPerFrequenciesAndDtype) {
  const at::Tensor a = inv_freq_of({64, 10000.0, "", 0}), b = inv_freq_of({64, 500000.0, "", 0});
  const auto ta = mm::rope_table(a, at::kFloat);
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(mm::rope_table(a.clone(), at::kFloat), ta);  // equal values, another tensor
  EXPECT_NE(mm::rope_table(b, at::kFloat), ta);
  EXPECT_NE(mm::rope_table(a, at::kBFloat16), ta);
  EXPECT_EQ(mm::rope_table(a.to(at::kDouble), at::kFloat), nullptr);  // not float32: not kept
}

}  // namespace
