#pragma once
// CPU tensors on transparent huge pages (core/memory.h says why): the weights a decode step
// streams and the KV cache it reads. Tensors on other devices, and all tensors with
// METAMATH_HUGE_PAGES=off, come from libtorch's allocator as before.
#include <ATen/ATen.h>

#include <cstddef>
#include <memory>
#include <optional>

namespace metamath::model {

// Tensors cut one after another from shared huge-page blocks: a model's weights, packed without
// the rounding up to 2 MiB that a block per tensor would cost (a 768 x 768 f32 matrix is
// 2.25 MiB). Each tensor starts on a 64-byte line. A block is freed when the last tensor cut
// from it is, so an arena serves one load: its blocks live exactly as long as those weights.
class HugePageArena {
 public:
  // An uninitialized tensor of this shape and options.
  at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options);
  // A contiguous copy of `t`, converted to `dtype` (t's own when omitted).
  at::Tensor copy(const at::Tensor& t, std::optional<at::ScalarType> dtype = std::nullopt);

 private:
  struct Block;
  std::shared_ptr<Block> block_;
  std::size_t used_ = 0;
};

// A zero-filled tensor in a huge-page block of its own (the KV cache: one allocation, often over
// 2 MiB). The block is a fresh mapping, already zero, so its pages are only touched when used;
// from libtorch's allocator (at::zeros) when under 2 MiB, off the CPU, or switched off.
at::Tensor zeros_on_huge_pages(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace metamath::model
