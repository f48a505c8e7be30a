#include "analysis/sweep.h"

#include <fmt/format.h>
#include <unistd.h>

#include <numeric>
#include <set>

#include "analysis/report.h"
#include "bootstrap/assemble.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/sha256.h"
#include "core/text.h"
#include "eval/benchmark.h"
#include "eval/provenance.h"
#include "eval/runner.h"

namespace metamath::analysis {
namespace fs = std::filesystem;

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::Assemble:
      return "assemble";
    case Stage::Train:
      return "train";
    case Stage::Eval:
      return "eval";
  }
  return "?";
}

namespace {

constexpr Stage kStages[] = {Stage::Assemble, Stage::Train, Stage::Eval};

std::string abs_path(const fs::path& p) {
  return p.empty() ? std::string() : fs::absolute(p).lexically_normal().string();
}

fs::path data_file(const SweepPoint& p) { return p.dir / "MetaMathQA.jsonl"; }
fs::path model_dir(const SweepPoint& p) { return p.dir / "model"; }
fs::path eval_dir(const SweepPoint& p) { return p.dir / "eval"; }
fs::path stages_file(const fs::path& dir) { return dir / "stages.json"; }

json read_stages(const fs::path& dir) {
  const fs::path f = stages_file(dir);
  return fs::exists(f) ? read_json_file(f) : json::object();
}

bool stage_done(const json& stages, const std::string& name) {
  return stages.contains(name) && stages[name].value("done", false);
}

// Records a finished stage (atomically: the stage's outputs are complete before this).
void mark_done(const fs::path& dir, const std::string& name, json info) {
  json stages = read_stages(dir);
  info["done"] = true;
  stages[name] = std::move(info);
  write_file_atomic(stages_file(dir), stages.dump(2) + "\n");
}

// Writes OUT/sweep.json, or checks that the folder's sweep has the same settings.
void open_sweep_folder(const SweepOptions& o) {
  fs::create_directories(o.out);
  const fs::path f = o.out / "sweep.json";
  const json settings = sweep_settings(o);
  if (fs::exists(f)) {
    const std::string d =
        first_difference(read_json_file(f).value("settings", json()), settings, "");
    if (!d.empty())
      fail(
          "{}: this folder holds a sweep with other settings ({}); use another --out folder, or "
          "delete it to start over",
          f.string(), d);
  }
  write_file_atomic(f, json{{"settings", settings}}.dump(2) + "\n");
}

// OUT/sweep_log.jsonl, one flushed line per event.
class SweepLog {
 public:
  explicit SweepLog(const fs::path& out) : w_(out / "sweep_log.jsonl", JsonlWriter::Mode::Append) {}
  void event(const std::string& point, const std::string& stage, const char* what) {
    w_.write({{"point", point}, {"stage", stage}, {"event", what}, {"pid", ::getpid()}});
    w_.commit();
  }

 private:
  JsonlWriter w_;
};

json type_report_json(const bootstrap::TypeReport& t) {
  return {{"read", t.read},
          {"exact_dups", t.exact_dups},
          {"near_dups", t.near_dups},
          {"contaminated", t.contaminated},
          {"target", t.target},
          {"kept", t.kept},
          {"samples", t.samples},
          {"accepted", t.accepted},
          {"query_chars", t.query_chars},
          {"response_chars", t.response_chars}};
}

json run_assemble(const SweepOptions& o, const SweepPoint& p) {
  bootstrap::AssembleOptions a;
  a.inputs = o.bootstrap;
  a.out = data_file(p);
  a.targets = bootstrap::parse_targets(p.scale, o.targets);
  a.seed = o.assemble_seed;
  if (o.contamination_check) bootstrap::add_test_sets(a, o.test_gsm8k, o.test_math);
  const bootstrap::AssembleReport r = bootstrap::assemble(a);
  json types = json::object();
  for (const auto& [t, tr] : r.types) types[t] = type_report_json(tr);
  // assemble.json: what `metamath report` draws as the mixture's composition.
  json report = {{"kind", "assemble"},
                 {"scale", p.scale},
                 {"out", abs_path(a.out)},
                 {"sha256", sha256_file(a.out)},
                 {"records", r.total().kept},
                 {"test_questions", r.test_questions},
                 {"types", types}};
  write_file_atomic(p.dir / "assemble.json", report.dump(2) + "\n");
  log::info("sweep {}: assembled {} records", p.name, r.total().kept);
  return {{"records", r.total().kept}};
}

json run_train(const SweepOptions& o, const SweepPoint& p) {
  train::TrainOptions t = o.train;
  t.data = data_file(p);
  t.out = model_dir(p);
  t.resume = train::latest_training_checkpoint(t.out) ? "latest" : "";
  t.progress = o.progress;
  t.comm = nullptr;
  t.stop_after = 0;
  const train::TrainSummary s = train::run_training(t);
  if (s.final_dir.empty()) fail("sweep {}: training stopped before its last step", p.name);
  return {{"steps", s.steps_done},
          {"examples", s.examples},
          {"final_loss", s.losses.empty() ? json() : json(s.losses.back())}};
}

json run_eval_stage(const SweepOptions& o, const SweepPoint& p) {
  llm::BackendOptions b = o.backend;
  b.kind = "local";
  b.model = model_dir(p).string();
  eval::EvalOptions e;
  e.benchmarks = eval::parse_benchmark_list(o.benchmarks);
  e.data = eval::parse_data_flags(o.eval_data, e.benchmarks);
  e.prompt = o.prompt;
  e.limit = o.limit;
  e.max_tokens = o.max_tokens;
  e.out_dir = eval_dir(p);
  e.progress = o.progress;
  e.provenance = eval::backend_provenance(b);
  std::unique_ptr<llm::Backend> backend = llm::make_backend(b);
  const eval::EvalResult r = eval::run_eval(*backend, e);
  json acc = json::object();
  for (const auto& [name, res] : r.summary["results"].items())
    acc[name] = res.value("accuracy", 0.0);
  return {{"accuracy", acc}};
}

json run_stage(const SweepOptions& o, const SweepPoint& p, Stage s) {
  fs::create_directories(p.dir);
  switch (s) {
    case Stage::Assemble:
      return run_assemble(o, p);
    case Stage::Train:
      return run_train(o, p);
    case Stage::Eval:
      return run_eval_stage(o, p);
  }
  return json();
}

bool point_finished(const SweepPoint& p) {
  const json st = read_stages(p.dir);
  for (Stage s : kStages)
    if (!stage_done(st, stage_name(s))) return false;
  return true;
}

std::string train_flags(const train::TrainOptions& t) {
  std::string f = t.init == "random" ? fmt::format("--init random --config {} --tokenizer {}",
                                                   t.config, t.tokenizer.string())
                                     : fmt::format("--model {}", t.model.string());
  f += t.max_steps > 0 ? fmt::format(" --max-steps {}", t.max_steps)
                       : fmt::format(" --epochs {}", t.epochs);
  f += fmt::format(" --lr {} --global-batch {} --micro-batch {} --max-len {} --seed {}", t.lr,
                   t.global_batch, t.micro_batch, t.max_len, t.seed);
  if (t.save_steps > 0) f += fmt::format(" --save-steps {}", t.save_steps);
  if (t.lora) f += fmt::format(" --lora --lora-r {}", t.lora_config.r);
  if (t.bf16) f += " --precision bf16";
  return f;
}

}  // namespace

std::vector<double> parse_scales(std::string_view list) {
  std::vector<double> out;
  for (const auto& v : text::split(list, ',')) {
    const std::string t(text::trim(v));
    std::size_t used = 0;
    double x = 0;
    try {
      x = std::stod(t, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (t.empty() || used != t.size()) fail("--scales '{}': '{}' is not a number", list, v);
    out.push_back(x);
  }
  return out;
}

std::vector<SweepPoint> sweep_points(const SweepOptions& o) {
  if (o.scales.empty()) fail("sweep: --scales is needed (e.g. 0.01,0.02,0.04)");
  std::vector<SweepPoint> points;
  std::set<std::string> names;
  for (double s : o.scales) {
    if (!(s > 0)) fail("sweep: --scales: {} is not a positive number", s);
    SweepPoint p;
    p.scale = s;
    p.name = fmt::format("scale-{}", s);
    if (!names.insert(p.name).second) fail("sweep: --scales lists {} twice", s);
    p.dir = o.out / p.name;
    for (const auto& [t, n] : bootstrap::parse_targets(s, o.targets)) p.target_records += n;
    points.push_back(std::move(p));
  }
  return points;
}

json sweep_settings(const SweepOptions& o) {
  json boot = json::array();
  for (const auto& b : o.bootstrap) boot.push_back(abs_path(b));
  const train::TrainOptions& t = o.train;
  return {{"bootstrap", boot},
          {"scales", o.scales},
          {"targets", o.targets},
          {"contamination_check", o.contamination_check},
          {"test_gsm8k", abs_path(o.test_gsm8k)},
          {"test_math", abs_path(o.test_math)},
          {"assemble_seed", o.assemble_seed},
          {"train",
           {{"init", t.init},
            {"model", abs_path(t.model)},
            {"config", t.config},
            {"tokenizer", abs_path(t.tokenizer)},
            {"arch", t.arch},
            {"lr", t.lr},
            {"epochs", t.epochs},
            {"max_steps", t.max_steps},
            {"global_batch", t.global_batch},
            {"micro_batch", t.micro_batch},
            {"max_len", t.max_len},
            {"warmup_ratio", t.warmup_ratio},
            {"weight_decay", t.weight_decay},
            {"seed", t.seed},
            {"bf16", t.bf16},
            {"packing", t.packing},
            {"lora", t.lora},
            {"lora_r", t.lora_config.r},
            {"query_field", t.query_field},
            {"response_field", t.response_field}}},
          {"eval",
           {{"benchmarks", o.benchmarks},
            {"data", o.eval_data},
            {"limit", o.limit},
            {"max_tokens", o.max_tokens},
            {"prompt", o.prompt},
            {"dtype", o.backend.dtype}}}};
}

std::string format_sweep_plan(const SweepOptions& o) {
  const std::vector<SweepPoint> points = sweep_points(o);
  std::string boot;
  for (const auto& b : o.bootstrap) boot += (boot.empty() ? "" : " ") + b.string();
  std::string out =
      fmt::format("sweep {}: {} points from {}{}\n\n", o.out.string(), points.size(), boot,
                  o.shard.whole() ? std::string()
                                  : fmt::format(" (shard {}/{})", o.shard.index, o.shard.count));
  out +=
      "| point | scale | target records | assemble | train | eval |\n|---|---:|---:|---|---|---|\n";
  bool all = true;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const SweepPoint& p = points[i];
    const json st = read_stages(p.dir);
    out += fmt::format("| {} | {} | {} |", p.name, p.scale, p.target_records);
    for (Stage s : kStages) {
      const bool done = stage_done(st, stage_name(s));
      all &= done;
      out += done ? " done |" : o.shard.owns(i) ? " to run |" : " other shard |";
    }
    out += "\n";
  }
  out += fmt::format("\nreport: {} ({})\n", (o.out / "report.html").string(),
                     all ? "every point has finished" : "written when every point has finished");
  out += "\nEach stage runs, in this process, what these commands would:\n";
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (!o.shard.owns(i)) continue;
    const SweepPoint& p = points[i];
    out += fmt::format("  metamath assemble {} --scale {} --seed {}{} --out {}\n", boot, p.scale,
                       o.assemble_seed, o.contamination_check ? "" : " --no-contamination-check",
                       data_file(p).string());
    out += fmt::format("  metamath train --data {} --out {} {}\n", data_file(p).string(),
                       model_dir(p).string(), train_flags(o.train));
    out += fmt::format("  metamath eval --backend local --model {} -b {}{}{} --out {}\n",
                       model_dir(p).string(), o.benchmarks,
                       o.limit ? fmt::format(" --limit {}", o.limit) : std::string(),
                       o.max_tokens ? fmt::format(" --max-tokens {}", o.max_tokens) : std::string(),
                       eval_dir(p).string());
  }
  out += fmt::format("  metamath report {} --out {}\n", o.out.string(),
                     (o.out / "report.html").string());
  return out;
}

SweepResult run_sweep(const SweepOptions& o) {
  if (o.out.empty()) fail("sweep: --out FOLDER is needed");
  if (o.bootstrap.empty()) fail("sweep: no bootstrap output given");
  const std::vector<SweepPoint> points = sweep_points(o);
  open_sweep_folder(o);
  SweepLog journal(o.out);
  SweepResult r;
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (!o.shard.owns(i)) continue;
    const SweepPoint& p = points[i];
    for (Stage s : kStages) {
      const std::string name = stage_name(s);
      if (stage_done(read_stages(p.dir), name)) {
        journal.event(p.name, name, "skip");
        ++r.skipped;
        continue;
      }
      log::info("sweep {}: {}", p.name, name);
      journal.event(p.name, name, "start");
      json info = run_stage(o, p, s);
      mark_done(p.dir, name, std::move(info));
      journal.event(p.name, name, "done");
      ++r.ran;
      if (o.stop_after_stages > 0 && r.ran >= static_cast<std::size_t>(o.stop_after_stages)) {
        r.stopped = true;
        return r;
      }
    }
  }
  r.report = o.out / "report.html";
  for (const SweepPoint& p : points)
    if (!point_finished(p)) {
      log::info("sweep: this shard is done; the report waits for the other points");
      return r;
    }
  const json top = read_stages(o.out);
  if (stage_done(top, "report") && fs::exists(r.report)) {
    journal.event("", "report", "skip");
    ++r.skipped;
    return r;
  }
  journal.event("", "report", "start");
  ReportOptions ro;
  ro.inputs = {o.out};
  for (const auto& b : o.bootstrap)
    if (fs::is_directory(b)) ro.inputs.push_back(b);
  ro.out = r.report;
  ro.title = o.title;
  const ReportResult rep = write_report(ro);
  mark_done(o.out, "report", {{"charts", rep.charts.size()}});
  journal.event("", "report", "done");
  r.report_written = true;
  ++r.ran;
  return r;
}

}  // namespace metamath::analysis
