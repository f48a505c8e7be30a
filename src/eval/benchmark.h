#pragma once
// The benchmark registry of `metamath eval` and its prompt templates.
//
// Each benchmark knows its dataset (loaded through src/data, gold answer already extracted), its
// answer style, its generation limits (512 new tokens GSM-style, 2048 MATH-style, as MetaMath's
// released eval scripts) and the stop strings of DESIGN.md.
//
// A prompt template is MetaMath's Alpaca evaluation prompt (built in, "alpaca") or a text file
// under prompts/eval/ (or any path). Template files:
//   - leading lines starting with '%' are comments; "% stop: [..JSON array..]" replaces the
//     benchmark's stop strings for this template;
//   - "{question}" is replaced by the problem (nothing else is a placeholder, so LaTeX braces are
//     safe);
//   - a template with lines "<<system>>", "<<user>>", "<<assistant>>" is a chat template: the text
//     after each marker (up to the next) is one message; otherwise it is a raw completion prompt.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "answer/extract.h"
#include "data/problem.h"
#include "llm/backend.h"

namespace metamath::eval {

struct Benchmark {
  std::string name;     // gsm8k | math | math500 | gsm8k_backward | svamp | asdiv
  std::string dataset;  // the src/data loader name
  answer::Style style = answer::Style::Gsm8k;
  int max_tokens = 512;
  bool breakdown = false;  // per-subject and per-level tables (MATH, MATH-500)
  std::string description;
};

// Every benchmark, in a stable order.
const std::vector<Benchmark>& benchmarks();
// The benchmark of that name; throws metamath::Error listing the known names.
const Benchmark& find_benchmark(std::string_view name);
// "gsm8k,math" -> the two benchmarks; "all" -> every benchmark. Duplicates are an error.
std::vector<Benchmark> parse_benchmark_list(std::string_view list);
// `--data` values -> benchmark name -> data file: each is NAME=PATH (NAME must be a known
// benchmark), or a bare PATH when exactly one benchmark is run. A later NAME wins.
std::map<std::string, std::filesystem::path> parse_data_flags(const std::vector<std::string>& flags,
                                                              const std::vector<Benchmark>& run);

// MetaMath's stop strings: "Question:", "USER:", "ASSISTANT:", "Instruction:", "Response:" and the
// bare words.
const std::vector<std::string>& default_stop();

// Loads a benchmark's problems: from `path` when non-empty (a file, or for MATH a folder), else
// from data::default_path(dataset, "test") (under METAMATH_DATA).
std::vector<data::Problem> load_problems(const Benchmark& b, const std::filesystem::path& path);

struct PromptTemplate {
  std::string name;                              // "alpaca" or the template's name / path as given
  std::string source;                            // the file it came from ("(built in)" for alpaca)
  std::string text;                              // the template body (comments removed)
  std::optional<std::vector<std::string>> stop;  // from "% stop:", when given
  bool chat = false;

  // The raw prompt (completion templates).
  std::string render(std::string_view question) const;
  // The chat messages (chat templates).
  std::vector<llm::ChatMessage> render_chat(std::string_view question) const;
};

// Parses template text (see the file comment). `where` names it in error messages.
PromptTemplate parse_template(std::string_view text, std::string name, std::string where);

// Folders searched for named templates, in order: $METAMATH_PROMPTS/eval, ./prompts/eval, and the
// source tree's prompts/eval.
std::vector<std::filesystem::path> template_dirs();

// Resolves --prompt for one answer style: "alpaca" (built in); an existing file path; else
// "<name>_<style>.txt" then "<name>.txt" in template_dirs() (style is "gsm8k" or "math", so
// "fewshot" picks fewshot_gsm8k.txt or fewshot_math.txt). Throws naming the places searched.
PromptTemplate load_template(std::string_view name, answer::Style style);

// Names of the templates found in template_dirs() (file stems, without duplicates), plus alpaca.
std::vector<std::string> available_templates();

const char* style_name(answer::Style s);

}  // namespace metamath::eval
