#include "model/rope_table.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "model/model.h"

namespace metamath::model {

namespace {

// The table grows by this many positions at a time (a few rope_cos_sin calls each).
constexpr int64_t kGrowth = 256;
// The widest vector of floats libtorch's cos and sin run on (AVX-512).
constexpr int64_t kWidestVector = 16;
// Tables kept by rope_table() (models met lately).
constexpr size_t kKeptTables = 4;

bool usable_inv_freq(const at::Tensor& t) {
  return t.defined() && t.is_cpu() && t.scalar_type() == at::kFloat && t.dim() == 1 &&
         t.is_contiguous() && t.numel() > 0;
}

}  // namespace

RopeTable::RopeTable(const at::Tensor& inv_freq, at::ScalarType dtype)
    : inv_freq_tensor_(inv_freq.to(at::kCPU, at::kFloat).contiguous().clone()),
      dtype_(dtype),
      d_(2 * inv_freq.numel()) {
  inv_freq_.assign(inv_freq_tensor_.data_ptr<float>(),
                   inv_freq_tensor_.data_ptr<float>() + inv_freq_tensor_.numel());
}

bool RopeTable::rows_exact(int64_t rows) const {
  return d_ > 0 && d_ % kWidestVector == 0 && rows >= 1 && rows * d_ <= kMaxElements;
}

bool RopeTable::matches(const at::Tensor& inv_freq, at::ScalarType dtype) const {
  return dtype == dtype_ && usable_inv_freq(inv_freq) &&
         inv_freq.numel() == static_cast<int64_t>(inv_freq_.size()) &&
         std::memcmp(inv_freq.data_ptr<float>(), inv_freq_.data(),
                     inv_freq_.size() * sizeof(float)) == 0;
}

// Rows [positions_, positions) through rope_cos_sin, whole positions per call and at most
// kMaxElements values each (one contiguous run, like a decode step's call: see the header).
void RopeTable::grow_to(int64_t positions) {
  positions = (positions + kGrowth - 1) / kGrowth * kGrowth;
  const int64_t per_call = std::max<int64_t>(1, kMaxElements / d_);
  cos_.reserve(positions * d_);
  sin_.reserve(positions * d_);
  for (int64_t p0 = positions_; p0 < positions; p0 += per_call) {
    const int64_t p1 = std::min(positions, p0 + per_call);
    auto [c, s] = rope_cos_sin(at::arange(p0, p1, at::kLong), inv_freq_tensor_, dtype_);
    const at::Tensor cf = c.to(at::kFloat).contiguous(), sf = s.to(at::kFloat).contiguous();
    cos_.insert(cos_.end(), cf.data_ptr<float>(), cf.data_ptr<float>() + cf.numel());
    sin_.insert(sin_.end(), sf.data_ptr<float>(), sf.data_ptr<float>() + sf.numel());
  }
  positions_ = positions;
}

void RopeTable::rows(const int64_t* positions, int64_t n, float* cos, float* sin) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t needed = 0;
  for (int64_t i = 0; i < n; ++i) needed = std::max(needed, positions[i] + 1);
  if (needed > positions_) grow_to(needed);
  for (int64_t i = 0; i < n; ++i) {
    std::copy_n(cos_.data() + positions[i] * d_, d_, cos + i * d_);
    std::copy_n(sin_.data() + positions[i] * d_, d_, sin + i * d_);
  }
}

std::shared_ptr<RopeTable> rope_table(const at::Tensor& inv_freq, at::ScalarType dtype) {
  if (!usable_inv_freq(inv_freq)) return nullptr;
  static std::mutex mu;
  static std::vector<std::shared_ptr<RopeTable>> kept;  // the latest first
  std::lock_guard<std::mutex> lock(mu);
  auto it = std::find_if(kept.begin(), kept.end(),
                         [&](const auto& t) { return t->matches(inv_freq, dtype); });
  if (it != kept.end() && it == kept.begin()) return *it;
  std::shared_ptr<RopeTable> table =
      it != kept.end() ? *it : std::make_shared<RopeTable>(inv_freq, dtype);
  if (it != kept.end()) kept.erase(it);
  kept.insert(kept.begin(), table);
  if (kept.size() > kKeptTables) kept.pop_back();
  return table;
}

}  // namespace metamath::model
