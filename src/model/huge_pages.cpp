#include "model/huge_pages.h"

#include <algorithm>

#include "core/memory.h"

namespace metamath::model {

namespace {
constexpr std::size_t kHugePage = kHugePageBytes;
constexpr std::size_t kArenaBlock = std::size_t{64} << 20;  // a new block's least size
constexpr std::size_t kLine = 64;

std::size_t bytes_of(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return static_cast<std::size_t>(c10::multiply_integers(sizes)) * options.dtype().itemsize();
}

bool wanted_for(const at::TensorOptions& options) {
  return options.device().is_cpu() && huge_pages_wanted();
}
}  // namespace

// One mapping from alloc_huge_pages, unmapped with its last tensor.
struct HugePageArena::Block {
  void* base = nullptr;
  std::size_t size = 0;
  explicit Block(std::size_t bytes) : base(alloc_huge_pages(bytes)), size(bytes) {}
  ~Block() { free_huge_pages(base, size); }
};

at::Tensor HugePageArena::empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  if (!wanted_for(options)) return at::empty(sizes, options);
  const std::size_t bytes = bytes_of(sizes, options);
  if (!block_ || used_ + bytes > block_->size) {
    block_ = std::make_shared<Block>(
        std::max(kArenaBlock, (bytes + kHugePage - 1) / kHugePage * kHugePage));
    used_ = 0;
    if (!block_->base) {  // no mapping: libtorch's allocator will say why
      block_.reset();
      return at::empty(sizes, options);
    }
  }
  void* p = static_cast<char*>(block_->base) + used_;
  used_ = (used_ + bytes + kLine - 1) / kLine * kLine;
  return at::from_blob(
      p, sizes, [keep = block_](void*) {}, options);
}

at::Tensor HugePageArena::copy(const at::Tensor& t, std::optional<at::ScalarType> dtype) {
  const at::TensorOptions options = t.options().dtype(dtype.value_or(t.scalar_type()));
  if (!wanted_for(options)) return t.to(options.dtype().toScalarType()).contiguous();
  at::Tensor out = empty(t.sizes(), options);
  out.copy_(t);
  return out;
}

at::Tensor zeros_on_huge_pages(at::IntArrayRef sizes, const at::TensorOptions& options) {
  if (!wanted_for(options) || bytes_of(sizes, options) < kHugePage)
    return at::zeros(sizes, options);
  const at::Tensor t = HugePageArena().empty(sizes, options);  // a fresh mapping: zero already
  return t.storage().resizable() ? t.zero_() : t;  // libtorch's memory when the mapping failed
}

}  // namespace metamath::model
