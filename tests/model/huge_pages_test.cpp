#include "model/huge_pages.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "core/memory.h"
#include "fixtures.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "test_util.h"

namespace mm = metamath::model;
using metamath::testing::kFixtures;

namespace {

// The kernel's own account of the mapping that holds p (/proc/self/smaps): its header line (range,
// permissions, path) and its VmFlags ("hg": advised MADV_HUGEPAGE). Empty when p is unmapped.
struct Mapping {
  std::string header, flags;
};

Mapping mapping_of(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream f("/proc/self/smaps");
  std::string line;
  Mapping m;
  bool inside = false;
  while (std::getline(f, line)) {
    std::uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream s(line);
    if (s >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      inside = lo <= a && a < hi;
      if (inside) m.header = line;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      m.flags = line;
    }
  }
  return m;
}

bool advised_huge(const void* p) { return mapping_of(p).flags.find(" hg") != std::string::npos; }

// METAMATH_HUGE_PAGES for one scope.
struct HugePagesEnv {
  explicit HugePagesEnv(const char* value) { setenv("METAMATH_HUGE_PAGES", value, 1); }
  ~HugePagesEnv() { unsetenv("METAMATH_HUGE_PAGES"); }
};

std::uintptr_t address(const at::Tensor& t) {
  return reinterpret_cast<std::uintptr_t>(t.data_ptr());
}

TEST(HugePageArena, PacksTensorsOnLinesInOneAdvisedBlockThatOutlivesTheArena) {
  at::manual_seed(5);
  const at::Tensor w = at::randn({768, 768}), b = at::randn({3}), e = at::randn({1000, 64});
  at::Tensor cw, cb, ce16;
  {
    mm::HugePageArena arena;
    cw = arena.copy(w);
    cb = arena.copy(b);
    ce16 = arena.copy(e, at::kBFloat16);
  }  // the arena is gone; its block lives on in the tensors
  // One after another, each on a 64-byte line, the first at the block's 2 MiB aligned start.
  EXPECT_EQ(address(cw) % (2 << 20), 0u);
  EXPECT_EQ(address(cb), address(cw) + 768 * 768 * 4);
  EXPECT_EQ(address(ce16), address(cb) + 64);  // 12 bytes rounded up to a line
  EXPECT_TRUE(advised_huge(cw.data_ptr()));
  EXPECT_EQ(mapping_of(cw.data_ptr()).header, mapping_of(ce16.data_ptr()).header);
  // Copies, converted as libtorch converts.
  EXPECT_TRUE(at::equal(cw, w));
  EXPECT_TRUE(at::equal(cb, b));
  EXPECT_EQ(ce16.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(ce16, e.to(at::kBFloat16)));
  EXPECT_TRUE(cw.is_contiguous() && ce16.is_contiguous());
  // Writable, and still there after the arena went away.
  cw.fill_(2.5f);
  EXPECT_EQ(cw.sum().item<double>(), 2.5 * 768 * 768);

  // The block is unmapped with its last tensor.
  const void* p = cw.data_ptr();
  cw.reset();
  cb.reset();
  EXPECT_FALSE(mapping_of(p).header.empty());  // ce16 still holds it
  ce16.reset();
  EXPECT_TRUE(mapping_of(p).header.empty());
}

TEST(HugePageArena, ATensorLargerThanABlockGetsOneOfItsOwn) {
  mm::HugePageArena arena;
  const at::Tensor small = arena.empty({1024}, at::kChar);
  const at::Tensor big = arena.empty({int64_t{70} << 20}, at::kChar);  // over the 64 MiB block
  const at::Tensor next = arena.empty({1024}, at::kChar);
  EXPECT_NE(mapping_of(small.data_ptr()).header, mapping_of(big.data_ptr()).header);
  EXPECT_EQ(address(big) % (2 << 20), 0u);
  EXPECT_TRUE(advised_huge(big.data_ptr()));
  // The big tensor's block is full: the next one is cut from a new block.
  EXPECT_NE(mapping_of(next.data_ptr()).header, mapping_of(big.data_ptr()).header);
  big.fill_(7);
  EXPECT_EQ(big.sum().item<int64_t>(), int64_t{7} * (int64_t{70} << 20));
}

TEST(HugePageArena, SwitchedOffItIsLibtorchsAllocator) {
  HugePagesEnv off("off");
  const at::Tensor w = at::randn({768, 768});
  mm::HugePageArena arena;
  const at::Tensor same = arena.copy(w), half = arena.copy(w, at::kBFloat16);
  EXPECT_EQ(same.data_ptr(), w.data_ptr());  // nothing to convert: the tensor itself
  EXPECT_TRUE(at::equal(half, w.to(at::kBFloat16)));
  EXPECT_TRUE(half.storage().resizable());  // libtorch's own storage, not a from_blob block
  EXPECT_FALSE(advised_huge(half.data_ptr()));
  const at::Tensor big = mm::zeros_on_huge_pages({4 << 20}, at::kFloat);
  EXPECT_TRUE(big.storage().resizable());
  EXPECT_EQ(big.count_nonzero().item<int64_t>(), 0);
}

// Zero-filled either way; the huge-page block is not written to be zero (a fresh mapping is), so
// its pages are not all resident before they are used.
TEST(HugePages, ABadSwitchValueIsAnErrorNamingTheVariable) {
  HugePagesEnv bad("0");
  const std::string msg =
      metamath::testing::error_of([] { mm::HugePageArena().empty({4}, at::kFloat); });
  EXPECT_NE(msg.find("METAMATH_HUGE_PAGES=0: expected on or off"), std::string::npos) << msg;
  HugePagesEnv on("on");
  EXPECT_TRUE(metamath::huge_pages_wanted());
}

TEST(HugePages, OnlyBlocksOfAHugePageOrMoreGetTheirOwn) {
  const at::Tensor small = mm::zeros_on_huge_pages({1000}, at::kFloat);
  EXPECT_TRUE(small.storage().resizable());
  EXPECT_EQ(small.count_nonzero().item<int64_t>(), 0);
  const at::Tensor big = mm::zeros_on_huge_pages({3, 1 << 20}, at::kFloat);
  EXPECT_FALSE(big.storage().resizable());
  EXPECT_EQ(address(big) % (2 << 20), 0u);
  EXPECT_TRUE(advised_huge(big.data_ptr()));
  EXPECT_EQ(big.sizes(), at::IntArrayRef({3, 1 << 20}));
  EXPECT_EQ(big.count_nonzero().item<int64_t>(), 0);
}

TEST(HugePages, KvCacheIsOneZeroedBlockOfAllLayers) {
  mm::ModelConfig c = mm::preset_config("tiny", mm::Arch::Llama, 300);
  mm::KVCache cache(c, 4, 1024, at::kFloat, at::kCPU);
  const auto layer_bytes = cache.k(0).numel() * 4;
  ASSERT_GE(layer_bytes * 2 * c.num_hidden_layers, 2 << 20);
  EXPECT_TRUE(advised_huge(cache.k(0).data_ptr()));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    EXPECT_EQ(cache.k(l).sizes(), at::IntArrayRef({4, c.num_key_value_heads, 1024, c.head_dim}));
    EXPECT_TRUE(cache.k(l).is_contiguous() && cache.v(l).is_contiguous());
    EXPECT_EQ(address(cache.v(l)), address(cache.k(l)) + layer_bytes);
    EXPECT_EQ(cache.k(l).count_nonzero().item<int64_t>(), 0);
    EXPECT_EQ(cache.v(l).count_nonzero().item<int64_t>(), 0);
  }
  EXPECT_EQ(cache.bytes(), layer_bytes * 2 * c.num_hidden_layers);
}

// Loading copies the weights onto huge pages; the values are the file's, converted as libtorch
// converts, and the same as the zero-copy load with huge pages switched off (f32, bf16 and q8).
TEST(HugePages, LoadedWeightsEqualTheZeroCopyLoad) {
  const auto dir = kFixtures / "llama2";
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kChar}) {
    SCOPED_TRACE(c10::toString(dtype));
    mm::Model on = mm::Model::load(dir, dtype);
    mm::Model off = [&] {
      HugePagesEnv env("off");
      return mm::Model::load(dir, dtype);
    }();
    const mm::NamedTensors a = on.named_parameters(), b = off.named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first);
      EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
      EXPECT_TRUE(advised_huge(a[i].second.data_ptr())) << a[i].first;
      EXPECT_FALSE(advised_huge(b[i].second.data_ptr())) << b[i].first;
    }
    if (dtype == at::kChar) {
      // The float32 weights left (embedding, norms) moved to the int8 weights' block, so the
      // float32 load's blocks are freed (this tiny model fits one block).
      const std::string block = mapping_of(on.lm_head.data_ptr()).header;
      for (const auto& [name, t] : a) EXPECT_EQ(mapping_of(t.data_ptr()).header, block) << name;
      for (std::size_t l = 0; l < on.layers.size(); ++l)
        EXPECT_TRUE(at::equal(on.layers[l].q_s, off.layers[l].q_s));
      EXPECT_TRUE(at::equal(on.lm_head, off.lm_head));
    }
  }
  // Off, a float32 load still aliases the file's mapping.
  HugePagesEnv env("off");
  mm::Model off = mm::Model::load(dir, at::kFloat);
  EXPECT_NE(mapping_of(off.embed_tokens.data_ptr()).header.find("llama2/model.safetensors"),
            std::string::npos);
}

}  // namespace
