// End to end: `metamath eval` on a tiny random model through the local backend, and through the
// openai backend talking to an OpenAI-compatible server over the same model, writes the same
// files. The model's answers are garbage; what is checked is that both paths agree byte for byte
// and that every stored verdict is what the answer checker says about the stored completion.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <thread>

#include "core/atomic_file.h"
#include "eval/runner.h"
#include "llm/backend.h"
#include "serve/server.h"
#include "test_util.h"

namespace metamath::eval {
namespace {
namespace fs = std::filesystem;

// A tiny random LLaMA with the real LLaMA-2 tokenizer, made by `metamath init-model`.
void init_tiny(const fs::path& tokenizer, const fs::path& model) {
  auto made = testing::run_command(
      fmt::format("{} init-model --config tiny --tokenizer {} --out {}", testing::metamath_bin(),
                  tokenizer.string(), model.string()));
  ASSERT_EQ(made.code, 0) << made.output;
}

TEST(EndToEnd, TinyModelThroughBothBackendsWritesTheSameFiles) {
  METAMATH_REQUIRE_DATA(data);
  const fs::path tokenizer = data / ".." / "tokenizers" / "llama2";
  METAMATH_REQUIRE(fs::exists(tokenizer), "no tokenizer at " << tokenizer);
  const fs::path dir = testing::temp_dir("eval_e2e");
  const fs::path model = dir / "tiny";
  const std::string bin = testing::metamath_bin();
  ASSERT_NO_FATAL_FAILURE(init_tiny(tokenizer, model));

  // One sequence at a time on both sides, so batching cannot change a greedy completion.
  const std::string common = fmt::format(
      "-q -b gsm8k,math500 --limit 3 --max-tokens 24 --data gsm8k={} --data math500={}",
      (data / "gsm8k" / "test.jsonl").string(), (data / "math500" / "test.jsonl").string());
  auto local = testing::run_command(
      fmt::format("{} eval --backend local --model {} --max-batch 1 --max-len 1024 --out {} {}",
                  bin, model.string(), (dir / "local").string(), common));
  ASSERT_EQ(local.code, 0) << local.output;

  llm::BackendOptions bo;
  bo.kind = "local";
  bo.model = model.string();
  bo.max_batch = 1;
  bo.max_len = 1024;
  std::unique_ptr<llm::Backend> backend = llm::make_backend(bo);
  serve::ServeOptions so;
  so.port = 0;
  serve::Server server(*backend, so);
  const int port = server.bind();
  std::thread serving([&] { server.run(); });
  auto remote = testing::run_command(fmt::format(
      "{} eval --backend openai --base-url http://127.0.0.1:{}/v1 --model tiny --out {} {}", bin,
      port, (dir / "openai").string(), common));
  server.stop();
  serving.join();
  ASSERT_EQ(remote.code, 0) << remote.output;

  for (const char* f :
       {"gsm8k.samples.jsonl", "math500.samples.jsonl", "summary.json", "summary.md"})
    EXPECT_EQ(read_file(dir / "local" / f), read_file(dir / "openai" / f)) << f;
  json summary = json::parse(read_file(dir / "local" / "summary.json"));
  EXPECT_EQ(summary["settings"]["model"], "tiny");
  for (const char* bench : {"gsm8k", "math500"}) {
    auto rows = read_jsonl(dir / "local" / (std::string(bench) + ".samples.jsonl"));
    ASSERT_EQ(rows.size(), 3u);
    for (const json& r : rows) {
      EXPECT_FALSE(r["completion"].get<std::string>().empty());
      EXPECT_GT(r["completion_tokens"].get<int>(), 0);
      EXPECT_LE(r["completion_tokens"].get<int>(), 24);
      json again = r;
      score_row(again, answer::parse_style(bench), {});
      EXPECT_EQ(again, r) << r["id"];
    }
    EXPECT_EQ(summary["results"][bench]["problems"], 3);
  }

  // Two shards from torchrun's environment, merged, give the files of the single run.
  for (int rank = 0; rank < 2; ++rank) {
    auto shard = testing::run_command(
        fmt::format("RANK={} WORLD_SIZE=2 {} eval --backend local --model {} --max-batch 1 "
                    "--max-len 1024 --out {} {}",
                    rank, bin, model.string(), (dir / "sharded").string(), common));
    ASSERT_EQ(shard.code, 0) << shard.output;
    EXPECT_TRUE(
        fs::exists(dir / "sharded" / fmt::format("gsm8k.shard-{}-of-2.samples.jsonl", rank)));
  }
  auto merged =
      testing::run_command(fmt::format("{} eval --merge {}", bin, (dir / "sharded").string()));
  ASSERT_EQ(merged.code, 0) << merged.output;
  for (const char* f : {"gsm8k.samples.jsonl", "math500.samples.jsonl", "summary.json"})
    EXPECT_EQ(read_file(dir / "local" / f), read_file(dir / "sharded" / f)) << f;

  // Comparing the two runs: no difference.
  auto cmp = testing::run_command(fmt::format("{} eval --compare {} {}", bin,
                                              (dir / "local" / "summary.json").string(),
                                              (dir / "openai" / "summary.json").string()));
  ASSERT_EQ(cmp.code, 0) << cmp.output;
  EXPECT_NE(cmp.output.find("| gsm8k | 0.00 | 0.00 | +0.00 | [+0.00, +0.00] | 3 |"),
            std::string::npos)
      << cmp.output;
}

// A real kill: SIGKILL `metamath eval` while it runs, run the same command again, get the files
// of an uninterrupted run (whenever the kill landed, even after the end).
TEST(EndToEnd, KilledRunResumesToTheSameFiles) {
  METAMATH_REQUIRE_DATA(data);
  const fs::path tokenizer = data / ".." / "tokenizers" / "llama2";
  METAMATH_REQUIRE(fs::exists(tokenizer), "no tokenizer at " << tokenizer);
  const fs::path dir = testing::temp_dir("eval_kill");
  const fs::path model = dir / "tiny";
  const std::string bin = testing::metamath_bin();
  ASSERT_NO_FATAL_FAILURE(init_tiny(tokenizer, model));
  auto cmd = [&](const fs::path& out) {
    return fmt::format(
        "{} eval -q --backend local --model {} --max-batch 4 --max-len 1024 -b gsm8k --limit 40 "
        "--max-tokens 48 --data {} --out {}",
        bin, model.string(), (data / "gsm8k" / "test.jsonl").string(), out.string());
  };
  auto whole = testing::run_command(cmd(dir / "whole"));
  ASSERT_EQ(whole.code, 0) << whole.output;
  // Start it, wait until the journal holds a few samples, then SIGKILL it.
  const fs::path journal = dir / "killed" / "gsm8k.samples.jsonl";
  auto killed = testing::run_command(fmt::format(
      "{} & pid=$!; for i in $(seq 600); do n=$(cat {} 2>/dev/null | wc -l); "
      "[ \"$n\" -ge 2 ] && break; sleep 0.05; done; kill -9 $pid; wait $pid; echo rc=$?",
      cmd(dir / "killed"), journal.string()));
  EXPECT_NE(killed.output.find("rc=137"), std::string::npos) << killed.output;
  std::size_t lines = read_jsonl(journal, {.skip_bad = true}).size();
  EXPECT_GE(lines, 2u);
  EXPECT_LT(lines, 40u);  // killed while generating
  EXPECT_FALSE(fs::exists(dir / "killed" / "summary.json"));
  auto resumed = testing::run_command(cmd(dir / "killed"));
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  for (const char* f : {"gsm8k.samples.jsonl", "summary.json", "summary.md"})
    EXPECT_EQ(read_file(dir / "whole" / f), read_file(dir / "killed" / f)) << f;
}

}  // namespace
}  // namespace metamath::eval
