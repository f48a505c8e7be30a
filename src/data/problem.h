#pragma once
// Problem records and loaders for every dataset metamath reads. Each loader returns Problems with
// the gold answer already extracted, and names file:line (or file) and field on bad input.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/jsonl.h"

namespace metamath::data {

struct Problem {
  std::string id;  // stable id: "gsm8k/test/17", MATH's "test/algebra/1.json", SVAMP's "chal-777"
  std::string dataset;   // gsm8k | math | math500 | gsm8k_backward | svamp | asdiv | metamathqa
  std::string style;     // "gsm8k" (plain-number answers) or "math" (LaTeX answers)
  std::string question;  // the problem statement as shown to a model
  std::string solution;  // reference solution text (may be empty)
  std::string answer;    // gold final answer, extracted (GSM8K: commas removed; MATH: last \boxed)
  std::string subject;   // MATH: "Algebra", ...; empty elsewhere
  std::string level;     // MATH: "Level 3" (MATH-500's integer levels are written the same way)
  std::string type;      // MetaMathQA type (GSM_AnsAug, ...), SVAMP/ASDiv problem type
  std::string original_question;  // MetaMathQA / GSM8K_Backward: the seed question
};

// Dataset names this module knows, in a stable order.
const std::vector<std::string>& dataset_names();

// The data folder: $METAMATH_DATA if set, else ../shared/data relative to the working directory.
std::filesystem::path data_root();
// Default file of a dataset split under data_root(), e.g. ("gsm8k","test") -> gsm8k/test.jsonl.
std::filesystem::path default_path(std::string_view dataset, std::string_view split);

std::vector<Problem> load_gsm8k(const std::filesystem::path& file, JsonlOptions opts = {});
// MATH: a .jsonl file, or a folder in the original release layout (<folder>/<subject>/<n>.json,
// or a folder holding train/ and test/ - pass the split folder).
std::vector<Problem> load_math(const std::filesystem::path& path, JsonlOptions opts = {});
std::vector<Problem> load_math500(const std::filesystem::path& file, JsonlOptions opts = {});
std::vector<Problem> load_gsm8k_backward(const std::filesystem::path& file, JsonlOptions opts = {});
std::vector<Problem> load_svamp(const std::filesystem::path& file, JsonlOptions opts = {});
std::vector<Problem> load_asdiv(const std::filesystem::path& file, JsonlOptions opts = {});
std::vector<Problem> load_metamathqa(const std::filesystem::path& file, JsonlOptions opts = {});

// Loads by dataset name; an empty path means default_path(name, split).
std::vector<Problem> load_dataset(std::string_view name, const std::filesystem::path& path,
                                  std::string_view split = "test", JsonlOptions opts = {});

// ASDiv answers look like "9 (apples)" or "5 (cm);3 (cm)": the leading numbers, without units.
std::string asdiv_answer(std::string_view raw);
// SVAMP's float answers (145.0) as the shortest exact decimal ("145", "2.5").
std::string format_number(double v);

}  // namespace metamath::data
