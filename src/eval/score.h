#pragma once
// Re-scoring a JSONL file of model outputs against gold answers (`metamath score`).
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "answer/equiv.h"
#include "core/jsonl.h"

namespace metamath::eval {

// A field path into a record: "completion", "doc.answer", "resps.0.0" (array index). "auto" means
// the first present among the defaults below.
inline constexpr const char* kAuto = "auto";
// Our eval files and lm-eval / vLLM-style output files.
const std::vector<std::string>& default_pred_fields();  // completion, filtered_resps, resps, ...
const std::vector<std::string>&
default_gold_fields();  // gold, answer, target, solution, doc.answer, ...

// Looks a dotted path up in a record; arrays of one element are unwrapped to their first element
// when the path ends on an array. Returns nullptr when absent.
const json* lookup(const json& rec, std::string_view path);
// The value at a path as text (numbers are printed, arrays unwrapped to their first element).
std::string field_text(const json& v);

// Which checker decides: ours (extraction in any format, CAS comparison), MetaMath's official
// scripts (answer/official.h: "The answer is: " only, string or rounded-number comparison, as the
// paper's table was scored), or both side by side.
enum class Scoring { Ours, Official, Both };
Scoring parse_scoring(std::string_view name);  // "ours" | "official" | "both"; throws otherwise
const char* scoring_name(Scoring s);

struct ScoreOptions {
  std::string pred_field = kAuto;
  std::string gold_field = kAuto;
  std::string id_field = "id";
  std::string subject_field = kAuto;  // MATH breakdown: type / subject / doc.type
  std::string level_field = kAuto;    // level / doc.level
  answer::Style style = answer::Style::Gsm8k;
  Scoring scoring = Scoring::Ours;
  JsonlOptions jsonl;
  answer::Limits limits;
  bool progress = true;
};

struct Tally {
  std::size_t total = 0, correct = 0, unparsable = 0;
  double accuracy() const {
    return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0;
  }
};

struct ScoreSummary {
  Scoring scoring = Scoring::Ours;
  Tally overall;  // ours (Official: the official verdicts)
  std::map<std::string, Tally> by_subject, by_level;
  Tally official;  // Both: the official verdicts beside ours
  std::map<std::string, Tally> official_by_subject, official_by_level;
  std::map<std::string, std::size_t> pred_methods;  // how predictions were extracted
  std::size_t bad_lines = 0;
  std::string pred_field, gold_field;  // the fields actually used
};

// One row's verdict.
struct RowVerdict {
  bool correct = false;
  std::string pred_answer, gold_answer, reason;
  answer::Verdict verdict = answer::Verdict::Unparsable;
  answer::Method pred_method = answer::Method::None;
};
RowVerdict score_one(const std::string& pred_text, const std::string& gold_text,
                     answer::Style style, const answer::Limits& limits);

// Scores every row of `input`; when `out` is non-empty, writes one verdict row per input row
// (atomically): the input's id (or the 0-based row index when it has none), correct, pred_answer,
// gold_answer, verdict, method and reason; with Scoring::Both also official_correct,
// official_pred and official_gold; with Scoring::Official only id, correct, pred_answer and
// gold_answer (the official extraction's texts) and scoring.
ScoreSummary score_file(const std::filesystem::path& input, const std::filesystem::path& out,
                        const ScoreOptions& opts);

// A Markdown table: overall accuracy, then per subject and per level when present; with
// Scoring::Both, the official accuracy and the difference (ours - official, points) beside it.
std::string format_summary(const ScoreSummary& s);
json summary_json(const ScoreSummary& s);

}  // namespace metamath::eval
