// `metamath score`: re-score a JSONL file of model outputs with the answer checker.
#include "eval/score.h"

#include <fmt/format.h>

#include <cstdio>

#include "answer/extract.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/log.h"

namespace metamath::cli {

void register_score(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "score",
      "Re-score a JSONL file of model outputs against gold answers with metamath's answer checker "
      "(GSM8K numbers or MATH LaTeX). Prints accuracy overall and, for MATH, per subject and "
      "level; "
      "writes one verdict row per input row.");
  struct Opts {
    std::string input, out, summary, bench = "gsm8k", level = "", scoring = "ours";
    eval::ScoreOptions score;
    double time_ms = 100;
    bool skip_bad = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--input,-i", o->input, "JSONL file of model outputs, one row per problem")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--bench,-b", o->bench,
                  "answer style: gsm8k (also svamp, asdiv, gsm8k_backward) or math (also math500)")
      ->capture_default_str();
  cmd->add_option(
         "--pred-field", o->score.pred_field,
         "field holding the prediction: a whole completion or a bare answer; dotted paths "
         "and array indexes allowed (resps.0.0). auto = first of completion, filtered_resps, "
         "resps, response, output, prediction, pred, generated_text, model_output")
      ->capture_default_str();
  cmd->add_option(
         "--gold-field", o->score.gold_field,
         "field holding the gold: a whole solution (#### N or \\boxed{}) or a bare answer. "
         "auto = first of gold, gold_answer, answer, target, solution, doc.answer, "
         "doc.solution, reference")
      ->capture_default_str();
  cmd->add_option("--id-field", o->score.id_field,
                  "field copied into each verdict row as id (the 0-based row index when absent)")
      ->capture_default_str();
  cmd->add_option("--subject-field", o->score.subject_field,
                  "MATH subject field (auto: subject, type, doc.type)")
      ->capture_default_str();
  cmd->add_option("--level-field", o->score.level_field,
                  "MATH level field (auto: level, doc.level)")
      ->capture_default_str();
  cmd->add_option("--scoring", o->scoring,
                  "ours (any output format, CAS comparison), official (MetaMath's released eval "
                  "scripts: 'The answer is: ' only, rounded number / strip_string comparison, as "
                  "the paper's table), or both (two columns and their difference)")
      ->check(CLI::IsMember({"ours", "official", "both"}))
      ->capture_default_str();
  cmd->add_option("--out,-o", o->out,
                  "write per-row verdicts here (JSONL: id, correct, pred_answer, "
                  "gold_answer, verdict, pred_method, reason)");
  cmd->add_option("--summary", o->summary, "also write the summary as JSON here");
  cmd->add_option("--time-limit-ms", o->time_ms, "hard time limit for one answer comparison")
      ->capture_default_str();
  cmd->add_flag(
      "--skip-bad", o->skip_bad,
      "skip malformed JSONL lines with a warning (counted) instead of stopping at the first");
  cmd->add_flag("--quiet,-q", o->quiet, "no progress bar");
  cmd->callback([o]() {
    log::init();
    o->score.style = answer::parse_style(o->bench);
    o->score.scoring = eval::parse_scoring(o->scoring);
    o->score.jsonl.skip_bad = o->skip_bad;
    o->score.limits.time_ms = o->time_ms;
    o->score.progress = !o->quiet;
    eval::ScoreSummary s = eval::score_file(o->input, o->out, o->score);
    std::fputs(eval::format_summary(s).c_str(), stdout);
    if (!o->summary.empty()) write_file_atomic(o->summary, eval::summary_json(s).dump(2) + "\n");
    if (!o->out.empty()) log::info("verdicts written to {}", o->out);
  });
}

const Registration kRegisterScore{10, register_score};

}  // namespace metamath::cli
