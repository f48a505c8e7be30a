#include "model/safetensors.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "fixtures.h"
#include "test_util.h"

namespace fs = std::filesystem;
namespace mm = metamath::model;
using metamath::json;
using ::testing::HasSubstr;

namespace {

using metamath::testing::kFixtures;

using metamath::testing::error_of;

// A raw safetensors file from a header JSON string and a data blob.
void write_raw(const fs::path& p, const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  out += data;
  metamath::write_file_atomic(p, out);
}

mm::NamedTensors sample_tensors() {
  at::manual_seed(3);
  return {
      {"b.weight", at::randn({3, 5}).to(at::kBFloat16)},
      {"a.weight", at::randn({4, 7})},
      {"half", at::randn({9}).to(at::kHalf)},
      {"ids", at::arange(0, 11, at::kLong)},
      {"bytes", at::arange(0, 5, at::kByte)},
      {"flags", at::tensor({1, 0, 1}, at::kInt).to(at::kBool)},
      {"dbl", at::randn({2, 2}, at::kDouble)},
      {"scalar", at::tensor(3.5f).view({})},
      {"empty", at::zeros({0, 4})},
      {"strided", at::randn({6, 4}).t()},  // non-contiguous input
  };
}

}  // namespace

TEST(Safetensors, RoundTripAllDtypes) {
  auto dir = metamath::testing::temp_dir("st_roundtrip");
  auto tensors = sample_tensors();
  mm::save_safetensors(dir / "x.safetensors", tensors);
  auto f = mm::SafetensorsFile::open(dir / "x.safetensors");
  EXPECT_EQ(f->metadata().at("format"), "pt");
  ASSERT_EQ(f->names().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    at::Tensor got = f->get(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), t.sizes()) << name;
    EXPECT_TRUE(at::equal(got, t.contiguous())) << name;
    // Every tensor is aligned to its element size (zero-copy view into the mapping).
    if (got.numel() > 0) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(got.data_ptr()) % got.element_size(), 0u) << name;
    }
  }
  EXPECT_EQ(f->header().data_offset % 8, 0u);
}

TEST(Safetensors, DeterministicBytesWhateverTheInputOrder) {
  auto dir = metamath::testing::temp_dir("st_determinism");
  auto tensors = sample_tensors();
  mm::save_safetensors(dir / "a.safetensors", tensors);
  std::reverse(tensors.begin(), tensors.end());
  mm::save_safetensors(dir / "b.safetensors", tensors);
  EXPECT_EQ(metamath::read_file(dir / "a.safetensors"), metamath::read_file(dir / "b.safetensors"));
  // No temp files left behind.
  int n = 0;
  for (auto& e : fs::directory_iterator(dir)) (void)e, ++n;
  EXPECT_EQ(n, 2);
}

TEST(Safetensors, ZeroCopyViewsOutliveTheFileObject) {
  auto dir = metamath::testing::temp_dir("st_zero_copy");
  at::Tensor t = at::randn({64, 64});
  mm::save_safetensors(dir / "z.safetensors", {{"w", t}});
  at::Tensor a, b;
  {
    auto f = mm::SafetensorsFile::open(dir / "z.safetensors");
    a = f->get("w");
    b = f->get("w");
    const char* base = static_cast<const char*>(a.data_ptr());
    EXPECT_EQ(a.data_ptr(), b.data_ptr());  // both alias the mapping
    (void)base;
  }
  EXPECT_TRUE(at::equal(a, t));  // mapping still alive through the tensors
  a.mul_(2);                     // copy-on-write: never reaches the file
  auto f2 = mm::SafetensorsFile::open(dir / "z.safetensors");
  EXPECT_TRUE(at::equal(f2->get("w"), t));
}

// drop_pages frees the whole pages under a tensor: written (copy-on-write) values there are gone
// and the file's come back; the partial pages at either end, which other tensors share, stay.
TEST(Safetensors, DropPagesReturnsWholePagesToTheFile) {
  auto dir = metamath::testing::temp_dir("st_drop_pages");
  at::Tensor t = at::randn({256, 256});
  mm::save_safetensors(dir / "d.safetensors", {{"w", t}});
  auto f = mm::SafetensorsFile::open(dir / "d.safetensors");
  at::Tensor a = f->get("w");
  a.mul_(2);
  f->drop_pages("w");
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(a.data_ptr());
  const std::uintptr_t first = (begin + page - 1) / page * page,
                       last = (begin + a.numel() * 4) / page * page;
  ASSERT_GT(last, first + page);
  const at::Tensor flat = a.flatten(), ref = t.flatten();
  const int64_t lo = static_cast<int64_t>((first - begin) / 4),
                hi = static_cast<int64_t>((last - begin) / 4);
  EXPECT_TRUE(at::equal(flat.slice(0, lo, hi), ref.slice(0, lo, hi)));
  EXPECT_TRUE(at::equal(flat.slice(0, 0, lo), ref.slice(0, 0, lo) * 2));
  EXPECT_TRUE(at::equal(flat.slice(0, hi), ref.slice(0, hi) * 2));
}

TEST(Safetensors, ReadsPythonWrittenFixture) {
  auto f = mm::SafetensorsFile::open(kFixtures / "llama2/model.safetensors");
  EXPECT_EQ(f->metadata().at("format"), "pt");
  at::Tensor emb = f->get("model.embed_tokens.weight");
  EXPECT_EQ(emb.scalar_type(), at::kFloat);
  EXPECT_EQ(emb.sizes(), (std::vector<int64_t>{256, 64}));
  EXPECT_TRUE(at::isfinite(emb).all().item<bool>());
  auto g = mm::SafetensorsFile::open(kFixtures / "llama3/model.safetensors");
  EXPECT_EQ(g->get("model.layers.0.self_attn.k_proj.weight").scalar_type(), at::kBFloat16);
  EXPECT_EQ(g->get("model.layers.0.self_attn.k_proj.weight").sizes(),
            (std::vector<int64_t>{32, 64}));
}

TEST(Safetensors, ShardedCheckpointRoundTrip) {
  auto dir = metamath::testing::temp_dir("st_sharded");
  mm::NamedTensors t;
  for (int i = 0; i < 6; ++i) t.emplace_back("layer." + std::to_string(i), at::randn({32, 32}));
  auto files = mm::save_sharded_weights(dir, t, /*max_shard_bytes=*/3 * 32 * 32 * 4);
  EXPECT_EQ(files.size(), 3u);  // two shards + index
  EXPECT_TRUE(fs::exists(dir / "model-00001-of-00002.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  mm::ShardedWeights ck = mm::ShardedWeights::open(dir);
  EXPECT_EQ(ck.names().size(), 6u);
  for (const auto& [n, v] : t) EXPECT_TRUE(at::equal(ck.get(n), v)) << n;
  EXPECT_THAT(ck.file_of("layer.5"), HasSubstr("model-00002-of-00002"));

  // The Python-written sharded fixture.
  mm::ShardedWeights py = mm::ShardedWeights::open(kFixtures / "qwen2");
  EXPECT_TRUE(py.contains("model.layers.1.self_attn.q_proj.bias"));
  EXPECT_TRUE(py.contains("model.embed_tokens.weight"));
  EXPECT_FALSE(py.contains("lm_head.weight"));  // tied
}

TEST(Safetensors, CorruptFilesGiveClearErrors) {
  auto dir = metamath::testing::temp_dir("st_corrupt");
  // Truncated: data shorter than the header says.
  write_raw(dir / "trunc.safetensors", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
            std::string(8, '\0'));
  EXPECT_THAT(error_of([&] { mm::SafetensorsFile::open(dir / "trunc.safetensors"); }),
              AllOf(HasSubstr("trunc.safetensors"), HasSubstr("'w'"), HasSubstr("truncated")));
  // Shape and offsets disagree.
  write_raw(dir / "shape.safetensors",
            R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", std::string(16, '\0'));
  EXPECT_THAT(error_of([&] { mm::SafetensorsFile::open(dir / "shape.safetensors"); }),
              AllOf(HasSubstr("shape.safetensors"), HasSubstr("'w'"), HasSubstr("[2, 3]"),
                    HasSubstr("24 bytes")));
  // Unknown dtype.
  write_raw(dir / "dtype.safetensors", R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})",
            std::string(2, '\0'));
  EXPECT_THAT(error_of([&] { mm::SafetensorsFile::open(dir / "dtype.safetensors"); }),
              AllOf(HasSubstr("'w'"), HasSubstr("Q4")));
  // Overlapping tensors.
  write_raw(
      dir / "overlap.safetensors",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      std::string(12, '\0'));
  EXPECT_THAT(error_of([&] { mm::SafetensorsFile::open(dir / "overlap.safetensors"); }),
              HasSubstr("overlap"));
  // Header length past the end, bad JSON, tiny file.
  write_raw(dir / "len.safetensors", "", "");
  {
    std::string s(8, '\0');
    s[0] = 100;
    metamath::write_file_atomic(dir / "len.safetensors", s + "{}");
  }
  EXPECT_THAT(error_of([&] { mm::SafetensorsFile::open(dir / "len.safetensors"); }),
              AllOf(HasSubstr("len.safetensors"), HasSubstr("header length")));
  write_raw(dir / "json.safetensors", "{not json", "");
  EXPECT_THAT(error_of([&] { mm::SafetensorsFile::open(dir / "json.safetensors"); }),
              HasSubstr("not valid JSON"));
  metamath::write_file_atomic(dir / "tiny.safetensors", "abc");
  EXPECT_THAT(error_of([&] { mm::SafetensorsFile::open(dir / "tiny.safetensors"); }),
              HasSubstr("tiny.safetensors"));
  EXPECT_THAT(error_of([&] { mm::SafetensorsFile::open(dir / "absent.safetensors"); }),
              HasSubstr("absent.safetensors"));
  // Missing tensor.
  mm::save_safetensors(dir / "ok.safetensors", {{"w", at::ones({2})}});
  auto f = mm::SafetensorsFile::open(dir / "ok.safetensors");
  EXPECT_THAT(error_of([&] { f->get("nope"); }),
              AllOf(HasSubstr("ok.safetensors"), HasSubstr("'nope'")));
}

TEST(Safetensors, BadShardIndexErrors) {
  auto dir = metamath::testing::temp_dir("st_bad_index");
  mm::save_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", at::ones({2})}});
  metamath::write_file_atomic(
      dir / "model.safetensors.index.json",
      R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})");
  EXPECT_THAT(error_of([&] { mm::ShardedWeights::open(dir); }),
              AllOf(HasSubstr("model-00002-of-00002.safetensors"), HasSubstr("'b'")));
  metamath::write_file_atomic(dir / "model.safetensors.index.json",
                              R"({"weight_map": {"c": "model-00001-of-00002.safetensors"}})");
  EXPECT_THAT(error_of([&] { mm::ShardedWeights::open(dir); }),
              AllOf(HasSubstr("'c'"), HasSubstr("model-00001-of-00002.safetensors")));
  auto empty = metamath::testing::temp_dir("st_empty_dir");
  EXPECT_THAT(error_of([&] { mm::ShardedWeights::open(empty); }), HasSubstr("model.safetensors"));
}

TEST(Safetensors, WriterRejectsBadInput) {
  auto dir = metamath::testing::temp_dir("st_writer_bad");
  EXPECT_THAT(
      error_of([&] {
        mm::save_safetensors(dir / "d.safetensors", {{"w", at::ones({1})}, {"w", at::ones({1})}});
      }),
      HasSubstr("twice"));
  EXPECT_THAT(
      error_of([&] {
        mm::save_safetensors(dir / "c.safetensors", {{"w", at::ones({1}, at::kComplexFloat)}});
      }),
      HasSubstr("'w'"));
  EXPECT_FALSE(fs::exists(dir / "d.safetensors"));
}
