#pragma once
// `metamath report RUN... --out report.html`: one self-contained HTML page of the paper's analyses
// over whatever run folders it is given. It opens offline: the charts are inline SVG drawn by
// analysis/report_svg.h (no charting library to inline, no script needed to see them, and the
// file stays small and diffable), the styles are inline, and the page's data is embedded as JSON
// (<script type="application/json" id="report-data">).
//
// Inputs: folders (searched a few levels deep; checkpoint-* and dot folders are skipped) or
// files. What is recognised, by file name:
//   summary.json     an eval run (metamath eval; its samples files beside it give the per-question
//                    breakdowns; the "provenance" of run.json beside it, the model's training
//                    record)
//   train_run.json / train_log.jsonl   a training run (metamath train)
//   stats.json       a bootstrap run (its "methods": samples, kept, yield)
//   assemble.json    an assembled mixture's per-type report (written by metamath sweep)
//   diversity.json   a diversity gain (metamath diversity)
//   ppl.json         perplexities (metamath ppl)
// A run's label is its folder relative to the argument it was found under (a trailing eval/,
// model/, train/, diversity/ or ppl/ is dropped), or the argument's own name.
//
// Charts (each drawn only when the runs carry its data; the page lists the others and why):
//   accuracy per benchmark, per MATH subject and per level, across eval runs (bars), with the
//     paired-bootstrap interval of each run's difference to the baseline run (the first, or
//     --baseline), computed as `metamath eval --compare` does (eval/compare.h, eval/metrics.h)
//     and drawn at baseline accuracy + [lo, hi];
//   accuracy against training-set size and against diversity gain (one point per eval run whose
//     model carries a training record; diversity runs are matched to it by the training data
//     file's path or hash);
//   accuracy against question length (questions of each benchmark in equal-count buckets of
//     words);
//   bootstrap yield per method; dataset composition per record type; training loss and learning
//     rate per step; perplexity per record type; diversity gain per type and its incremental curve.
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/jsonl.h"
#include "eval/compare.h"

namespace metamath::analysis {

struct ReportOptions {
  std::vector<std::filesystem::path> inputs;
  std::filesystem::path out;  // the HTML file
  std::string title = "metamath report";
  std::string baseline;    // label of the eval run the intervals compare against (default: first)
  int length_buckets = 5;  // question-length buckets per benchmark
  eval::CompareOptions compare;  // bootstrap rounds, level, seed
};

// Every run found, as read from disk.
struct EvalRunData {
  std::string label;
  std::filesystem::path dir;
  json summary;     // summary.json
  json provenance;  // run.json's "provenance" (eval/provenance.h), or an empty object
  // Per benchmark: problems from the samples file (empty when the file is missing).
  struct Problem {
    std::string id, subject, level;
    double correct = 0;  // fraction of the n samples
    int words = -1;      // question length (-1: unknown)
  };
  std::map<std::string, std::vector<Problem>> problems;
};
struct LabeledJson {
  std::string label;
  std::filesystem::path dir;
  json data;
};
struct TrainRunData {
  std::string label;
  std::filesystem::path dir;
  json record;            // train_run.json (null when absent)
  std::vector<json> log;  // train_log.jsonl rows
};
struct RunSet {
  std::vector<EvalRunData> evals;
  std::vector<TrainRunData> trains;
  std::vector<LabeledJson> bootstraps, assembles, diversities, ppls;
  std::size_t count() const {
    return evals.size() + trains.size() + bootstraps.size() + assembles.size() +
           diversities.size() + ppls.size();
  }
};

// Finds and reads the runs under the inputs (see the file comment). Throws naming the file when a
// recognised file is malformed, and when nothing at all is found.
RunSet collect_runs(const std::vector<std::filesystem::path>& inputs);

struct ChartInfo {
  std::string id, title;
  std::size_t marks = 0, intervals = 0;
};
struct ReportResult {
  std::filesystem::path out;
  std::vector<ChartInfo> charts;     // drawn, in page order
  std::vector<std::string> missing;  // charts not drawn, each with why
  std::size_t runs = 0;
};

// The page for a set of runs (no file written).
std::string render_report(const RunSet& runs, const ReportOptions& opts, ReportResult* result);

// collect_runs + render_report, written atomically to opts.out.
ReportResult write_report(const ReportOptions& opts);

}  // namespace metamath::analysis
