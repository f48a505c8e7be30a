#pragma once
// `metamath eval --compare A.json B.json`: two eval summaries side by side, per-benchmark deltas
// and a paired bootstrap confidence interval of the accuracy difference over the problems both
// runs answered (paired by problem id).
#include <cstdint>
#include <filesystem>
#include <string>

#include "core/jsonl.h"

namespace metamath::eval {

struct CompareOptions {
  int rounds = 10000;
  double level = 0.95;
  std::uint64_t seed = 1234;
};

struct Comparison {
  json table;            // one entry per benchmark in both summaries (and per subject/level)
  std::string markdown;  // the side-by-side table
};

// a and b are summaries as written by run_eval (summary.json); names label them in the table.
Comparison compare_summaries(const json& a, const json& b, const std::string& name_a,
                             const std::string& name_b, const CompareOptions& opts = {});
// Reads the two files (errors name the file) and compares them.
Comparison compare_files(const std::filesystem::path& a, const std::filesystem::path& b,
                         const CompareOptions& opts = {});

}  // namespace metamath::eval
