// The generation engine: continuous batching must not change greedy results (checked against the
// PyTorch reference's golden generations), stop strings and limits end sequences as documented.
#include "model/generate.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "fixtures.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "test_util.h"

namespace metamath::model {
namespace {
namespace fs = std::filesystem;

using metamath::testing::kFixtures;
using metamath::testing::load_golden;

std::vector<std::vector<int32_t>> to32(const std::vector<std::vector<int64_t>>& v) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& r : v) out.emplace_back(r.begin(), r.end());
  return out;
}

class GeneratorGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(GeneratorGolden, ContinuousBatchingMatchesReferenceGreedy) {
  const fs::path dir = kFixtures / GetParam();
  const metamath::testing::Golden golden = load_golden(GetParam());
  auto prompts = to32(golden.prompts);
  auto expect = to32(golden.generations);
  Model model = Model::load(dir);
  // Two slots, one prefill at a time, and different lengths: sequences join and leave the batch.
  // The same prompts are asked twice (as n = 2 greedy samples) so slots are reused.
  GeneratorOptions go;
  go.max_batch = 2;
  go.max_prefill = 1;
  go.max_len = 256;
  Generator gen(model, nullptr, go);
  std::vector<GenRequest> reqs;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    GenRequest r;
    r.prompt_ids = prompts[i];
    r.max_new_tokens = i % 2 ? 64 : 40 + static_cast<int>(i);
    r.stop_at_eos = false;
    r.n = 2;
    reqs.push_back(r);
  }
  std::vector<GenResult> results;
  gen.run(reqs, [&](GenResult r) { results.push_back(std::move(r)); });
  ASSERT_EQ(results.size(), 2 * prompts.size());
  for (const auto& r : results) {
    const auto& want = expect[r.request];
    const std::size_t n = reqs[r.request].max_new_tokens;
    ASSERT_LE(n, want.size());
    EXPECT_EQ(r.ids, std::vector<int32_t>(want.begin(), want.begin() + n))
        << "prompt " << r.request;
    EXPECT_EQ(r.finish_reason, "length");
    EXPECT_EQ(r.prompt_tokens, static_cast<int>(prompts[r.request].size()));
    EXPECT_EQ(r.completion_tokens, static_cast<int>(n));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GeneratorGolden, ::testing::Values("llama2", "qwen2"));

TEST(Generator, StopStringsLimitsAndErrors) {
  METAMATH_REQUIRE_TOKENIZER();
  auto tokdir = metamath::testing::llama2_tokenizer_dir();
  auto tok = Tokenizer::load(*tokdir);
  ModelConfig cfg = preset_config("tiny", Arch::Llama, static_cast<int64_t>(tok->vocab_size()));
  Model model = Model::init_random(cfg, 11);
  Generator gen(model, tok.get(), GeneratorOptions{.max_batch = 4, .max_len = 64});

  GenRequest base;
  base.prompt = "Janet has 16 eggs.";
  base.max_new_tokens = 40;
  base.stop_at_eos = false;
  std::vector<GenResult> out;
  auto collect = [&](GenResult r) { out.push_back(std::move(r)); };
  gen.run({base}, collect);
  ASSERT_EQ(out.size(), 1u);
  const std::string full = out[0].text;
  EXPECT_EQ(out[0].finish_reason, "length");
  EXPECT_EQ(out[0].completion_tokens, 40);
  EXPECT_EQ(out[0].prompt_tokens, static_cast<int>(tok->encode(base.prompt, true).size()));
  ASSERT_GT(full.size(), 20u);

  // A stop string taken from the middle of that text ends the same generation right before it.
  const std::string stop = full.substr(full.size() / 2, 3);
  GenRequest with_stop = base;
  with_stop.stop = {stop};
  out.clear();
  gen.run({with_stop}, collect);
  EXPECT_EQ(out[0].finish_reason, "stop");
  EXPECT_EQ(out[0].stop, stop);
  EXPECT_EQ(out[0].text, full.substr(0, full.find(stop)));

  // Sampling with a seed is reproducible; another seed differs.
  GenRequest s = base;
  s.sampling = SamplingParams{.temperature = 1.0f, .seed = 5};
  s.n = 2;
  out.clear();
  gen.run({s, s}, collect);
  ASSERT_EQ(out.size(), 4u);
  std::map<std::pair<size_t, int>, std::vector<int32_t>> by;
  for (auto& r : out) by[{r.request, r.sample}] = r.ids;
  EXPECT_EQ((by[{0, 0}]), (by[{1, 0}]));
  EXPECT_EQ((by[{0, 1}]), (by[{1, 1}]));
  EXPECT_NE((by[{0, 0}]), (by[{0, 1}]));

  // Too long a prompt and an empty prompt fail with a reason; the others still run.
  GenRequest too_long = base;
  too_long.prompt_ids = std::vector<int32_t>(64, 100);
  GenRequest empty;
  empty.prompt = "";
  empty.add_bos = false;
  out.clear();
  gen.run({too_long, base, empty}, collect);
  ASSERT_EQ(out.size(), 3u);
  std::map<size_t, GenResult> r;
  for (auto& x : out) r[x.request] = x;
  EXPECT_EQ(r[0].finish_reason, "error");
  EXPECT_NE(r[0].error.find("prompt has 64 tokens; the limit is 64"), std::string::npos)
      << r[0].error;
  EXPECT_EQ(r[1].text, full);
  EXPECT_EQ(r[2].finish_reason, "error");
  EXPECT_EQ(r[2].error, "empty prompt");

  // A sequence that fills its KV slot ends with "length".
  GenRequest fill = base;
  fill.max_new_tokens = 1000;
  out.clear();
  gen.run({fill}, collect);
  EXPECT_EQ(out[0].finish_reason, "length");
  EXPECT_LE(out[0].prompt_tokens + out[0].completion_tokens, 64);
}

}  // namespace
}  // namespace metamath::model
