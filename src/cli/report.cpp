// `metamath report`: one self-contained HTML page of charts over finished run folders.
#include "analysis/report.h"

#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"

namespace metamath::cli {

void register_report(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "report",
      "One self-contained HTML page (opens offline) of the paper's analyses over run folders: "
      "accuracy per benchmark / MATH subject / level with paired-bootstrap intervals, accuracy "
      "against training-set size, diversity gain and question length, bootstrap yield, dataset "
      "composition, training loss and learning rate, perplexity per type. Give any mix of eval, "
      "train, bootstrap, sweep, diversity and ppl output folders.");
  struct Opts {
    std::vector<std::string> inputs;
    analysis::ReportOptions r;
    std::string out = "report.html";
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("runs", o->inputs, "run folders (searched a few levels deep) or files")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--out,-o", o->out, "the HTML file to write")->capture_default_str();
  cmd->add_option("--title", o->r.title, "page title")->capture_default_str();
  cmd->add_option("--baseline", o->r.baseline,
                  "label of the eval run the intervals compare against (default: the first)");
  cmd->add_option("--length-buckets", o->r.length_buckets, "question-length buckets per benchmark")
      ->check(CLI::Range(1, 50))
      ->capture_default_str();
  cmd->add_option("--bootstrap", o->r.compare.rounds, "bootstrap resamples of each interval")
      ->check(CLI::Range(100, 10000000))
      ->capture_default_str();
  cmd->callback([o]() {
    log::init();
    for (const auto& i : o->inputs) o->r.inputs.push_back(i);
    o->r.out = o->out;
    const analysis::ReportResult r = analysis::write_report(o->r);
    for (const auto& m : r.missing) log::info("not shown: {}", m);
    std::fputs(fmt::format("report: {} charts from {} runs written to {}\n", r.charts.size(),
                           r.runs, std::filesystem::absolute(r.out).string())
                   .c_str(),
               stdout);
  });
}

const Registration kRegisterReport{75, register_report};

}  // namespace metamath::cli
