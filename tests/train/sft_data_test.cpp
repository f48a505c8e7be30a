// SFT data: Alpaca rendering, response-only labels, EOS, truncation counts, the tokenised cache
// and batching, with the real LLaMA-2 tokenizer (../shared/tokenizers/llama2) and hand-checked
// expectations.
#include "train/sft_data.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/prompt.h"
#include "model/tokenizer.h"
#include "test_util.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
namespace mt = metamath::train;
namespace mm = metamath::model;
using metamath::testing::error_of;

namespace {

std::string write_jsonl(const fs::path& dir, const std::string& body) {
  fs::path p = dir / "data.jsonl";
  metamath::write_file_atomic(p, body);
  return p.string();
}

TEST(SftData, PromptMaskedResponseLabelledEosAppended) {
  METAMATH_REQUIRE_TOKENIZER();
  auto tok = mm::Tokenizer::load(*metamath::testing::llama2_tokenizer_dir());
  mt::TokenizedExample ex = mt::tokenize_example(*tok, "What is 2+3?", " 2+3=5. The answer is: 5",
                                                 512, metamath::data::PromptStyle::Official);
  // BOS, the Alpaca prompt, the response, EOS.
  ASSERT_GE(ex.ids.size(), 3u);
  EXPECT_EQ(ex.ids.front(), *tok->bos_id());
  EXPECT_EQ(ex.ids.back(), *tok->eos_id());
  EXPECT_FALSE(ex.truncated);
  std::vector<int32_t> prompt(ex.ids.begin(), ex.ids.begin() + ex.prompt_len);
  EXPECT_EQ(tok->decode(prompt, true), metamath::data::alpaca_prompt("What is 2+3?"));
  std::vector<int32_t> resp(ex.ids.begin() + ex.prompt_len, ex.ids.end() - 1);
  EXPECT_EQ(tok->decode(resp, true), "2+3=5. The answer is: 5");
}

TEST(SftData, MultiLineQueryGetsTheOfficialPromptWithInput) {
  // The prompt tokens of a FOBAR-shaped query decode to the official rendering (instruction =
  // first line, input = the rest), under which the labels still start at the response.
  METAMATH_REQUIRE_TOKENIZER();
  auto tok = mm::Tokenizer::load(*metamath::testing::llama2_tokenizer_dir());
  const std::string q =
      "Ada has x stamps and gets 3 more. How many does she have?\nIf we know the answer to the "
      "above question is 8, what is the value of unknown variable x?";
  const std::string r = " She had 8 - 3 = 5. The answer is: 5";
  using metamath::data::PromptStyle;
  for (PromptStyle style : {PromptStyle::Official, PromptStyle::Plain}) {
    SCOPED_TRACE(std::string(metamath::data::prompt_style_name(style)));
    mt::TokenizedExample ex = mt::tokenize_example(*tok, q, r, 512, style);
    std::vector<int32_t> prompt(ex.ids.begin(), ex.ids.begin() + ex.prompt_len);
    EXPECT_EQ(tok->decode(prompt, true), metamath::data::training_prompt(q, style));
    std::vector<int32_t> resp(ex.ids.begin() + ex.prompt_len, ex.ids.end() - 1);
    EXPECT_EQ(tok->decode(resp, true), "She had 8 - 3 = 5. The answer is: 5");
  }
  EXPECT_NE(metamath::data::training_prompt(q, PromptStyle::Official).find("### Input:\nIf we"),
            std::string::npos);
}

TEST(SftData, TruncationDropAndCounts) {
  METAMATH_REQUIRE_TOKENIZER();
  auto tok = mm::Tokenizer::load(*metamath::testing::llama2_tokenizer_dir());
  fs::path dir = metamath::testing::temp_dir("sft_trunc");
  const int64_t plen =
      mt::tokenize_example(*tok, "q", "", 512, metamath::data::PromptStyle::Official).prompt_len;
  std::string body = R"({"query": "q", "response": "short"})"
                     "\n"
                     R"({"query": "q", "response": "a much longer response that will not fit"})"
                     "\n"
                     R"({"query": "a very long question that fills everything", "response": "x"})"
                     "\n";
  mt::SftDataOptions o;
  o.input = write_jsonl(dir, body);
  o.max_len = plen + 4;
  mt::SftData d = mt::load_sft_data(o, *tok);
  EXPECT_EQ(d.records, 3);
  // Record 2 is cut (counted), record 3's prompt alone exceeds max_len: dropped (also cut).
  EXPECT_EQ(d.truncated, 2);
  EXPECT_EQ(d.dropped, 1);
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d.length(1), o.max_len);
  EXPECT_NE(d.ids(1)[d.length(1) - 1], *tok->eos_id());  // EOS was cut off with the tail
  EXPECT_EQ(d.ids(0)[d.length(0) - 1], *tok->eos_id());
  fs::remove_all(dir);
}

TEST(SftData, CacheReusedOnlyWhileInputUnchanged) {
  METAMATH_REQUIRE_TOKENIZER();
  auto tok = mm::Tokenizer::load(*metamath::testing::llama2_tokenizer_dir());
  fs::path dir = metamath::testing::temp_dir("sft_cache");
  mt::SftDataOptions o;
  o.input = write_jsonl(dir, R"({"question": "1+1?", "answer": "2"})"
                             "\n");
  o.query_field = "question";
  o.response_field = "answer";
  o.cache_dir = dir / "cache";
  o.tokenizer_dir = *metamath::testing::llama2_tokenizer_dir();
  mt::SftData a = mt::load_sft_data(o, *tok);
  EXPECT_FALSE(a.from_cache);
  mt::SftData b = mt::load_sft_data(o, *tok);
  EXPECT_TRUE(b.from_cache);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.prompt_len, b.prompt_len);
  write_jsonl(dir, R"({"question": "1+2?", "answer": "3"})"
                   "\n");
  mt::SftData c = mt::load_sft_data(o, *tok);
  EXPECT_FALSE(c.from_cache);
  EXPECT_NE(a.tokens, c.tokens);
  // The prompt style is part of the key: a two-line query renders differently under each.
  write_jsonl(dir, R"({"question": "1+2?\nShow your work.", "answer": "3"})"
                   "\n");
  o.prompt_style = metamath::data::PromptStyle::Official;
  mt::SftData official = mt::load_sft_data(o, *tok);
  o.prompt_style = metamath::data::PromptStyle::Plain;
  mt::SftData plain = mt::load_sft_data(o, *tok);
  EXPECT_FALSE(plain.from_cache);
  EXPECT_NE(official.prompt_len, plain.prompt_len);
  EXPECT_TRUE(mt::load_sft_data(o, *tok).from_cache);
  fs::remove_all(dir);
}

TEST(SftData, MissingFieldNamesFileAndLine) {
  METAMATH_REQUIRE_TOKENIZER();
  auto tok = mm::Tokenizer::load(*metamath::testing::llama2_tokenizer_dir());
  fs::path dir = metamath::testing::temp_dir("sft_bad");
  mt::SftDataOptions o;
  o.input = write_jsonl(dir, "{\"query\": \"a\", \"response\": \"b\"}\n{\"query\": \"a\"}\n");
  std::string err = error_of([&] { mt::load_sft_data(o, *tok); });
  EXPECT_NE(err.find("data.jsonl:2"), std::string::npos) << err;
  EXPECT_NE(err.find("response"), std::string::npos) << err;
  fs::remove_all(dir);
}

mt::SftData synthetic(int n) {
  mt::SftData d;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> ids(3 + (i * 7) % 13, 5);
    d.add(ids, 1);
  }
  return d;
}

TEST(Batching, EpochCoversEveryExampleOnceAndGroupsLengths) {
  mt::SftData d = synthetic(103);
  auto batches = mt::epoch_batches(d, 10, 7, 0, true, 4);
  ASSERT_EQ(batches.size(), 11u);
  std::multiset<int64_t> seen;
  for (auto& b : batches) seen.insert(b.begin(), b.end());
  EXPECT_EQ(seen.size(), 103u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 103u);
  // Within a batch lengths are sorted (longest first).
  for (auto& b : batches)
    for (std::size_t i = 1; i < b.size(); ++i) EXPECT_GE(d.length(b[i - 1]), d.length(b[i]));
  // Deterministic in (seed, epoch); another epoch is another order.
  EXPECT_EQ(batches, mt::epoch_batches(d, 10, 7, 0, true, 4));
  EXPECT_NE(batches, mt::epoch_batches(d, 10, 7, 1, true, 4));
}

TEST(Batching, RanksSplitMicroBatchesWithoutOverlap) {
  std::vector<int64_t> g = {9, 8, 7, 6, 5, 4, 3};
  auto r0 = mt::rank_micro_batches(g, 2, 0, 2), r1 = mt::rank_micro_batches(g, 2, 1, 2);
  EXPECT_EQ(r0, (std::vector<std::vector<int64_t>>{{9, 8}, {5, 4}}));
  EXPECT_EQ(r1, (std::vector<std::vector<int64_t>>{{7, 6}, {3}}));
}

TEST(Batching, GlobalMicroBatchCountOverRanks) {
  // Padded: 7 examples in micro-batches of 2 make 4, however many ranks share them.
  std::vector<int64_t> g = {9, 8, 7, 6, 5, 4, 3};
  mt::SftData d = synthetic(10);
  EXPECT_EQ(mt::global_micro_batch_count(d, g, 2, false, 0, 1), 4);
  EXPECT_EQ(mt::global_micro_batch_count(d, g, 2, false, 0, 2),
            static_cast<int64_t>(mt::rank_micro_batches(g, 2, 0, 2).size() +
                                 mt::rank_micro_batches(g, 2, 1, 2).size()));
  // Packed: hand-checked with lengths 6, 3, 4, 2 in rows of 8. One rank: rows {0,3} {2,1}, one
  // micro-batch of 2 rows. Two ranks: rank 0 packs 0 and 2 (6 + 4 > 8: two rows), rank 1 packs
  // 1 and 3 (one row): micro-batches of up to 2 rows, 1 + 1; of 1 row, 2 + 1.
  mt::SftData p;
  p.add({1, 10, 11, 12, 13, 2}, 3);
  p.add({1, 20, 21}, 2);
  p.add({1, 30, 31, 32}, 2);
  p.add({1, 40}, 1);
  EXPECT_EQ(mt::global_micro_batch_count(p, {0, 1, 2, 3}, 2, true, 8, 1), 1);
  EXPECT_EQ(mt::global_micro_batch_count(p, {0, 1, 2, 3}, 2, true, 8, 2), 2);
  EXPECT_EQ(mt::global_micro_batch_count(p, {0, 1, 2, 3}, 1, true, 8, 2), 3);
}

TEST(Batching, TargetsAreNextTokensOfTheResponse) {
  mt::SftData d;
  d.add({1, 10, 11, 12, 13, 2}, 3);  // prompt 1 10 11, response 12 13 EOS(2)
  d.add({1, 20, 21}, 2);
  mt::Batch b = mt::make_batch(d, {0, 1}, 0);
  ASSERT_EQ(b.input_ids.sizes(), (at::IntArrayRef{2, 6}));
  std::vector<int64_t> t0(b.targets[0].data_ptr<int64_t>(), b.targets[0].data_ptr<int64_t>() + 6);
  std::vector<int64_t> t1(b.targets[1].data_ptr<int64_t>(), b.targets[1].data_ptr<int64_t>() + 6);
  EXPECT_EQ(t0, (std::vector<int64_t>{-100, -100, 12, 13, 2, -100}));
  EXPECT_EQ(t1, (std::vector<int64_t>{-100, 21, -100, -100, -100, -100}));
  EXPECT_EQ(b.label_tokens, 4);
  EXPECT_EQ(b.tokens, 9);
  EXPECT_EQ(b.input_ids[1][3].item<int64_t>(), 0);  // right padding
}

TEST(Batching, PackedRowsHoldWholeExamplesWithOwnTargets) {
  // Hand-checked: lengths 6, 3, 4, 2 into rows of 8, first-fit by decreasing length:
  // 6 -> row 0 (room 2), 4 -> row 1 (room 4), 3 -> row 1 (room 1), 2 -> row 0 (room 0).
  mt::SftData d;
  d.add({1, 10, 11, 12, 13, 2}, 3);  // 0: prompt 1 10 11, response 12 13 EOS(2)
  d.add({1, 20, 21}, 2);             // 1
  d.add({1, 30, 31, 32}, 2);         // 2
  d.add({1, 40}, 1);                 // 3
  auto rows = mt::pack_rows(d, {0, 1, 2, 3}, 8);
  EXPECT_EQ(rows, (std::vector<std::vector<int64_t>>{{0, 3}, {2, 1}}));
  mt::Batch b = mt::make_packed_batch(d, rows, 0);
  ASSERT_EQ(b.input_ids.sizes(), (at::IntArrayRef{2, 8}));
  auto row = [](const at::Tensor& t, int64_t r) {
    return std::vector<int64_t>(t[r].data_ptr<int64_t>(), t[r].data_ptr<int64_t>() + t.size(1));
  };
  EXPECT_EQ(row(b.input_ids, 0), (std::vector<int64_t>{1, 10, 11, 12, 13, 2, 1, 40}));
  EXPECT_EQ(row(b.segment_ids, 0), (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 2, 2}));
  // No target crosses from one example into the next (position 5 would predict the next BOS).
  EXPECT_EQ(row(b.targets, 0), (std::vector<int64_t>{-100, -100, 12, 13, 2, -100, 40, -100}));
  EXPECT_EQ(row(b.input_ids, 1), (std::vector<int64_t>{1, 30, 31, 32, 1, 20, 21, 0}));
  EXPECT_EQ(row(b.segment_ids, 1), (std::vector<int64_t>{1, 1, 1, 1, 2, 2, 2, 0}));
  EXPECT_EQ(row(b.targets, 1), (std::vector<int64_t>{-100, 31, 32, -100, -100, 21, -100, -100}));
  EXPECT_EQ(b.label_tokens, 3 + 1 + 2 + 1);
  EXPECT_EQ(b.tokens, 15);
  // An example longer than a row is an error, not a silent cut.
  EXPECT_THROW(mt::pack_rows(d, {0}, 5), metamath::Error);
}

TEST(Batching, PackedRanksShareEveryExampleOnce) {
  mt::SftData d = synthetic(37);
  std::vector<int64_t> g(37);
  for (int64_t i = 0; i < 37; ++i) g[i] = 36 - i;
  std::multiset<int64_t> seen;
  for (int rank = 0; rank < 3; ++rank)
    for (auto& mb : mt::rank_packed_micro_batches(d, g, 2, 20, rank, 3)) {
      EXPECT_LE(mb.size(), 2u);
      for (auto& r : mb) {
        int64_t n = 0;
        for (int64_t e : r) {
          n += d.length(e);
          seen.insert(e);
        }
        EXPECT_LE(n, 20);
      }
    }
  EXPECT_EQ(seen, std::multiset<int64_t>(g.begin(), g.end()));
}

}  // namespace
