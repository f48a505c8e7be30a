// The local backend on a tiny random model with the real LLaMA-2 tokenizer: its greedy text is the
// engine's greedy generation (proven against the PyTorch reference in tests/model), samples are
// reproducible by seed, bad requests fail with reasons, and embeddings do not depend on padding.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "llm/backend.h"
#include "llm/tiny_model.h"
#include "model/generate.h"
#include "model/init.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace metamath::llm {
namespace {

std::unique_ptr<Backend> tiny_backend(int max_len = 128) {
  BackendOptions o;
  o.kind = "local";
  o.model = testing::tiny_chat_model().string();
  o.max_batch = 4;
  o.max_len = max_len;
  return make_backend(o);
}

std::vector<Result> run(Backend& b, const std::vector<Request>& reqs) {
  std::vector<Result> out(reqs.size());
  int calls = 0;
  b.generate(reqs, [&](Result r) {
    ++calls;
    out.at(r.id) = std::move(r);
  });
  EXPECT_EQ(calls, static_cast<int>(reqs.size()));
  return out;
}

TEST(LocalBackend, GreedyTextIsTheEnginesGreedyGeneration) {
  METAMATH_REQUIRE_TOKENIZER();
  auto b = tiny_backend();
  const auto dir = testing::tiny_chat_model();
  auto model = model::Model::load(dir);
  auto tok = model::Tokenizer::load(dir);
  std::vector<Request> reqs;
  for (const char* p : {"Janet has 16 eggs.", "What is 2 + 3?", "x"}) {
    Request r;
    r.id = reqs.size();
    r.prompt = p;
    r.sampling.max_tokens = 20;
    reqs.push_back(r);
  }
  const auto got = run(*b, reqs);
  for (const auto& r : reqs) {
    const auto ids = tok->encode(r.prompt, true);
    model::GreedyOptions g;
    g.max_new_tokens = 20;
    g.stop_at_eos = true;
    auto gen = model::greedy_generate(model, {std::vector<int64_t>(ids.begin(), ids.end())}, g)[0];
    bool hit_eos = !gen.empty() && tok->eos_id() && gen.back() == *tok->eos_id();
    if (hit_eos) gen.pop_back();
    const std::vector<int32_t> gen32(gen.begin(), gen.end());
    const Result& res = got[r.id];
    ASSERT_TRUE(res.ok()) << res.error;
    // The completion continues the prompt's text (no SentencePiece start-of-text space removal):
    // decode(prompt + completion) minus decode(prompt).
    std::vector<int32_t> all(ids.begin(), ids.end());
    all.insert(all.end(), gen32.begin(), gen32.end());
    const std::string full = tok->decode(all, /*skip_special=*/true);
    const std::string head = tok->decode(ids, /*skip_special=*/true);
    ASSERT_EQ(full.substr(0, head.size()), head);
    EXPECT_EQ(res.choices[0].text, full.substr(head.size())) << r.prompt;
    EXPECT_EQ(res.choices[0].finish_reason, hit_eos ? "stop" : "length");
    EXPECT_EQ(res.prompt_tokens, static_cast<int>(ids.size()));
    EXPECT_EQ(res.completion_tokens, static_cast<int>(gen32.size()));
  }
  EXPECT_EQ(b->usage().requests.load(), 3u);
}

TEST(LocalBackend, SeededSamplesAreReproducible) {
  METAMATH_REQUIRE_TOKENIZER();
  auto b = tiny_backend();
  Request r;
  r.prompt = "Natalia sold clips";
  r.sampling.max_tokens = 16;
  r.sampling.temperature = 1.0;
  r.sampling.n = 3;
  r.sampling.seed = 1234;
  const auto a = run(*b, {r});
  const auto c = run(*b, {r});
  ASSERT_TRUE(a[0].ok());
  ASSERT_EQ(a[0].choices.size(), 3u);
  int per_choice = 0;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a[0].choices[i].text, c[0].choices[i].text);
    EXPECT_GE(a[0].choices[i].completion_tokens, 1);
    EXPECT_LE(a[0].choices[i].completion_tokens, 16);
    per_choice += a[0].choices[i].completion_tokens;
  }
  EXPECT_EQ(per_choice, a[0].completion_tokens);  // the request's total is the sum of its choices
  // Different seeds per sample: a random model at temperature 1 does not repeat itself 3 times.
  EXPECT_FALSE(a[0].choices[0].text == a[0].choices[1].text &&
               a[0].choices[1].text == a[0].choices[2].text);
}

TEST(LocalBackend, BadRequestsFailWithReasons) {
  METAMATH_REQUIRE_TOKENIZER();
  auto b = tiny_backend(/*max_len=*/32);
  Request long_prompt;
  long_prompt.prompt = std::string(400, 'a') + " b c d e f g h i j k l m n o p q r s t u v w x y z";
  Request ok;
  ok.id = 1;
  ok.prompt = "hello";
  ok.sampling.max_tokens = 4;
  const auto got = run(*b, {long_prompt, ok});
  EXPECT_EQ(got[0].error_kind, ErrorKind::BadRequest);
  EXPECT_NE(got[0].error.find("the limit is 32"), std::string::npos) << got[0].error;
  EXPECT_TRUE(got[0].choices.empty());
  EXPECT_TRUE(got[1].ok());  // a bad neighbour does not spoil the batch
  EXPECT_EQ(b->usage().failed.load(), 1u);
}

TEST(LocalBackend, ChatWithoutTemplateIsABadRequest) {
  METAMATH_REQUIRE_TOKENIZER();
  const auto dir = testing::temp_dir("no_template_model");
  model::InitModelOptions o;
  o.config = "tiny";
  o.tokenizer = *testing::llama2_tokenizer_dir();
  o.out = dir;
  model::init_model(o);
  BackendOptions bo;
  bo.kind = "local";
  bo.model = dir.string();
  bo.max_len = 64;
  auto b = make_backend(bo);
  Request r;
  r.messages = {{"user", "hi"}};
  const auto got = run(*b, {r});
  EXPECT_EQ(got[0].error_kind, ErrorKind::BadRequest);
  EXPECT_NE(got[0].error.find("no chat template"), std::string::npos) << got[0].error;
}

// Padding changes only the shapes of the products (so the kernels and their summation order):
// the same vector up to a few float32 roundings of its largest component after 2 layers (measured
// ~1e-7 of it). 1e-5 of it (~170 roundings); a padded position leaking into the mean, or a
// shifted position, changes whole hidden states, not their last bits.
double embedding_tolerance(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::abs(x)));
  return 1e-5 * m;
}

TEST(LocalBackend, EmbeddingsDoNotDependOnPaddingAndAreMeanHiddenStates) {
  METAMATH_REQUIRE_TOKENIZER();
  auto b = tiny_backend();
  const std::vector<std::string> texts = {"one", "two three four five six", "Janet has 16 eggs."};
  const auto batch = b->embed(texts);
  ASSERT_EQ(batch.size(), 3u);
  // Each text alone (no padding) must give the same vector as inside the padded batch.
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto alone = b->embed({texts[i]});
    ASSERT_EQ(alone[0].size(), batch[i].size());
    for (std::size_t k = 0; k < alone[0].size(); ++k)
      EXPECT_NEAR(alone[0][k], batch[i][k], embedding_tolerance(batch[i]));
  }
  // And equal to the mean over tokens of the model's final hidden states.
  const auto dir = testing::tiny_chat_model();
  auto model = model::Model::load(dir);
  auto tok = model::Tokenizer::load(dir);
  const auto ids = tok->encode(texts[1], true);
  model::ForwardInput in;
  in.input_ids = at::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
  at::Tensor mean = model.forward_hidden(in).mean(1)[0].contiguous();
  for (int64_t k = 0; k < mean.size(0); ++k)
    EXPECT_NEAR(mean[k].item<float>(), batch[1][static_cast<std::size_t>(k)],
                embedding_tolerance(batch[1]));
}

}  // namespace
}  // namespace metamath::llm
