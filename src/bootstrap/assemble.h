#pragma once
// Mixture assembly: bootstrap outputs (one folder per shard) -> MetaMathQA JSONL.
//
// Records are read twice and never held in memory as text: the first pass keeps a few hashes
// per record (exact text, normalised text for near-duplicates, original question), drops exact and
// near duplicates and records whose query or original question is a test-set question, and picks
// up to the per-type target spreading evenly over seed questions; the second pass streams the
// picked records into the output (written atomically).
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace metamath::bootstrap {

// The paper's mixture (Table 1) times scale: GSM 80K/80K/40K/40K, MATH 75K/50K/15K/15K.
std::map<std::string, uint64_t> default_targets(double scale);

// default_targets(scale) with `TYPE=N` overrides (`--target`); throws naming the bad value.
std::map<std::string, uint64_t> parse_targets(double scale,
                                              const std::vector<std::string>& overrides);

// Lowercase letters and digits only: the text key for near-duplicates and contamination.
std::string normalized_text(std::string_view s);

struct AssembleOptions {
  // Bootstrap folders (holding records.jsonl and stats.json) or records JSONL files.
  std::vector<std::filesystem::path> inputs;
  std::filesystem::path out;
  std::map<std::string, uint64_t> targets = default_targets(1.0);
  // Test sets whose questions must not appear (GSM8K/MATH test JSONL); empty = no check.
  std::vector<std::filesystem::path> test_gsm8k, test_math;
  bool near_dedup = true;
  uint64_t seed = 1;
};

struct TypeReport {
  uint64_t read = 0, exact_dups = 0, near_dups = 0, contaminated = 0, target = 0, kept = 0;
  uint64_t samples = 0, accepted = 0;  // from the shards' stats.json: solve samples and kept
  double query_chars = 0, response_chars = 0;  // means over kept records
};
struct AssembleReport {
  std::map<std::string, TypeReport> types;
  uint64_t test_questions = 0;
  TypeReport total() const;
};

// The contamination check's test sets: `gsm8k` and `math` (empty: data::default_path(name,
// "test")) are added to opts.test_gsm8k / opts.test_math; a missing file throws.
void add_test_sets(AssembleOptions& opts, const std::filesystem::path& gsm8k,
                   const std::filesystem::path& math);

AssembleReport assemble(const AssembleOptions& opts);
std::string format_report(const AssembleReport& r);

}  // namespace metamath::bootstrap
