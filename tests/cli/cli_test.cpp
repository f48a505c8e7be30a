// End-to-end tests of the metamath program itself: exit codes, messages, files.
#include <gtest/gtest.h>

#include <fstream>

#include "core/jsonl.h"
#include "model/gguf.h"
#include "test_util.h"

namespace metamath {
namespace {
namespace fs = std::filesystem;
using testing::run_command;

std::string bin() { return testing::metamath_bin(); }
std::string samples() { return std::string(METAMATH_SOURCE_DIR) + "/samples/"; }

TEST(Cli, HelpExplainsEveryFlag) {
  auto r = run_command(bin() + " --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("score"), std::string::npos);
  r = run_command(bin() + " score --help");
  EXPECT_EQ(r.code, 0);
  for (const char* flag :
       {"--input", "--pred-field", "--gold-field", "--bench", "--out", "--skip-bad"})
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag;
}

// The export subcommand end to end (the library is tested in tests/model/gguf_test.cpp): a random
// tiny model with the real LLaMA-2 tokenizer becomes a GGUF file that reads back with the
// requested weight type. (Its --format option once wrote into a string freed after registration.)
TEST(Cli, ExportWritesAGgufFileThatReadsBack) {
  METAMATH_REQUIRE_TOKENIZER();
  auto dir = testing::temp_dir("cli_export");
  auto r =
      run_command(bin() + " init-model --config tiny --tokenizer " +
                  testing::llama2_tokenizer_dir()->string() + " --out " + (dir / "tiny").string());
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_command(bin() + " export --format gguf --model " + (dir / "tiny").string() + " --out " +
                  (dir / "tiny.gguf").string() + " --dtype q8_0");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("arch llama"), std::string::npos) << r.output;
  const model::GgufFile f = model::GgufFile::read(dir / "tiny.gguf");
  // The tiny model's 64-wide rows are a multiple of 32: every matrix is q8_0, norms stay f32.
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").type, model::GgmlType::Q8_0);
  EXPECT_EQ(f.tensor("blk.0.attn_norm.weight").type, model::GgmlType::F32);
  r = run_command(bin() + " export --format onnx --model " + (dir / "tiny").string() + " --out " +
                  (dir / "x").string());
  EXPECT_NE(r.code, 0);
}

TEST(Cli, ScoreWritesVerdictsAndPrintsTable) {
  auto dir = testing::temp_dir("cli_score");
  auto r =
      run_command(bin() + " score --input " + samples() + "math_outputs.jsonl --bench math --out " +
                  (dir / "v.jsonl").string() + " --summary " + (dir / "s.json").string() + " -q");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("| **overall** | 12 | 10 | 83.33 |"), std::string::npos) << r.output;
  EXPECT_EQ(read_jsonl(dir / "v.jsonl").size(), 12u);
  auto s = json::parse(read_file(dir / "s.json"));
  EXPECT_EQ(s["overall"]["correct"], 10);
}

TEST(Cli, BadInputGivesOneLineErrorAndNonZeroExit) {
  auto dir = testing::temp_dir("cli_bad");
  std::ofstream(dir / "bad.jsonl") << R"({"completion": "5", "gold": "5"})"
                                   << "\n{oops\n";
  auto r = run_command(bin() + " score -q --input " + (dir / "bad.jsonl").string() + " --out " +
                       (dir / "v.jsonl").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(
      r.output.find("metamath: error: " + (dir / "bad.jsonl").string() + ":2: malformed JSON"),
      std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir / "v.jsonl"));
  // --skip-bad scores the good line and reports the skipped one.
  r = run_command(bin() + " score -q --skip-bad --input " + (dir / "bad.jsonl").string());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("1 malformed lines skipped"), std::string::npos) << r.output;
  r = run_command(bin() + " score --input " + (dir / "nope.jsonl").string());
  EXPECT_NE(r.code, 0);
  r = run_command(bin() + " score -q --bench chess --input " + (dir / "bad.jsonl").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("unknown answer style \"chess\""), std::string::npos) << r.output;
}

}  // namespace
}  // namespace metamath
