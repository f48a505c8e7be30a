// The official MetaMath prompt set (bootstrap/official_prompts.h): loading a folder in the
// official layout, the exact requests built from it, and the errors for a malformed folder.
//
// The fixture (tests/bootstrap/fixtures/official_prompts) is laid out like a checkout of
// meta-math/MetaMath: code_for_generating_data/configs/*.txt and the script that holds the system
// message, code_for_generating_data/code/utils/parallel_utils.py. Every shot and the system
// message in it are our own made-up text. The expected requests below were written out by hand
// from the official scripts' f-strings (main_forward_reasoning.py, main_rephrase_question.py,
// main_self_verification.py, main_backward_reasoning.py; parallel_utils.py for the messages).
#include "bootstrap/official_prompts.h"

#include <gtest/gtest.h>

#include "bootstrap/bootstrap.h"
#include "bootstrap/metamathqa.h"
#include "core/atomic_file.h"
#include "official_requests.h"
#include "test_util.h"

namespace metamath::bootstrap {
namespace {

namespace fs = std::filesystem;
using answer::Style;
using metamath::testing::error_of;

const fs::path kCheckout =
    fs::path(METAMATH_SOURCE_DIR) / "tests/bootstrap/fixtures/official_prompts";
const fs::path kConfigs = kCheckout / "code_for_generating_data" / "configs";

// A copy of the fixture's configs folder (without the script beside it) to break.
fs::path copy_configs(const std::string& name) {
  fs::path dir = metamath::testing::temp_dir(name) / "configs";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kConfigs))
    fs::copy_file(e.path(), dir / e.path().filename());
  write_file_atomic(dir / "system.txt", "Answer the way the examples do.\n");
  return dir;
}

std::string user_of(const std::vector<llm::ChatMessage>& m) {
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].role, "system");
  EXPECT_EQ(m[0].content, "Answer the way the examples do.");
  EXPECT_EQ(m.back().role, "user");
  return m.back().content;
}

TEST(OfficialPrompts, FoundFromTheCheckoutWithTheScriptsSystemMessage) {
  for (const fs::path& at : {kCheckout, kCheckout / "code_for_generating_data", kConfigs}) {
    auto found = find_official_prompts(at);
    ASSERT_TRUE(found.has_value()) << at;
    EXPECT_EQ(*found, kConfigs);
  }
  EXPECT_FALSE(find_official_prompts(default_prompts_dir()).has_value());

  Prompts p = load_prompts(kCheckout);
  ASSERT_TRUE(p.official.has_value());
  EXPECT_EQ(p.official->dir, kConfigs);
  EXPECT_EQ(p.official->system, "Answer the way the examples do.");
  EXPECT_EQ(p.official->system_source,
            (kCheckout / "code_for_generating_data/code/utils/parallel_utils.py").string());
  EXPECT_EQ(p.official->files.size(), 10u);
  // Stripped as the scripts' read().strip() does: no trailing newline.
  EXPECT_EQ(p.official->files.at("ansaug_cot_math.txt"),
            "Question: What is $2^5$?\nA: Let's think step by step.\nDoubling $1$ five times gives "
            "$2^5 = \\boxed{32}$.\nThe answer is 32");
  EXPECT_TRUE(p.solve_gsm8k.empty());
}

TEST(OfficialPrompts, SolveAndRephraseRequestsByteForByte) {
  const OfficialPrompts p = load_official_prompts(kConfigs);
  const std::string q = "Sam has 12 apples and buys 30 more. How many apples does he have?";
  EXPECT_EQ(
      user_of(official_messages(p, OfficialKind::Solve, Style::Gsm8k, q)),
      "Question: Tom has 3 boxes with 4 pens in each box. How many pens does Tom have?\n"
      "A: Let's think step by step.\n"
      "Each box holds 4 pens and there are 3 boxes, so Tom has 3 * 4 = 12 pens.\n"
      "The answer is 12\n"
      "\n"
      "Question: A bus carries 20 people and 5 get off. How many people are left on the bus?\n"
      "A: Let's think step by step.\n"
      "Of the 20 people, 5 leave, so 20 - 5 = 15 stay on the bus.\n"
      "The answer is 15\n"
      "\n"
      "Question: Sam has 12 apples and buys 30 more. How many apples does he have?\n"
      "A: Let's think step by step.\n");
  EXPECT_EQ(user_of(official_messages(p, OfficialKind::Rephrase, Style::Gsm8k, q)),
            "Help me reword word problems.\n"
            "Keep to the style of the examples.\n"
            "\n"
            "Question: Tom has 3 boxes with 4 pens in each box. How many pens does Tom have?\n"
            "Rephrase the above question: If each of Tom's 3 boxes holds 4 pens, how many pens "
            "does he own in total?\n"
            "\n"
            "Question: Sam has 12 apples and buys 30 more. How many apples does he have?\n"
            "Rephrase the above question: ");
  EXPECT_EQ(
      user_of(official_messages(p, OfficialKind::Solve, Style::Math, "Compute $7 \\cdot 6$.")),
      "Question: What is $2^5$?\n"
      "A: Let's think step by step.\n"
      "Doubling $1$ five times gives $2^5 = \\boxed{32}$.\n"
      "The answer is 32\n"
      "\n"
      "Question: Compute $7 \\cdot 6$.\n"
      "A: Let's think step by step.\n");
}

TEST(OfficialPrompts, SelfVerificationRequestsByteForByte) {
  const OfficialPrompts p = load_official_prompts(kConfigs);
  // Step 1: the final sentence and the answer, with a space before "Result:" as the script has.
  EXPECT_EQ(user_of(official_messages(p, OfficialKind::SvRewrite, Style::Gsm8k,
                                      " How many apples does he have? ", "42")),
            testing::kOfficialSvRewriteGsmRequest);
  // Step 2, GSM8K: the record query is the scripts' question as it is.
  const std::string sv =
      "Sam has x apples and buys 30 more. He has 42 apples. What is the value "
      "of unknown variable x?";
  EXPECT_EQ(user_of(official_messages(p, OfficialKind::SvSolve, Style::Gsm8k, sv)),
            "Find the unknown variable x from the facts each problem gives.\n"
            "\n"
            "Question: Tom has x boxes with 4 pens in each box. Tom has 12 pens. What is the value "
            "of unknown variable x?\n"
            "A: Let's think step by step.\n"
            "Tom has 4x pens, and 4x = 12, so x = 3.\n"
            "The value of x is 3.\n"
            "\n"
            "Question: Sam has x apples and buys 30 more. He has 42 apples. What is the value of "
            "unknown variable x?\n"
            "A: Let's think step by step.\n");
  // MATH: the scripts ask for "$X$".
  EXPECT_EQ(user_of(official_messages(p, OfficialKind::SvSolve, Style::Math,
                                      "The product $X \\cdot 6$ is 42. What is the value of "
                                      "unknown variable X?")),
            "Find the unknown variable $X$ from the facts each problem gives.\n"
            "\n"
            "Question: The value of $2^X$ is 32. What is the value of unknown variable $X$?\n"
            "A: Let's think step by step.\n"
            "We have $2^X = 32 = 2^5$, so $X = 5$.\n"
            "The value of X is 5.\n"
            "\n"
            "Question: The product $X \\cdot 6$ is 42. What is the value of unknown variable $X$?\n"
            "A: Let's think step by step.\n");
}

TEST(OfficialPrompts, FobarRequestsByteForByte) {
  const OfficialPrompts p = load_official_prompts(kConfigs);
  EXPECT_EQ(user_of(official_messages(
                p, OfficialKind::FobarSolve, Style::Gsm8k,
                fobar_query("Sam has x apples and buys 30 more. How many apples does he have?",
                            "42", Style::Gsm8k))),
            "Find the unknown variable x from the answer each problem is given.\n"
            "\n"
            "Question: A bus carries x people and 5 get off. How many people are left on the bus?\n"
            "If we know the answer to the above question is 15, what is the value of unknown "
            "variable x?\n"
            "A: Let's think step by step.\n"
            "x - 5 people are left, and that is 15, so x = 20.\n"
            "The value of x is 20.\n"
            "\n"
            "Question: Sam has x apples and buys 30 more. How many apples does he have?\n"
            "If we know the answer to the above question is 42, what is the value of unknown "
            "variable x?\n"
            "A: Let's think step by step.\n");
  // MATH: "### " before "If we know" and "$X$", as the scripts write it.
  EXPECT_EQ(user_of(official_messages(p, OfficialKind::FobarSolve, Style::Math,
                                      fobar_query("Compute $X \\cdot 6$.", "42", Style::Math))),
            testing::kOfficialFobarMathRequest);
  EXPECT_NE(error_of([&] {
              official_backward_question("Compute $7 \\cdot 6$.", OfficialKind::FobarSolve,
                                         Style::Math);
            }).find("not a backward question"),
            std::string::npos);
}

TEST(OfficialPrompts, SystemTxtReplacesTheScriptsAndEmptySendsNone) {
  fs::path dir = copy_configs("official_system");
  write_file_atomic(dir / "system.txt", "  Be brief.\n");
  OfficialPrompts p = load_official_prompts(dir);
  EXPECT_EQ(p.system, "Be brief.");
  EXPECT_EQ(p.system_source, (dir / "system.txt").string());
  write_file_atomic(dir / "system.txt", "\n");
  p = load_official_prompts(dir);
  auto m = official_messages(p, OfficialKind::Solve, Style::Gsm8k, "What is 1 + 1?");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].role, "user");
  EXPECT_TRUE(
      m[0].content.ends_with("\n\nQuestion: What is 1 + 1?\nA: Let's think step by step.\n"));
}

// The system message is read from the script's chat call, whatever the quotes and spacing; a
// script without one is an error.
TEST(OfficialPrompts, SystemMessageIsReadFromTheScriptsChatCall) {
  fs::path configs = copy_configs("official_script");
  fs::remove(configs / "system.txt");
  fs::path checkout = configs.parent_path();
  fs::create_directories(checkout / "code" / "utils");
  const fs::path script = checkout / "code" / "utils" / "parallel_utils.py";
  write_file_atomic(script,
                    "# the 'system' word in a comment is not the message\n"
                    "msgs = [{'role': 'user', 'content': 'q'},\n"
                    "        {'role' : 'system',  'content' :  'Say \\'hi\\' first.'}]\n");
  OfficialPrompts p = load_official_prompts(configs);
  EXPECT_EQ(p.system, "Say 'hi' first.");
  EXPECT_EQ(p.system_source, script.string());
  write_file_atomic(script, "msgs = [{'role': 'user', 'content': 'q'}]\n");
  EXPECT_NE(error_of([&] { load_official_prompts(configs); }).find("no \"system\" message found"),
            std::string::npos);
}

// Each way a folder can be broken, with the words the error must hold.
TEST(OfficialPrompts, MalformedFoldersAreRefusedNamingTheFileAndLine) {
  struct Case {
    std::string file, content, error;
  };
  const std::vector<Case> cases = {
      {"fobar_cot_math.txt", "", "missing fobar_cot_math.txt"},
      {"ansaug_cot_gsm8k.txt", " \n\n", "ansaug_cot_gsm8k.txt: empty"},
      {"rephrase_cot_math.txt", "Reword the problems.\n", "rephrase_cot_math.txt: no shot"},
      {"rephrase_cot_gsm8k.txt",
       "Reword the problems.\n\nQuestion: What is 2 + 2?\nRephrased: Add 2 and 2.\n",
       "rephrase_cot_gsm8k.txt:3: shot 1 has no line starting with \"Rephrase the above "
       "question:\""},
      {"sv_rewrite_question_prompt_math.txt",
       "Question: What is $2^5$? The answer is 32.\nResult: It is 32.\n\nQuestion: What is "
       "$3^2$?\nResult: It is 9.\n",
       "sv_rewrite_question_prompt_math.txt:4: shot 2 does not hold \"The answer is\""},
      // An AnsAug file where the SV solve file belongs.
      {"sv_cot_gsm8k.txt", "Question: What is 2 + 2?\nA: Let's think step by step.\n2 + 2 = 4.\n",
       "sv_cot_gsm8k.txt:1: shot 1 does not hold \"unknown variable\""},
      {"fobar_cot_gsm8k.txt", "Question: x + 2 = 4\nIf we know...\n\xff\n", "not valid UTF-8"},
  };
  for (const Case& c : cases) {
    fs::path dir = copy_configs("official_broken");
    if (c.content.empty()) {
      fs::remove(dir / c.file);
    } else {
      write_file_atomic(dir / c.file, c.content);
    }
    std::string err = error_of([&] { load_prompts(dir); });
    EXPECT_NE(err.find(c.error), std::string::npos) << c.file << ": " << err;
    EXPECT_NE(err.find(dir.string()), std::string::npos) << err;  // the path, not just a name
  }
  // No system message anywhere.
  fs::path bare = copy_configs("official_no_system");
  fs::remove(bare / "system.txt");
  EXPECT_NE(error_of([&] { load_prompts(bare); }).find("no system message"), std::string::npos);
  // Our --prompt overrides do not apply to the official set; one folder holds one set.
  EXPECT_NE(error_of([&] {
              load_prompts(kCheckout, {{"rephrase", default_prompts_dir() / "rephrase.txt"}});
            }).find("edit its files instead"),
            std::string::npos);
  fs::path both = copy_configs("official_both");
  fs::copy_file(default_prompts_dir() / "solve_gsm8k.txt", both / "solve_gsm8k.txt");
  EXPECT_NE(error_of([&] { load_prompts(both); }).find("holds both"), std::string::npos);
}

data::Problem gsm_problem() {
  data::Problem p;
  p.id = "t/0";
  p.dataset = p.style = "gsm8k";
  p.question = "Sam has 12 apples and buys 30 more. How many apples does he have?";
  p.solution = "Sam has 12 + 30 = <<12+30=42>>42 apples.\n#### 42";
  p.answer = "42";
  return p;
}

// The store keeps the official set: a resumed run needs the same texts (not the same folder),
// and stats say which set was used.
TEST(OfficialPrompts, StoreKeepsTheSetAndStatsNameIt) {
  fs::path dir = metamath::testing::temp_dir("official_store");
  Prompts official = load_prompts(kCheckout);
  Prompts ours = load_prompts(default_prompts_dir());
  {
    Bootstrap b(dir / "out");
    b.initialize({gsm_problem()}, Options{}, official);
  }
  Bootstrap b(dir / "out");
  EXPECT_NO_THROW(b.check_same(Options{}, official));
  fs::path moved = copy_configs("official_moved");
  EXPECT_NO_THROW(b.check_same(Options{}, load_prompts(moved)));  // same texts, other folder
  EXPECT_NE(error_of([&] {
              b.check_same(Options{}, ours);
            }).find("started with the official MetaMath prompts, not our prompt templates"),
            std::string::npos);
  write_file_atomic(moved / "sv_cot_math.txt", read_file(moved / "sv_cot_math.txt") +
                                                   "\nQuestion: one more unknown variable "
                                                   "$X$?\nA: Let's think step by step.\n");
  EXPECT_NE(error_of([&] {
              b.check_same(Options{}, load_prompts(moved));
            }).find("official prompt file sv_cot_math.txt differs"),
            std::string::npos);

  Stats st = b.stats();
  EXPECT_EQ(st.prompt_set, "official");
  EXPECT_EQ(st.prompt_dir, kConfigs.string());
  nlohmann::json j = stats_json(st);
  EXPECT_EQ(j["prompts"]["set"], "official");
  EXPECT_EQ(j["prompts"]["dir"], kConfigs.string());
  EXPECT_NE(
      format_stats(st).find("prompts: the official MetaMath prompts from " + kConfigs.string()),
      std::string::npos);

  Bootstrap plain(dir / "plain");
  plain.initialize({gsm_problem()}, Options{}, ours);
  Stats ps = plain.stats();
  EXPECT_EQ(ps.prompt_set, "metamath");
  EXPECT_EQ(stats_json(ps)["prompts"]["set"], "metamath");
  EXPECT_EQ(stats_json(ps)["prompts"].count("dir"), 0u);
  EXPECT_EQ(ps.prompt_digest.size(), 16u);
  EXPECT_NE(ps.prompt_digest, st.prompt_digest);
}

// The CLI: --prompts takes the checkout; a dry run plans with the official set and says so.
TEST(OfficialPrompts, CliDryRunUsesTheOfficialSet) {
  fs::path dir = metamath::testing::temp_dir("official_cli");
  write_file_atomic(dir / "gsm8k.jsonl",
                    R"({"question": "Sam has 12 apples and buys 30 more. How many apples does he )"
                    R"(have?", "answer": "Sam has 12 + 30 = <<12+30=42>>42 apples.\n#### 42"})"
                    "\n");
  auto r = metamath::testing::run_command(metamath::testing::metamath_bin() +
                                          " bootstrap -q --dry-run --datasets gsm8k --gsm8k " +
                                          (dir / "gsm8k.jsonl").string() + " --prompts " +
                                          kCheckout.string() + " --out " + (dir / "out").string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("prompts: the official MetaMath prompts from " + kConfigs.string()),
            std::string::npos)
      << r.output;
  auto bad = metamath::testing::run_command(
      metamath::testing::metamath_bin() + " bootstrap -q --dry-run --datasets gsm8k --gsm8k " +
      (dir / "gsm8k.jsonl").string() + " --prompts " + kCheckout.string() +
      " --prompt rephrase=x.txt --out " + (dir / "out2").string());
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("edit its files instead"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace metamath::bootstrap
