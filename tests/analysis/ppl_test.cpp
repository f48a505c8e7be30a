// Perplexity against the PyTorch reference (tests/reference/ppl_reference.py: plain PyTorch model,
// python3-sentencepiece tokenisation, each example run alone without padding):
//   - the four model fixtures (LLaMA-2, LLaMA-3, Mistral, Qwen2) on random token ids: our batched,
//     padded, longest-first scoring gives every example's loss;
//   - `metamath ppl` end to end on real GSM8K/MATH records with a tiny model and the real LLaMA-2
//     tokenizer: the same token ids, prompt lengths, dropped and truncated records, per-example
//     NLL, and the per-type and overall summaries, under the official training prompt (the
//     reference renders it on its own: a FOBAR-shaped record gets the prompt with input);
//   - the prompt style follows --prompt-style, else the model's train_run.json, else official.
// The issue's bound: mean NLL within 1e-5 of the reference (float32 rounding here is ~1e-6).
#include "analysis/ppl.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "data/prompt.h"
#include "model/init.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "test_util.h"
#include "train/sft_data.h"

namespace fs = std::filesystem;
namespace ma = metamath::analysis;
using metamath::json;

namespace {

constexpr double kNllTolerance = 1e-5;

std::string quote(const fs::path& p) { return "'" + p.string() + "'"; }

bool python_reference_available() {
  return metamath::testing::run_command("/usr/bin/python3 -c 'import torch, sentencepiece' 2>&1")
             .code == 0;
}

json run_reference(const json& jobs, const std::string& name) {
  const fs::path dir = metamath::testing::temp_dir(name);
  metamath::write_file_atomic(dir / "jobs.json", jobs.dump());
  auto r = metamath::testing::run_command(
      "/usr/bin/python3 " +
      quote(fs::path(METAMATH_SOURCE_DIR) / "tests/reference/ppl_reference.py") + " " +
      quote(dir / "jobs.json") + " " + quote(dir / "out.json") + " 2>&1");
  EXPECT_EQ(r.code, 0) << r.output;
  return r.code == 0 ? metamath::read_json_file(dir / "out.json") : json::array();
}

TEST(Ppl, ModelFixturesMatchThePyTorchReferenceOnRandomTokens) {
  METAMATH_REQUIRE(python_reference_available(),
                   "/usr/bin/python3 with torch and sentencepiece (python3-torch, "
                   "python3-sentencepiece) not found");
  const fs::path fixtures = fs::path(METAMATH_SOURCE_DIR) / "tests/model/fixtures";
  const std::vector<std::string> names = {"llama2", "llama3", "mistral", "qwen2"};
  std::mt19937_64 rng(17);
  std::vector<metamath::train::SftData> data(names.size());
  json jobs = json::array();
  for (std::size_t f = 0; f < names.size(); ++f) {
    auto m = metamath::model::Model::load(fixtures / names[f]);
    json examples = json::array();
    for (int e = 0; e < 7; ++e) {
      // Lengths up to 150 (beyond Mistral's sliding window of the fixture, if any); prompts from
      // 1 token (BOS only) to most of the example.
      const auto len = static_cast<int32_t>(4 + rng() % 147);
      const auto plen = static_cast<int32_t>(1 + rng() % (len - 1));
      std::vector<int32_t> ids(len);
      for (auto& id : ids) id = static_cast<int32_t>(rng() % m.config().vocab_size);
      data[f].add(ids, plen);
      examples.push_back({{"ids", ids}, {"prompt_len", plen}});
    }
    jobs.push_back({{"model", (fixtures / names[f]).string()}, {"examples", examples}});
  }
  const json want = run_reference(jobs, "ppl_ref_fixtures");
  ASSERT_EQ(want.size(), names.size());
  for (std::size_t f = 0; f < names.size(); ++f) {
    SCOPED_TRACE(names[f]);
    auto m = metamath::model::Model::load(fixtures / names[f]);
    // 300 padded tokens per pass: batches of 2-4 rows of different lengths.
    const std::vector<double> got = ma::example_nll_sums(m, data[f], 300, 0);
    for (int64_t e = 0; e < data[f].size(); ++e) {
      const double n = static_cast<double>(data[f].label_tokens(e));
      ASSERT_EQ(want[f]["tokens"][e].get<int64_t>(), data[f].label_tokens(e));
      const double ref = want[f]["nll_sum"][e].get<double>() / n;
      const double ref64 = want[f]["f64_nll_sum"][e].get<double>() / n;
      EXPECT_NEAR(got[e] / n, ref, kNllTolerance) << "example " << e;
      // Against the float64 run: float32 rounding, relative (the fixtures' random logits give
      // losses up to ~30 nats, where float32 is ~1e-5 off in absolute terms).
      EXPECT_NEAR(got[e] / n, ref64, 2e-6 * std::abs(ref64)) << "example " << e;
    }
  }
}

TEST(Ppl, CliOnRealRecordsMatchesTheReferenceRowByRowAndPerType) {
  METAMATH_REQUIRE_DATA(data);
  METAMATH_REQUIRE_TOKENIZER();
  METAMATH_REQUIRE(python_reference_available(),
                   "/usr/bin/python3 with torch and sentencepiece not found");
  const fs::path dir = metamath::testing::temp_dir("ppl_cli");
  // A MetaMathQA-shaped file from real records: GSM8K (solution + "The answer is: N") and MATH
  // (solution; long ones are truncated at --max-len 256), plus one record whose prompt alone
  // fills --max-len (dropped).
  std::string body;
  int id = 0;
  auto add = [&](const std::string& q, const std::string& r, const std::string& type) {
    body += json{{"id", id++}, {"query", q}, {"response", r}, {"type", type}}.dump() + "\n";
  };
  auto gsm = metamath::read_jsonl(data / "gsm8k/train.jsonl");
  for (int i = 0; i < 5; ++i) {
    std::string a = gsm[i]["answer"].get<std::string>();
    const auto hash = a.find("#### ");
    add(gsm[i]["question"], a.substr(0, hash) + "The answer is: " + a.substr(hash + 5),
        "GSM_AnsAug");
  }
  auto math = metamath::read_jsonl(data / "math/train.jsonl");
  for (int i = 0; i < 5; ++i)
    add(math[i * 700]["problem"],
        math[i * 700]["solution"].get<std::string>() +
            "\nThe answer is: " + math[i * 700]["answer"].get<std::string>(),
        "MATH_AnsAug");
  std::string long_q;
  for (int i = 0; i < 30; ++i) long_q += gsm[5]["question"].get<std::string>() + " ";
  add(long_q, "short", "GSM_AnsAug");
  // FOBAR-shaped (a newline before "If we know"): the official prompt splits it.
  add(gsm[6]["question"].get<std::string>() +
          "\nIf we know the answer to the above question is 7, what is the value of unknown "
          "variable x?",
      "We solve for x. The answer is: 7", "GSM_FOBAR");
  metamath::write_file_atomic(dir / "data.jsonl", body);

  const fs::path model = dir / "model";
  metamath::model::InitModelOptions io;
  io.tokenizer = *metamath::testing::llama2_tokenizer_dir();
  io.out = model;
  io.seed = 5;
  metamath::model::init_model(io);

  auto res = metamath::testing::run_command(metamath::testing::metamath_bin() + " ppl --model " +
                                            quote(model) + " --data " + quote(dir / "data.jsonl") +
                                            " --out " + quote(dir / "out") +
                                            " --max-len 256 --batch-tokens 700 -q 2>&1");
  ASSERT_EQ(res.code, 0) << res.output;

  json jobs = json::array();
  jobs.push_back({{"model", model.string()},
                  {"data", (dir / "data.jsonl").string()},
                  {"tokenizer_model",
                   (*metamath::testing::llama2_tokenizer_dir() / "tokenizer.model").string()},
                  {"max_len", 256},
                  {"prompt_style", "official"}});
  const json want = run_reference(jobs, "ppl_ref_cli")[0];
  const auto rows = metamath::read_jsonl(dir / "out/ppl.jsonl");
  ASSERT_EQ(rows.size(), 12u);

  // Our tokenisation (the trainer's) gives the reference's ids and prompt lengths.
  auto tok = metamath::model::Tokenizer::load(model);
  const auto recs = metamath::read_jsonl(dir / "data.jsonl");
  std::map<std::string, std::pair<double, int64_t>> per_type;  // NLL sum, tokens
  double all_nll = 0;
  int64_t all_tokens = 0, truncated = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(i);
    const auto ex = metamath::train::tokenize_example(*tok, recs[i]["query"], recs[i]["response"],
                                                      256, metamath::data::PromptStyle::Official);
    EXPECT_EQ(rows[i]["id"], recs[i]["id"]);
    EXPECT_EQ(rows[i]["truncated"].get<bool>(), ex.truncated);
    truncated += ex.truncated;
    if (want["nll_sum"][i].is_null()) {  // dropped
      EXPECT_EQ(rows[i]["tokens"], 0);
      EXPECT_TRUE(rows[i]["nll"].is_null());
      continue;
    }
    EXPECT_EQ(json(ex.ids), want["ids"][i]);
    EXPECT_EQ(ex.prompt_len, want["prompt_len"][i].get<int32_t>());
    const int64_t n = want["tokens"][i];
    const double ref = want["nll_sum"][i].get<double>() / static_cast<double>(n);
    EXPECT_EQ(rows[i]["tokens"].get<int64_t>(), n);
    EXPECT_NEAR(rows[i]["nll"].get<double>(), ref, kNllTolerance);
    EXPECT_NEAR(rows[i]["ppl"].get<double>(), std::exp(ref), kNllTolerance * std::exp(ref));
    per_type[recs[i]["type"]].first += want["nll_sum"][i].get<double>();
    per_type[recs[i]["type"]].second += n;
    all_nll += want["nll_sum"][i].get<double>();
    all_tokens += n;
  }
  EXPECT_GT(truncated, 0) << "no MATH solution reached --max-len: the truncation path is untested";

  const json s = metamath::read_json_file(dir / "out/ppl.json");
  EXPECT_EQ(s["dropped"], 1);
  EXPECT_EQ(s["truncated"], truncated);
  EXPECT_EQ(s["overall"]["examples"], 11);
  EXPECT_EQ(s["overall"]["tokens"], all_tokens);
  EXPECT_NEAR(s["overall"]["mean_nll"].get<double>(), all_nll / all_tokens, kNllTolerance);
  ASSERT_EQ(s["by_type"].size(), 3u);
  for (const auto& [type, v] : per_type) {
    EXPECT_EQ(s["by_type"][type]["tokens"], v.second) << type;
    EXPECT_NEAR(s["by_type"][type]["mean_nll"].get<double>(), v.first / v.second, kNllTolerance)
        << type;
    EXPECT_NEAR(s["by_type"][type]["ppl"].get<double>(), std::exp(v.first / v.second),
                kNllTolerance * std::exp(v.first / v.second))
        << type;
  }
  EXPECT_EQ(s["data"]["records"], 12);
  EXPECT_EQ(s["options"]["prompt_style"], "official");
  EXPECT_EQ(s["options"]["prompt_style_from"], "default");  // init_model writes no train record
  EXPECT_EQ(s["data"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_TRUE(fs::exists(dir / "out/by_type.csv"));
}

TEST(Ppl, PromptStyleFollowsTheFlagElseTheTrainingRecordElseOfficial) {
  METAMATH_REQUIRE_TOKENIZER();
  const fs::path dir = metamath::testing::temp_dir("ppl_style");
  const fs::path model = dir / "model";
  metamath::model::InitModelOptions io;
  io.tokenizer = *metamath::testing::llama2_tokenizer_dir();
  io.out = model;
  io.seed = 3;
  metamath::model::init_model(io);
  // One one-line record (the same prompt in both styles) and one FOBAR-shaped record.
  std::string body =
      json{{"query", "Ben has 3 cats. How many legs?"}, {"response", "The answer is: 12"}}.dump() +
      "\n" +
      json{{"query",
            "Ben has x cats. How many legs?\nIf we know the answer to the above question "
            "is 12, what is the value of unknown variable x?"},
           {"response", "The answer is: 3"}}
          .dump() +
      "\n";
  metamath::write_file_atomic(dir / "data.jsonl", body);
  int runs = 0;
  auto ppl = [&](const std::string& flags) {
    const fs::path out = dir / ("out" + std::to_string(runs++));
    auto r = metamath::testing::run_command(metamath::testing::metamath_bin() + " ppl -q --model " +
                                            quote(model) + " --data " + quote(dir / "data.jsonl") +
                                            " --out " + quote(out) + flags + " 2>&1");
    EXPECT_EQ(r.code, 0) << r.output;
    return std::make_pair(metamath::read_json_file(out / "ppl.json"),
                          metamath::read_jsonl(out / "ppl.jsonl"));
  };
  auto [official, rows_official] = ppl("");
  EXPECT_EQ(official["options"]["prompt_style"], "official");
  EXPECT_EQ(official["options"]["prompt_style_from"], "default");
  // A model trained with the plain prompt is scored with it.
  metamath::write_file_atomic(
      model / "train_run.json",
      R"({"kind": "metamath-train", "options": {"prompt_style": "plain"}})");
  auto [plain, rows_plain] = ppl("");
  EXPECT_EQ(plain["options"]["prompt_style"], "plain");
  EXPECT_EQ(plain["options"]["prompt_style_from"], "train_run.json");
  auto [flag, rows_flag] = ppl(" --prompt-style official");
  EXPECT_EQ(flag["options"]["prompt_style_from"], "flag");
  // A record from before the setting existed: that run trained with the plain prompt.
  metamath::write_file_atomic(model / "train_run.json",
                              R"({"kind": "metamath-train", "options": {"lr": 2e-5}})");
  auto [old, rows_old] = ppl("");
  EXPECT_EQ(old["options"]["prompt_style"], "plain");
  // The one-line record scores the same under both styles, the FOBAR one does not.
  ASSERT_EQ(rows_official.size(), 2u);
  ASSERT_EQ(rows_plain.size(), 2u);
  EXPECT_EQ(rows_official[0]["nll"], rows_plain[0]["nll"]);
  EXPECT_NE(rows_official[1]["nll"], rows_plain[1]["nll"]);
  EXPECT_EQ(rows_flag[1]["nll"], rows_official[1]["nll"]);
  EXPECT_EQ(rows_old[1]["nll"], rows_plain[1]["nll"]);
}

TEST(Ppl, SummaryWeightsTokensAndExamplesAsDocumented) {
  // Hand-checked: NLL 1 over 1 token and NLL 3 over 3 tokens -> token-weighted 10/4 = 2.5;
  // per-example mean NLL 2, mean ppl (e + e^3) / 2.
  ma::PplResult r;
  r.rows = {{0, nullptr, "A", 1, 1.0, false},
            {1, nullptr, "A", 3, 3.0, true},
            {2, nullptr, "B", 0, 0.0, false}};
  ma::summarize_ppl(r);
  EXPECT_EQ(r.overall.examples, 2);
  EXPECT_EQ(r.overall.tokens, 4);
  EXPECT_DOUBLE_EQ(r.overall.mean_nll, 2.5);
  EXPECT_DOUBLE_EQ(r.overall.ppl, std::exp(2.5));
  EXPECT_DOUBLE_EQ(r.overall.mean_example_nll, 2.0);
  EXPECT_DOUBLE_EQ(r.overall.mean_example_ppl, (std::exp(1.0) + std::exp(3.0)) / 2);
  EXPECT_EQ(r.dropped, 1);
  EXPECT_EQ(r.truncated, 1);
  ASSERT_EQ(r.by_type.size(), 1u);  // B's only record was dropped
  EXPECT_EQ(r.by_type[0].type, "A");
}

}  // namespace
