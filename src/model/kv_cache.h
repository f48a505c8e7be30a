#pragma once
// The KV cache of continuous batching. KVCache holds, per decoder layer, K and V tensors of shape
// [num_slots, num_kv_heads, max_len, head_dim], preallocated (zero-filled) at construction in the
// model's dtype and on its device, plus a current length per slot. A slot holds one sequence, dense
// (padding is never stored): a forward pass with a cache (Model::forward, model/model.h) maps row b
// of its batch to slot slots[b], appends the row's real tokens there and lets the row attend to
// everything the slot holds.
//
// A slot is reused by clearing it (length 0). acquire()/release() keep a free list, so a generation
// engine can let sequences join and leave the batch between steps: prefill a new sequence in a free
// slot, then run decode steps over any subset of slots in any order (T = 1 per row), each slot at
// its own length. Errors (a slot out of range, a length past max_len) name the slot and the range.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "model/config.h"

namespace metamath::model {

class KVCache {
 public:
  KVCache(const ModelConfig& config, int64_t num_slots, int64_t max_len, at::ScalarType dtype,
          c10::Device device);
  int64_t num_slots() const { return num_slots_; }
  int64_t max_len() const { return max_len_; }
  int64_t length(int64_t slot) const;
  // Bytes held by the K and V tensors.
  int64_t bytes() const;

  // All slots back to length 0 and free.
  void reset();
  // Slot back to length 0 (keeps it acquired).
  void clear(int64_t slot);
  // Drops cached tokens past new_len (new_len <= length).
  void truncate(int64_t slot, int64_t new_len);
  // Free-list management for continuous batching: acquire() returns a free slot (cleared) or
  // nullopt when all are in use; release() returns it to the pool.
  std::optional<int64_t> acquire();
  void release(int64_t slot);
  int64_t free_slots() const;

  // Layer tensors [num_slots, kv_heads, max_len, head_dim].
  at::Tensor& k(int64_t layer) { return k_[layer]; }
  at::Tensor& v(int64_t layer) { return v_[layer]; }
  void set_length(int64_t slot, int64_t len);

 private:
  void check_slot(int64_t slot) const;
  int64_t num_slots_, max_len_;
  std::vector<at::Tensor> k_, v_;
  std::vector<int64_t> len_;
  std::vector<bool> used_;
};

}  // namespace metamath::model
