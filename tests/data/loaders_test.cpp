#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "core/text.h"
#include "data/problem.h"
#include "data/prompt.h"
#include "test_util.h"

namespace metamath::data {
namespace {
namespace fs = std::filesystem;

TEST(RealData, Gsm8kCountsAndGold) {
  METAMATH_REQUIRE_DATA(dir);
  auto train = load_gsm8k(dir / "gsm8k/train.jsonl");
  auto test = load_gsm8k(dir / "gsm8k/test.jsonl");
  EXPECT_EQ(train.size(), 7473u);  // SOURCES.md record counts
  EXPECT_EQ(test.size(), 1319u);
  // First test problem: Janet's ducks, "#### 18" (hand-checked in the file).
  EXPECT_EQ(test[0].answer, "18");
  EXPECT_EQ(test[0].id, "gsm8k/test/0");
  EXPECT_NE(test[0].question.find("Janet"), std::string::npos);
  EXPECT_EQ(train[0].answer, "72");  // Natalia's clips: 48 + 24
  EXPECT_EQ(train.back().answer, "50");
  for (const auto& p : train) {
    EXPECT_FALSE(p.answer.empty()) << p.id;
    EXPECT_EQ(p.answer.find(','), std::string::npos) << p.id;  // commas removed
  }
}

TEST(RealData, MathCountsSubjectsLevels) {
  METAMATH_REQUIRE_DATA(dir);
  auto test = load_math(dir / "math/test.jsonl");
  auto train = load_math(dir / "math/train.jsonl");
  ASSERT_EQ(test.size(), 5000u);
  ASSERT_EQ(train.size(), 7500u);
  EXPECT_EQ(test[0].id, "test/algebra/1.json");
  EXPECT_EQ(test[0].answer, "2");  // "the graph has \boxed{2} vertical asymptotes"
  EXPECT_EQ(test[0].subject, "Algebra");
  EXPECT_EQ(test[0].level, "Level 3");
  std::map<std::string, int> subjects;
  for (const auto& p : test) ++subjects[p.subject];
  EXPECT_EQ(subjects.size(), 7u);
  EXPECT_EQ(subjects["Algebra"], 1187);
  EXPECT_EQ(subjects["Counting & Probability"], 474);
  // Our brace-matched extraction equals the dataset's own `answer` field on every problem.
  for (const std::string split : {"test", "train"}) {
    auto rows = read_jsonl(dir / "math" / (split + ".jsonl"));
    const auto& loaded = split == "test" ? test : train;
    for (size_t i = 0; i < rows.size(); ++i)
      ASSERT_EQ(loaded[i].answer, rows[i]["answer"].get<std::string>()) << loaded[i].id;
  }
  int empty = 0;
  for (const auto& p : train) empty += p.answer.empty();
  EXPECT_EQ(empty, 2);  // train/number_theory/7115 and 7117 have an empty \boxed{}
}

TEST(RealData, Math500AndBackwardAndSmallSets) {
  METAMATH_REQUIRE_DATA(dir);
  auto m500 = load_math500(dir / "math500/test.jsonl");
  ASSERT_EQ(m500.size(), 500u);
  EXPECT_EQ(m500[0].level.substr(0, 6), "Level ");
  auto math_test = load_math(dir / "math/test.jsonl");
  std::map<std::string, const Problem*> by_id;
  for (const auto& p : math_test) by_id[p.id] = &p;
  for (const auto& p : m500) {
    auto it = by_id.find(p.id);
    ASSERT_NE(it, by_id.end()) << p.id << " not in MATH test";
    EXPECT_EQ(it->second->question, p.question) << p.id;
  }
  auto back = load_gsm8k_backward(dir / "gsm8k_backward/test.jsonl");
  ASSERT_EQ(back.size(), 1270u);
  EXPECT_EQ(back[0].answer, "80000");  // Josh's house, $80,000 masked
  EXPECT_NE(back[0].original_question.find("$80,000"), std::string::npos);
  auto svamp = load_svamp(dir / "svamp/test.jsonl");
  ASSERT_EQ(svamp.size(), 1000u);
  EXPECT_EQ(svamp[0].answer, "145");
  EXPECT_EQ(svamp[0].id, "chal-777");
  EXPECT_EQ(svamp[0].question,
            "There are 87 oranges and 290 bananas in Philip's collection. If the bananas are "
            "organized into 2 groups and oranges are organized into 93 groups. How big is each "
            "group of bananas?");
  auto asdiv = load_asdiv(dir / "asdiv/test.jsonl");
  ASSERT_EQ(asdiv.size(), 2215u);
  EXPECT_EQ(asdiv[0].answer, "9");
  EXPECT_EQ(asdiv[0].question,
            "Seven red apples and two green apples are in the basket. How many apples are in the "
            "basket?");
  EXPECT_EQ(asdiv[1007].answer, "14");
  EXPECT_EQ(asdiv[1313].answer, "-(1/3)");
}

TEST(RealData, LoadByName) {
  METAMATH_REQUIRE_DATA(dir);
  auto p = load_dataset("gsm8k", dir / "gsm8k/test.jsonl");
  EXPECT_EQ(p.size(), 1319u);
  EXPECT_THROW(load_dataset("nope", dir / "gsm8k/test.jsonl"), Error);
}

TEST(Loaders, MathFolderLayoutMatchesJsonl) {
  // The original release: <split>/<subject>/<n>.json, one problem per file (our own problems).
  auto dir = testing::temp_dir("math_folder");
  fs::create_directories(dir / "test/algebra");
  fs::create_directories(dir / "test/geometry");
  auto put = [&](const std::string& rel, const std::string& sol, const std::string& type) {
    json j = {
        {"problem", "Problem " + rel}, {"level", "Level 2"}, {"type", type}, {"solution", sol}};
    std::ofstream(dir / rel) << j.dump();
  };
  put("test/algebra/10.json", "So $x=\\boxed{\\frac{1}{2}}$.", "Algebra");
  put("test/algebra/2.json", "It is $\\boxed{5}$.", "Algebra");
  put("test/geometry/1.json", "Area $\\boxed{4\\pi}$.", "Geometry");
  auto probs = load_math(dir / "test");
  ASSERT_EQ(probs.size(), 3u);
  EXPECT_EQ(probs[0].id, "test/algebra/2.json");  // numeric order, not lexicographic
  EXPECT_EQ(probs[0].answer, "5");
  EXPECT_EQ(probs[1].answer, "\\frac{1}{2}");
  EXPECT_EQ(probs[2].id, "test/geometry/1.json");
  EXPECT_EQ(probs[2].subject, "Geometry");
}

TEST(Loaders, ErrorsNameFileLineAndField) {
  auto dir = testing::temp_dir("loader_errors");
  std::ofstream(dir / "g.jsonl")
      << "{\"question\": \"q\", \"answer\": \"x\\n#### 3\"}\n{\"question\": \"q2\"}\n";
  try {
    load_gsm8k(dir / "g.jsonl");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("g.jsonl:2: missing field \"answer\""), std::string::npos)
        << e.what();
  }
  std::ofstream(dir / "h.jsonl") << "{\"question\": \"q\", \"answer\": \"no final answer\"}\n";
  try {
    load_gsm8k(dir / "h.jsonl");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("h.jsonl:1: field \"answer\" has no \"#### N\""),
              std::string::npos)
        << e.what();
  }
}

TEST(Loaders, MetaMathQaRecords) {
  auto dir = testing::temp_dir("mmqa");
  std::ofstream(dir / "m.jsonl")
      << R"({"query": "What is 2+3?", "response": "2+3=5\nThe answer is: 5", "type": "GSM_AnsAug", "original_question": "What is 2+3?"})"
      << "\n"
      << R"({"query": "Find $x$.", "response": "So $x=\\frac12$.\nThe answer is: \\frac{1}{2}", "type": "MATH_FOBAR", "original_question": "Find $y$."})"
      << "\n";
  auto p = load_metamathqa(dir / "m.jsonl");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].answer, "5");
  EXPECT_EQ(p[0].style, "gsm8k");
  EXPECT_EQ(p[1].answer, "\\frac{1}{2}");
  EXPECT_EQ(p[1].style, "math");
  EXPECT_EQ(p[1].type, "MATH_FOBAR");
}

TEST(Loaders, AsdivAnswerAndNumberFormat) {
  EXPECT_EQ(asdiv_answer("9 (apples)"), "9");
  EXPECT_EQ(asdiv_answer("14  (seats)"), "14");
  EXPECT_EQ(asdiv_answer("5 (cm);3 (cm)"), "5, 3");
  EXPECT_EQ(asdiv_answer("3:4"), "3:4");
  EXPECT_EQ(asdiv_answer("Mrs. Hilt"), "Mrs. Hilt");
  EXPECT_EQ(format_number(145.0), "145");
  EXPECT_EQ(format_number(2.5), "2.5");
  EXPECT_EQ(format_number(-3.0), "-3");
}

TEST(Prompt, AlpacaTemplateIsExact) {
  EXPECT_EQ(alpaca_prompt("What is 1+1?"),
            "Below is an instruction that describes a task. Write a response that appropriately "
            "completes the request.\n\n### Instruction:\nWhat is 1+1?\n\n### Response:");
  EXPECT_EQ(
      alpaca_eval_prompt("Q"),
      "Below is an instruction that describes a task. Write a response that appropriately "
      "completes the request.\n\n### Instruction:\nQ\n\n### Response: Let's think step by step.");
}

// The training prompt, hand-checked against MetaMath's train_math.py: the query's first line is
// the instruction, the text after the first newline (kept as it is) the input of Alpaca's prompt
// with input; a query with nothing after its first newline gets the prompt without input.
constexpr const char* kNoInput =
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n";
constexpr const char* kWithInput =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n";

TEST(Prompt, OfficialTrainingPromptOneLineQuery) {
  const std::string q = "Lena reads 12 pages a day. How many pages does she read in 5 days?";
  const std::string want = std::string(kNoInput) +
                           "### Instruction:\nLena reads 12 pages a day. How many pages does she "
                           "read in 5 days?\n\n### Response:";
  EXPECT_EQ(training_prompt(q, PromptStyle::Official), want);
  EXPECT_EQ(training_prompt(q, PromptStyle::Plain), want);
}

TEST(Prompt, OfficialTrainingPromptMultiLineMathQuery) {
  const std::string q =
      "Let $f(x) = 3x + 2$.\nFind $f(f(1))$.\n\nExpress your answer as an integer.";
  EXPECT_EQ(training_prompt(q, PromptStyle::Official),
            std::string(kWithInput) +
                "### Instruction:\nLet $f(x) = 3x + 2$.\n\n### Input:\nFind $f(f(1))$.\n\n"
                "Express your answer as an integer.\n\n### Response:");
  // plain: the whole query in the instruction.
  EXPECT_EQ(training_prompt(q, PromptStyle::Plain),
            std::string(kNoInput) +
                "### Instruction:\nLet $f(x) = 3x + 2$.\nFind $f(f(1))$.\n\nExpress your answer "
                "as an integer.\n\n### Response:");
}

TEST(Prompt, OfficialTrainingPromptFobarQuery) {
  const std::string q =
      "Omar packs x boxes with 6 mugs each and 4 loose mugs. How many mugs is that?\nIf we know "
      "the answer to the above question is 22, what is the value of unknown variable x?";
  EXPECT_EQ(training_prompt(q, PromptStyle::Official),
            std::string(kWithInput) +
                "### Instruction:\nOmar packs x boxes with 6 mugs each and 4 loose mugs. How many "
                "mugs is that?\n\n### Input:\nIf we know the answer to the above question is 22, "
                "what is the value of unknown variable x?\n\n### Response:");
}

TEST(Prompt, OfficialTrainingPromptEdgeNewlines) {
  // Only the first newline splits; nothing is stripped; an empty rest means no input (and the
  // trailing newline is gone, as in the official split).
  EXPECT_EQ(training_prompt("Solve it.\n", PromptStyle::Official),
            std::string(kNoInput) + "### Instruction:\nSolve it.\n\n### Response:");
  EXPECT_EQ(training_prompt("A\n\nB\n", PromptStyle::Official),
            std::string(kWithInput) + "### Instruction:\nA\n\n### Input:\n\nB\n\n\n### Response:");
  EXPECT_EQ(training_prompt("\nB", PromptStyle::Official),
            std::string(kWithInput) + "### Instruction:\n\n\n### Input:\nB\n\n### Response:");
  EXPECT_EQ(training_prompt("{x}\n{y}", PromptStyle::Official),
            std::string(kWithInput) + "### Instruction:\n{x}\n\n### Input:\n{y}\n\n### Response:");
}

TEST(Prompt, StyleNames) {
  EXPECT_EQ(parse_prompt_style("official"), PromptStyle::Official);
  EXPECT_EQ(parse_prompt_style("plain"), PromptStyle::Plain);
  EXPECT_EQ(prompt_style_name(PromptStyle::Official), "official");
  const std::string err = testing::error_of([] { parse_prompt_style("alpaca"); });
  EXPECT_NE(err.find("unknown prompt style 'alpaca' (known: official, plain)"), std::string::npos)
      << err;
}

TEST(Prompt, FillTemplate) {
  EXPECT_EQ(fill_template("Q: {question}\nA: {answer} {x^2}", {{"question", "a"}, {"answer", "b"}}),
            "Q: a\nA: b {x^2}");  // non-identifier braces (LaTeX) are left alone
  EXPECT_THROW(fill_template("{missing}", {}), Error);
}

}  // namespace
}  // namespace metamath::data
