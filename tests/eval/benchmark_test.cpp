#include "eval/benchmark.h"

#include <gtest/gtest.h>

#include <fstream>

#include "data/prompt.h"
#include "test_util.h"

namespace metamath::eval {
namespace {
namespace fs = std::filesystem;

TEST(Benchmark, RegistryAndLimits) {
  EXPECT_EQ(benchmarks().size(), 6u);
  EXPECT_EQ(find_benchmark("gsm8k").max_tokens, 512);
  EXPECT_EQ(find_benchmark("math").max_tokens, 2048);
  EXPECT_EQ(find_benchmark("math500").max_tokens, 2048);
  EXPECT_EQ(find_benchmark("svamp").style, answer::Style::Gsm8k);
  EXPECT_EQ(find_benchmark("math500").style, answer::Style::Math);
  EXPECT_TRUE(find_benchmark("math").breakdown);
  EXPECT_FALSE(find_benchmark("asdiv").breakdown);
  std::string err = testing::error_of([] { find_benchmark("gsm9k"); });
  EXPECT_NE(err.find("unknown benchmark \"gsm9k\" (known: gsm8k, math, math500"), std::string::npos)
      << err;
  auto two = parse_benchmark_list("gsm8k, math");
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[1].name, "math");
  EXPECT_EQ(parse_benchmark_list("all").size(), 6u);
  EXPECT_NE(testing::error_of([] { parse_benchmark_list("gsm8k,gsm8k"); }).find("listed twice"),
            std::string::npos);
  // DESIGN.md: the five stop strings and the bare words.
  for (const char* s : {"Question:", "USER:", "ASSISTANT:", "Instruction:", "Response:", "Question",
                        "USER", "ASSISTANT", "Instruction", "Response"})
    EXPECT_NE(std::find(default_stop().begin(), default_stop().end(), s), default_stop().end())
        << s;
}

TEST(Benchmark, LoadsEveryBenchmarkFromRealData) {
  METAMATH_REQUIRE_DATA(data);
  // Record counts from ../shared/data/SOURCES.md.
  std::map<std::string, std::size_t> expect = {{"gsm8k", 1319},  {"math", 5000},
                                               {"math500", 500}, {"gsm8k_backward", 1270},
                                               {"svamp", 1000},  {"asdiv", 2215}};
  for (const auto& b : benchmarks()) {
    auto ps = load_problems(b, data / b.dataset / "test.jsonl");
    EXPECT_EQ(ps.size(), expect.at(b.name)) << b.name;
    for (const auto& p : ps) ASSERT_FALSE(p.answer.empty() && b.name != "math") << p.id;
  }
  auto gsm = load_problems(find_benchmark("gsm8k"), data / "gsm8k" / "test.jsonl");
  EXPECT_EQ(gsm[0].answer, "18");  // Janet's ducks
  std::string err =
      testing::error_of([] { load_problems(find_benchmark("svamp"), "/nonexistent/svamp.jsonl"); });
  EXPECT_NE(err.find("/nonexistent/svamp.jsonl: data file of benchmark svamp not found; pass "
                     "--data svamp=PATH"),
            std::string::npos)
      << err;
}

TEST(Benchmark, AlpacaIsTheDefaultTemplate) {
  PromptTemplate t = load_template("alpaca", answer::Style::Gsm8k);
  EXPECT_FALSE(t.chat);
  EXPECT_EQ(t.render("What is 2+3?"),
            "Below is an instruction that describes a task. Write a response that appropriately "
            "completes the request.\n\n### Instruction:\nWhat is 2+3?\n\n### Response: Let's think "
            "step by step.");
  // Braces in the question are not placeholders.
  EXPECT_EQ(t.render("Find \\frac{1}{2}"), data::alpaca_eval_prompt("Find \\frac{1}{2}"));
}

TEST(Benchmark, ProjectTemplatesLoadForEachStyle) {
  PromptTemplate g = load_template("fewshot", answer::Style::Gsm8k);
  PromptTemplate m = load_template("fewshot", answer::Style::Math);
  EXPECT_TRUE(g.source.ends_with("fewshot_gsm8k.txt")) << g.source;
  EXPECT_TRUE(m.source.ends_with("fewshot_math.txt")) << m.source;
  std::string p = g.render("How many legs do 3 cats have?");
  EXPECT_TRUE(p.ends_with("Question: How many legs do 3 cats have?\nAnswer:")) << p;
  EXPECT_EQ(p.find('%'), std::string::npos);  // comments are not part of the prompt
  EXPECT_NE(m.render("x").find("\\frac{17}{12}"), std::string::npos);  // LaTeX braces kept
  PromptTemplate c = load_template("chat_boxed", answer::Style::Math);
  ASSERT_TRUE(c.chat);
  ASSERT_TRUE(c.stop.has_value());
  EXPECT_TRUE(c.stop->empty());
  auto msgs = c.render_chat("Compute $1+1$.");
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].role, "user");
  EXPECT_TRUE(msgs[0].content.starts_with("Compute $1+1$.\n\nSolve this step by step"))
      << msgs[0].content;
  auto names = available_templates();
  for (const char* n : {"alpaca", "chat_boxed", "cot", "fewshot_gsm8k", "fewshot_math"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
}

TEST(Benchmark, TemplateFilesAndErrors) {
  auto dir = testing::temp_dir("templates");
  std::ofstream(dir / "sys.txt")
      << "% a comment\n% stop: [\"###\"]\n<<system>>\nYou solve math.\n"
         "<<user>>\n{question}\n<<assistant>>\nSure.\n<<user>>\nGo on.\n";
  PromptTemplate t = load_template((dir / "sys.txt").string(), answer::Style::Gsm8k);
  ASSERT_TRUE(t.chat);
  EXPECT_EQ(*t.stop, std::vector<std::string>{"###"});
  auto msgs = t.render_chat("1+1?");
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[0].role, "system");
  EXPECT_EQ(msgs[0].content, "You solve math.");
  EXPECT_EQ(msgs[1].content, "1+1?");
  EXPECT_EQ(msgs[2].role, "assistant");
  EXPECT_EQ(msgs[3].content, "Go on.");

  std::ofstream(dir / "noq.txt") << "Solve it.\n";
  std::string err =
      testing::error_of([&] { load_template((dir / "noq.txt").string(), answer::Style::Gsm8k); });
  EXPECT_NE(err.find("noq.txt: prompt template has no {question} placeholder"), std::string::npos)
      << err;
  std::ofstream(dir / "badstop.txt") << "% stop: \"Q:\"\nQ: {question}\n";
  err = testing::error_of(
      [&] { load_template((dir / "badstop.txt").string(), answer::Style::Gsm8k); });
  EXPECT_NE(err.find("badstop.txt:1: \"% stop:\" wants a JSON array of strings"), std::string::npos)
      << err;
  err = testing::error_of([] { load_template("no_such_prompt", answer::Style::Math); });
  EXPECT_NE(err.find("prompt template \"no_such_prompt\" not found (tried "), std::string::npos)
      << err;
  EXPECT_NE(err.find("no_such_prompt_math.txt"), std::string::npos) << err;
}

}  // namespace
}  // namespace metamath::eval
