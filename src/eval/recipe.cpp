#include "eval/recipe.h"

#include <fmt/format.h>

#include <map>

#include "core/error.h"
#include "eval/benchmark.h"

namespace metamath::eval {

namespace {

// MetaMath's eval_gsm8k.py / eval_math.py.
std::vector<EvalRecipeSetting> metamath_eval() {
  return {
      {"--bench", "gsm8k,math",
       [](EvalOptions& o) { o.benchmarks = parse_benchmark_list("gsm8k,math"); }},
      {"--prompt", "alpaca", [](EvalOptions& o) { o.prompt = "alpaca"; }},
      {"--n", "1", [](EvalOptions& o) { o.n = 1; }},
      {"--temperature", "0", [](EvalOptions& o) { o.temperature = 0.0; }},
      {"--top-p", "1", [](EvalOptions& o) { o.top_p = 1.0; }},
      {"--max-tokens", "0", [](EvalOptions& o) { o.max_tokens = 0; }},
      {"--stop", fmt::format("{}", fmt::join(default_stop(), "|")),
       [](EvalOptions& o) { o.stop = default_stop(); }},
      {"--scoring", "both", [](EvalOptions& o) { o.scoring = Scoring::Both; }},
  };
}

}  // namespace

const std::vector<EvalRecipe>& eval_recipes() {
  static const std::vector<EvalRecipe> v = {
      {"metamath",
       "MetaMath's evaluation (eval_gsm8k.py, eval_math.py): GSM8K and MATH, Alpaca prompt "
       "ending in \"Let's think step by step.\", greedy, 512/2048 new tokens, MetaMath's stop "
       "strings, official scoring beside ours",
       metamath_eval(),
       "batch not set: the official scripts pass 400 prompts per vLLM call; greedy outputs do not "
       "depend on batching, so --max-batch / --concurrency stay the machine's choice"},
  };
  return v;
}

const EvalRecipe& find_eval_recipe(std::string_view name) {
  std::vector<std::string> known;
  for (const EvalRecipe& r : eval_recipes()) {
    if (r.name == name) return r;
    known.push_back(r.name);
  }
  fail("unknown eval recipe '{}' (known: {})", name, fmt::join(known, ", "));
}

json apply_eval_recipe(const EvalRecipe& recipe, EvalOptions& o,
                       const std::function<bool(const std::string& flag)>& given) {
  json applied = json::object(), overridden = json::array();
  for (const EvalRecipeSetting& s : recipe.settings) {
    if (given(s.flag)) {
      overridden.push_back(s.flag);
      continue;
    }
    s.apply(o);
    applied[s.flag] = s.value;
  }
  return {{"name", recipe.name},
          {"applied", applied},
          {"overridden", overridden},
          {"note", recipe.note}};
}

std::string describe_eval_settings(const EvalOptions& o, const json& recipe) {
  std::map<std::string, std::string> mark;
  std::string out = "eval settings";
  if (recipe.is_object()) {
    const std::string name = recipe.at("name").get<std::string>();
    out += fmt::format(" (recipe {}; flags given on the command line override it)", name);
    for (const auto& [flag, value] : recipe.at("applied").items())
      mark[flag] = fmt::format("  (recipe {})", name);
    for (const json& flag : recipe.at("overridden"))
      mark[flag.get<std::string>()] = "  (flag, over the recipe)";
  }
  out += ":";
  auto line = [&](const std::string& flag, const std::string& value) {
    auto it = mark.find(flag);
    out += fmt::format("\n  {:<14} {}{}", flag, value, it == mark.end() ? "" : it->second);
  };
  std::vector<std::string> benches;
  for (const Benchmark& b : o.benchmarks)
    benches.push_back(
        fmt::format("{} ({} new tokens)", b.name, o.max_tokens > 0 ? o.max_tokens : b.max_tokens));
  line("--bench", fmt::format("{}", fmt::join(benches, ", ")));
  line("--max-tokens", o.max_tokens > 0 ? std::to_string(o.max_tokens) : "0 (each benchmark's)");
  line("--prompt", o.prompt);
  line("--n", std::to_string(o.n));
  line("--temperature", fmt::format("{}", o.temperature));
  line("--top-p", fmt::format("{}", o.top_p));
  line("--stop", o.stop ? json(*o.stop).dump() : "the prompt template's, else MetaMath's");
  line("--scoring", scoring_name(o.scoring));
  if (recipe.is_object()) out += "\n  note: " + recipe.at("note").get<std::string>();
  return out;
}

}  // namespace metamath::eval
