#include "model/kv_cache.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/error.h"
#include "model/huge_pages.h"

namespace metamath::model {

KVCache::KVCache(const ModelConfig& c, int64_t num_slots, int64_t max_len, at::ScalarType dtype,
                 c10::Device device)
    : num_slots_(num_slots), max_len_(max_len), len_(num_slots, 0), used_(num_slots, false) {
  if (num_slots <= 0 || max_len <= 0)
    fail("KV cache needs at least one slot and a positive max length (got {} slots, max_len {})",
         num_slots, max_len);
  auto opts = at::TensorOptions().dtype(dtype).device(device);
  // Zero-filled: positions past a slot's length are read (then masked) by the batched matmul, and
  // masked weights are exact zeros only when the values there are finite. One block for all
  // layers, on huge pages: a decode step reads every layer's keys and values, which one at a time
  // are often under a huge page (model/huge_pages.h).
  const int64_t L = c.num_hidden_layers;
  const at::Tensor all =
      zeros_on_huge_pages({L, 2, num_slots, c.num_key_value_heads, max_len, c.head_dim}, opts);
  for (int64_t l = 0; l < L; ++l) {
    k_.push_back(all[l][0]);
    v_.push_back(all[l][1]);
  }
}

void KVCache::check_slot(int64_t slot) const {
  if (slot < 0 || slot >= num_slots_)
    fail("KV cache slot {} out of range (0..{})", slot, num_slots_ - 1);
}

int64_t KVCache::length(int64_t slot) const {
  check_slot(slot);
  return len_[slot];
}

int64_t KVCache::bytes() const {
  int64_t b = 0;
  for (const auto& t : k_) b += t.numel() * t.element_size();
  for (const auto& t : v_) b += t.numel() * t.element_size();
  return b;
}

void KVCache::reset() {
  std::fill(len_.begin(), len_.end(), 0);
  std::fill(used_.begin(), used_.end(), false);
}

void KVCache::clear(int64_t slot) {
  check_slot(slot);
  len_[slot] = 0;
}

void KVCache::truncate(int64_t slot, int64_t new_len) {
  check_slot(slot);
  if (new_len < 0 || new_len > len_[slot])
    fail("KV cache slot {}: cannot truncate to {} (length {})", slot, new_len, len_[slot]);
  len_[slot] = new_len;
}

void KVCache::set_length(int64_t slot, int64_t len) {
  check_slot(slot);
  if (len < 0 || len > max_len_)
    fail("KV cache slot {}: length {} out of range (max {})", slot, len, max_len_);
  len_[slot] = len;
}

std::optional<int64_t> KVCache::acquire() {
  for (int64_t s = 0; s < num_slots_; ++s) {
    if (!used_[s]) {
      used_[s] = true;
      len_[s] = 0;
      return s;
    }
  }
  return std::nullopt;
}

void KVCache::release(int64_t slot) {
  check_slot(slot);
  used_[slot] = false;
  len_[slot] = 0;
}

int64_t KVCache::free_slots() const { return std::count(used_.begin(), used_.end(), false); }

}  // namespace metamath::model
