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
  // Mixing symbolic records (provenance "symbolic", bootstrap's symbolic method) with LLM-made
  // ones: below 0 (the default) both compete alike for a type's target; in [0, 1] that share of
  // each target is reserved for symbolic records and the rest for the others, and a pool that
  // runs short is filled from the other. 0 keeps symbolic records only where LLM ones run short;
  // 1 prefers them.
  double symbolic_share = -1;
  bool no_symbolic = false;  // drop symbolic records altogether
};

struct TypeReport {
  uint64_t read = 0, exact_dups = 0, near_dups = 0, contaminated = 0, target = 0, kept = 0;
  uint64_t samples = 0, accepted = 0;  // from the shards' stats.json: solve samples and kept
  uint64_t symbolic_read = 0, symbolic_kept = 0;  // records of provenance "symbolic"
  double query_chars = 0, response_chars = 0;     // means over kept records
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
// The report table; below it, the shortfalls when any.
std::string format_report(const AssembleReport& r);

// One plain sentence per type whose target was not met, saying why: how many records of the type
// were read and how many were left after removing duplicates and test-set overlaps, and which
// bootstrap setting gives more of them. Empty when every target was met.
std::vector<std::string> shortfalls(const AssembleReport& r);

}  // namespace metamath::bootstrap
