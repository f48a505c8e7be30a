#include "analysis/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <set>

#include "analysis/report_svg.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/text.h"
#include "eval/metrics.h"
#include "train/sft_data.h"

namespace metamath::analysis {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Finding and reading runs

namespace {

constexpr int kMaxDepth = 4;

std::string run_label(const fs::path& dir, const fs::path& root) {
  fs::path rel = dir.lexically_relative(root);
  std::vector<std::string> parts;
  for (const auto& p : rel)
    if (p != "." && !p.empty()) parts.push_back(p.string());
  static const std::set<std::string> generic = {"eval",      "model", "train",
                                                "diversity", "ppl",   "sft"};
  if (parts.size() > 1 && generic.count(parts.back())) parts.pop_back();
  if (parts.empty()) {
    fs::path r = fs::absolute(root).lexically_normal();
    if (r.filename().empty()) r = r.parent_path();
    return r.filename().string();
  }
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : "/") + p;
  return s;
}

// The question's words of a sample row: its question_words, else the prompt with the template's
// fixed text taken away.
int question_words(const json& row, const std::string& tmpl) {
  if (auto it = row.find("question_words"); it != row.end() && it->is_number_integer())
    return it->get<int>();
  std::string prompt;
  if (auto it = row.find("prompt"); it != row.end() && it->is_string()) {
    prompt = it->get<std::string>();
  } else if (auto m = row.find("messages"); m != row.end() && m->is_array()) {
    for (const json& msg : *m)
      if (msg.value("role", std::string()) == "user") prompt += msg.value("content", std::string());
  } else {
    return -1;
  }
  const std::size_t at = tmpl.find("{question}");
  if (at != std::string::npos) {
    const std::string pre = tmpl.substr(0, at), post = tmpl.substr(at + 10);
    if (text::starts_with(prompt, pre) && text::ends_with(prompt, post) &&
        prompt.size() >= pre.size() + post.size())
      return static_cast<int>(text::word_count(
          std::string_view(prompt).substr(pre.size(), prompt.size() - pre.size() - post.size())));
  }
  return std::max(
      0, static_cast<int>(text::word_count(prompt)) -
             static_cast<int>(text::word_count(text::replace_all(tmpl, "{question}", ""))));
}

// Problems of one benchmark from its samples file: per id, the fraction of samples correct.
std::vector<EvalRunData::Problem> read_problems(const fs::path& file, const std::string& tmpl) {
  std::vector<EvalRunData::Problem> out;
  std::map<std::string, std::size_t> at;
  std::map<std::string, int> samples;
  JsonlOptions jo;
  jo.skip_bad = true;  // a torn last line of a killed run
  JsonlReader reader(file, jo);
  json row;
  while (reader.next(row)) {
    const std::string id = row.value("id", std::string());
    if (id.empty()) continue;
    auto [it, fresh] = at.emplace(id, out.size());
    if (fresh) {
      EvalRunData::Problem p;
      p.id = id;
      p.subject = row.value("subject", std::string());
      p.level = row.value("level", std::string());
      p.words = question_words(row, tmpl);
      out.push_back(std::move(p));
    }
    out[it->second].correct += row.value("correct", false) ? 1 : 0;
    ++samples[id];
  }
  for (auto& p : out) p.correct /= std::max(1, samples[p.id]);
  return out;
}

EvalRunData read_eval_run(const fs::path& summary_file, const std::string& label) {
  EvalRunData r;
  r.label = label;
  r.dir = summary_file.parent_path();
  r.summary = read_json_file(summary_file);
  r.provenance = json::object();
  if (fs::exists(r.dir / "run.json"))
    r.provenance = read_json_file(r.dir / "run.json").value("provenance", json::object());
  std::map<std::string, std::string> templates;
  if (r.summary.contains("settings") && r.summary["settings"].contains("benchmarks"))
    for (const json& b : r.summary["settings"]["benchmarks"])
      templates[b.value("name", std::string())] = b.value("template", std::string());
  for (const auto& [name, res] : r.summary["results"].items()) {
    const fs::path f = r.dir / res.value("samples_file", name + ".samples.jsonl");
    if (fs::exists(f)) r.problems[name] = read_problems(f, templates[name]);
  }
  return r;
}

bool is_eval_summary(const json& j) {
  return j.is_object() && j.contains("results") && j["results"].is_object() &&
         j.contains("settings");
}

struct Collector {
  RunSet set;
  std::set<fs::path> seen_train;

  void train_folder(const fs::path& dir, const std::string& label) {
    const fs::path canon = fs::weakly_canonical(dir);
    if (!seen_train.insert(canon).second) return;
    TrainRunData t;
    t.label = label;
    t.dir = dir;
    if (fs::exists(dir / "train_run.json")) t.record = read_json_file(dir / "train_run.json");
    if (fs::exists(dir / "train_log.jsonl")) {
      JsonlOptions jo;
      jo.skip_bad = true;
      t.log = read_jsonl(dir / "train_log.jsonl", jo);
    }
    set.trains.push_back(std::move(t));
  }

  // One file; returns whether it was recognised.
  bool file(const fs::path& f, const std::string& label) {
    const std::string name = f.filename().string();
    if (name == "summary.json") {
      json j = read_json_file(f);
      if (!is_eval_summary(j)) return false;
      set.evals.push_back(read_eval_run(f, label));
      return true;
    }
    if (name == "train_run.json" || name == "train_log.jsonl") {
      train_folder(f.parent_path(), label);
      return true;
    }
    auto labeled = [&](std::vector<LabeledJson>& into, const json& j) {
      into.push_back({label, f.parent_path(), j});
      return true;
    };
    if (name == "stats.json") {
      json j = read_json_file(f);
      return j.contains("methods") && j["methods"].is_object() && labeled(set.bootstraps, j);
    }
    if (name == "assemble.json") return labeled(set.assembles, read_json_file(f));
    if (name == "diversity.json") {
      json j = read_json_file(f);
      return j.value("kind", std::string()) == "diversity" && labeled(set.diversities, j);
    }
    if (name == "ppl.json") {
      json j = read_json_file(f);
      return j.value("kind", std::string()) == "ppl" && labeled(set.ppls, j);
    }
    return false;
  }

  void folder(const fs::path& dir, const fs::path& root, int depth) {
    std::vector<fs::path> files, dirs;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.empty() || name[0] == '.') continue;
      if (e.is_directory()) {
        if (!text::starts_with(name, "checkpoint-")) dirs.push_back(e.path());
      } else {
        files.push_back(e.path());
      }
    }
    std::sort(files.begin(), files.end());
    std::sort(dirs.begin(), dirs.end());
    const std::string label = run_label(dir, root);
    for (const auto& f : files) file(f, label);
    if (depth < kMaxDepth)
      for (const auto& d : dirs) folder(d, root, depth + 1);
  }
};

}  // namespace

RunSet collect_runs(const std::vector<fs::path>& inputs) {
  if (inputs.empty()) fail("report: no run folders given");
  Collector c;
  for (const fs::path& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      c.folder(in, in, 0);
    } else if (fs::is_regular_file(in, ec)) {
      if (!c.file(in, run_label(in.parent_path(), in.parent_path())))
        fail(
            "{}: not a file metamath report reads (summary.json, train_run.json, "
            "train_log.jsonl, stats.json, assemble.json, diversity.json, ppl.json)",
            in.string());
    } else {
      fail("{}: no such file or folder", in.string());
    }
  }
  if (c.set.count() == 0)
    fail(
        "report: no runs found under {} (looked for eval summary.json, train_run.json / "
        "train_log.jsonl, bootstrap stats.json, assemble.json, diversity.json, ppl.json)",
        inputs.front().string());
  return std::move(c.set);
}

// ---------------------------------------------------------------------------------------------
// Charts

namespace {

struct Chart {
  std::string id, title, section, svg, legend, note;
  std::size_t marks = 0, intervals = 0;
};

struct Page {
  std::vector<Chart> charts;
  std::vector<std::string> missing;
  json data = json::object();  // embedded for the reader
};

std::string pp(double v) { return fmt::format("{:+.2f}", 100 * v); }

svg::Axis axis(std::string label, bool percent = false, bool log = false) {
  svg::Axis a;
  a.label = std::move(label);
  a.percent = percent;
  a.log = log;
  return a;
}

template <typename C>
void add_chart(Page& page, const C& spec, std::string section,
               std::vector<std::string> legend_names, std::string note) {
  Chart c;
  c.id = spec.id;
  c.title = spec.title;
  c.section = std::move(section);
  c.svg = svg::render(spec);
  c.legend = legend_names.empty() ? std::string() : svg::legend(legend_names);
  c.note = std::move(note);
  auto count = [&](const char* attr) {
    const std::string key = std::string(attr) + "=\"";
    const std::size_t at = c.svg.find(key) + key.size();
    return static_cast<std::size_t>(std::stoul(c.svg.substr(at)));
  };
  c.marks = count("data-marks");
  c.intervals = count("data-intervals");
  page.charts.push_back(std::move(c));
}

// Benchmarks in first-seen order over the runs.
std::vector<std::string> benchmark_order(const std::vector<EvalRunData>& evals) {
  std::vector<std::string> out;
  for (const auto& r : evals) {
    std::vector<std::string> names;
    if (r.summary["settings"].contains("benchmarks"))
      for (const json& b : r.summary["settings"]["benchmarks"])
        names.push_back(b.value("name", std::string()));
    for (const auto& [k, v] : r.summary["results"].items()) names.push_back(k);
    for (const auto& n : names)
      if (!n.empty() && std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

std::size_t baseline_index(const std::vector<EvalRunData>& evals, const std::string& label) {
  if (label.empty()) return 0;
  for (std::size_t i = 0; i < evals.size(); ++i)
    if (evals[i].label == label) return i;
  std::string known;
  for (const auto& r : evals) known += (known.empty() ? "" : ", ") + r.label;
  fail("--baseline {}: no eval run has that label (runs: {})", label, known);
}

// Paired bootstrap of b - a over the problems of a benchmark both runs have, restricted by `keep`.
std::optional<eval::BootstrapCI> paired_ci(
    const EvalRunData& a, const EvalRunData& b, const std::string& bench,
    const std::function<bool(const EvalRunData::Problem&)>& keep, const eval::CompareOptions& co) {
  auto pa = a.problems.find(bench), pb = b.problems.find(bench);
  if (pa == a.problems.end() || pb == b.problems.end()) return std::nullopt;
  std::map<std::string, double> in_b;
  for (const auto& p : pb->second) in_b[p.id] = p.correct;
  std::vector<double> va, vb;
  for (const auto& p : pa->second) {
    auto it = in_b.find(p.id);
    if (it == in_b.end() || !keep(p)) continue;
    va.push_back(p.correct);
    vb.push_back(it->second);
  }
  if (va.empty()) return std::nullopt;
  return eval::paired_bootstrap(va, vb, co.rounds, co.level, co.seed);
}

std::string ci_tooltip(const std::string& base_label, const eval::BootstrapCI& ci, double level) {
  return fmt::format("Δ vs {}: {} pp, {:.0f}% CI [{}, {}] pp over {} paired problems{}", base_label,
                     pp(ci.mean), 100 * level, pp(ci.lo), pp(ci.hi), ci.n,
                     ci.lo > 0 || ci.hi < 0 ? " (significant)" : "");
}

// Accuracy per benchmark, with eval --compare's intervals against the baseline.
void chart_benchmarks(Page& page, const RunSet& rs, const ReportOptions& o) {
  if (rs.evals.empty()) {
    page.missing.push_back("Accuracy per benchmark: no eval run (summary.json) given");
    return;
  }
  const std::size_t base = baseline_index(rs.evals, o.baseline);
  const EvalRunData& a = rs.evals[base];
  svg::BarChart c;
  c.id = "accuracy-benchmark";
  c.title = "Accuracy per benchmark";
  c.categories = benchmark_order(rs.evals);
  c.y = axis("accuracy (pass@1)", true);
  json rows = json::array();
  for (const auto& r : rs.evals) {
    c.series.push_back(r.label);
    std::vector<svg::Bar> bars(c.categories.size());
    json table;
    if (&r != &a)
      table = eval::compare_summaries(a.summary, r.summary, a.label, r.label, o.compare).table;
    for (std::size_t i = 0; i < c.categories.size(); ++i) {
      const std::string& b = c.categories[i];
      if (!r.summary["results"].contains(b)) continue;
      const json& res = r.summary["results"][b];
      svg::Bar& bar = bars[i];
      bar.present = true;
      bar.value = res.value("accuracy", 0.0);
      bar.tooltip =
          fmt::format("{} / {} samples correct", res.value("correct", 0), res.value("samples", 0));
      json row = {{"run", r.label}, {"benchmark", b}, {"accuracy", bar.value}};
      for (const json& t : table) {
        if (t.value("benchmark", std::string()) != b || t.contains("subject") ||
            t.contains("level") || !t.contains("ci"))
          continue;
        const double acc_a = t["a"].get<double>();
        eval::BootstrapCI ci;
        ci.mean = t["paired_delta"].get<double>();
        ci.lo = t["ci"][0].get<double>();
        ci.hi = t["ci"][1].get<double>();
        ci.n = t["paired"].get<std::size_t>();
        bar.lo = std::clamp(acc_a + ci.lo, 0.0, 1.0);
        bar.hi = std::clamp(acc_a + ci.hi, 0.0, 1.0);
        bar.tooltip += "\n" + ci_tooltip(a.label, ci, o.compare.level);
        row["delta"] = ci.mean;
        row["ci"] = {ci.lo, ci.hi};
      }
      rows.push_back(row);
    }
    c.bars.push_back(std::move(bars));
  }
  page.data["accuracy"] = rows;
  add_chart(page, c, "Accuracy", c.series,
            fmt::format("Bars: pass@1 of each run. Whiskers: the {:.0f}% paired-bootstrap interval "
                        "({} resamples, as <code>metamath eval --compare</code>) of the run's "
                        "difference to the baseline <b>{}</b>, drawn at the baseline's accuracy + "
                        "[lo, hi]: a whisker that misses the baseline's bar top is a significant "
                        "difference.",
                        100 * o.compare.level, o.compare.rounds, svg::escape(a.label)));
}

// Accuracy per MATH subject or level ("subject" / "level") of each benchmark with a breakdown.
void chart_breakdown(Page& page, const RunSet& rs, const ReportOptions& o, const char* key) {
  const std::string field = std::string("by_") + key;
  bool any = false;
  if (rs.evals.empty()) return;
  const std::size_t base = baseline_index(rs.evals, o.baseline);
  const EvalRunData& a = rs.evals[base];
  for (const std::string& bench : benchmark_order(rs.evals)) {
    svg::BarChart c;
    c.id = fmt::format("accuracy-{}-{}", key, bench);
    c.title = fmt::format("{} accuracy per {}", bench, key);
    c.y = axis("accuracy (pass@1)", true);
    for (const auto& r : rs.evals) {
      const json& res = r.summary["results"];
      if (!res.contains(bench) || !res[bench].contains(field)) continue;
      for (const auto& [k, v] : res[bench][field].items())
        if (std::find(c.categories.begin(), c.categories.end(), k) == c.categories.end())
          c.categories.push_back(k);
    }
    if (c.categories.empty()) continue;
    std::sort(c.categories.begin(), c.categories.end());
    for (const auto& r : rs.evals) {
      c.series.push_back(r.label);
      std::vector<svg::Bar> bars(c.categories.size());
      const json& res = r.summary["results"];
      for (std::size_t i = 0; i < c.categories.size() && res.contains(bench); ++i) {
        const std::string& cat = c.categories[i];
        if (!res[bench].contains(field) || !res[bench][field].contains(cat)) continue;
        const json& v = res[bench][field][cat];
        svg::Bar& bar = bars[i];
        bar.present = true;
        bar.value = v.value("accuracy", 0.0);
        bar.tooltip = fmt::format("{} problems", v.value("problems", 0));
        if (&r == &a) continue;
        auto ci = paired_ci(
            a, r, bench,
            [&](const EvalRunData::Problem& p) {
              return (std::string(key) == "subject" ? p.subject : p.level) == cat;
            },
            o.compare);
        if (!ci) continue;
        // The subset's baseline accuracy from the same paired problems.
        double acc_a = 0;
        if (a.summary["results"].contains(bench) && a.summary["results"][bench].contains(field) &&
            a.summary["results"][bench][field].contains(cat))
          acc_a = a.summary["results"][bench][field][cat].value("accuracy", 0.0);
        bar.lo = std::clamp(acc_a + ci->lo, 0.0, 1.0);
        bar.hi = std::clamp(acc_a + ci->hi, 0.0, 1.0);
        bar.tooltip += "\n" + ci_tooltip(a.label, *ci, o.compare.level);
      }
      c.bars.push_back(std::move(bars));
    }
    any = true;
    add_chart(page, c, "Accuracy", c.series,
              fmt::format("Per {} of {}; whiskers as above (paired over the {}'s problems, from "
                          "the samples files).",
                          key, bench, key));
  }
  if (!any)
    page.missing.push_back(fmt::format(
        "Accuracy per {}: no eval run has a MATH-style benchmark (math, math500) with a {} "
        "breakdown",
        key, key));
}

// The training record of an eval run: run.json's provenance.training (eval copies it from the
// model's train_run.json).
const json* training_of(const EvalRunData& r) {
  const json& p = r.provenance;
  if (p.is_object() && p.contains("training") && p["training"].is_object()) return &p["training"];
  return nullptr;
}

std::optional<double> training_size(const EvalRunData& r) {
  const json* t = training_of(r);
  if (!t || !t->contains("data")) return std::nullopt;
  const json& d = (*t)["data"];
  if (d.contains("examples") && d["examples"].is_number()) return d["examples"].get<double>();
  return std::nullopt;
}

// The diversity run measured on this eval run's training data (same path, or same FNV-1a hash).
const LabeledJson* diversity_of(const EvalRunData& r, const RunSet& rs) {
  const json* t = training_of(r);
  if (!t || !t->contains("data")) return nullptr;
  const std::string path = (*t)["data"].value("path", std::string());
  std::string fnv;
  for (const auto& d : rs.diversities) {
    if (!d.data.contains("data") || !d.data["data"].contains("new")) continue;
    const json& nw = d.data["data"]["new"];
    if (!path.empty() && nw.value("path", std::string()) == path) return &d;
    if (fnv.empty() && !path.empty() && fs::exists(path))
      fnv = fmt::format("{:016x}", train::hash_file(path));
    if (!fnv.empty() && nw.value("fnv1a64", std::string()) == fnv) return &d;
  }
  return nullptr;
}

// Accuracy against a per-run number (training-set size, diversity gain): one series per
// benchmark, one point per eval run that has the number.
void chart_accuracy_against(Page& page, const RunSet& rs, const std::string& id,
                            const std::string& title, const std::string& x_label,
                            const std::function<std::optional<double>(const EvalRunData&)>& x_of,
                            const std::string& why_missing, const std::string& note) {
  svg::LineChart c;
  c.id = id;
  c.title = title;
  c.x.label = x_label;
  c.y = axis("accuracy (pass@1)", true);
  std::vector<double> xs;
  json rows = json::array();
  for (const std::string& bench : benchmark_order(rs.evals)) {
    svg::LineSeries s;
    s.name = bench;
    for (const auto& r : rs.evals) {
      auto x = x_of(r);
      if (!x || !r.summary["results"].contains(bench)) continue;
      const double acc = r.summary["results"][bench].value("accuracy", 0.0);
      s.points.push_back({*x, acc, "run " + r.label});
      xs.push_back(*x);
      rows.push_back({{"run", r.label}, {"benchmark", bench}, {"x", *x}, {"accuracy", acc}});
    }
    std::stable_sort(s.points.begin(), s.points.end(),
                     [](const auto& p, const auto& q) { return p.x < q.x; });
    if (!s.points.empty()) c.series.push_back(std::move(s));
  }
  if (c.series.empty()) {
    page.missing.push_back(title + ": " + why_missing);
    return;
  }
  const auto [mn, mx] = std::minmax_element(xs.begin(), xs.end());
  c.x.log = *mn > 0 && *mx / *mn >= 8;
  page.data[id] = rows;
  std::vector<std::string> names;
  for (const auto& s : c.series) names.push_back(s.name);
  add_chart(page, c, "Data size and diversity", names, note);
}

// Equal-count buckets of question length per benchmark; one series per run.
void chart_length(Page& page, const RunSet& rs, const ReportOptions& o) {
  bool any = false;
  for (const std::string& bench : benchmark_order(rs.evals)) {
    std::map<std::string, int> words;  // id -> words, over every run
    for (const auto& r : rs.evals)
      if (auto it = r.problems.find(bench); it != r.problems.end())
        for (const auto& p : it->second)
          if (p.words >= 0) words.emplace(p.id, p.words);
    if (words.size() < 2) continue;
    std::vector<int> sorted;
    for (const auto& [id, w] : words) sorted.push_back(w);
    std::sort(sorted.begin(), sorted.end());
    // Upper bounds of equal-count buckets; a tie never straddles two buckets.
    const std::size_t nb = std::min<std::size_t>(std::max(o.length_buckets, 1), sorted.size());
    std::vector<int> upper;
    for (std::size_t k = 1; k <= nb; ++k) {
      const int u = sorted[std::min(sorted.size() - 1, k * sorted.size() / nb - 1)];
      if (upper.empty() || u > upper.back()) upper.push_back(u);
    }
    svg::LineChart c;
    c.id = "accuracy-length-" + bench;
    c.title = bench + " accuracy by question length";
    c.x.label = "question length (words), equal-count buckets";
    c.y = axis("accuracy (pass@1)", true);
    std::vector<std::size_t> counts(upper.size(), 0);
    for (int w : sorted)
      ++counts[static_cast<std::size_t>(std::lower_bound(upper.begin(), upper.end(), w) -
                                        upper.begin())];
    int lower = sorted.front();
    for (std::size_t k = 0; k < upper.size(); ++k) {
      c.x_categories.push_back(fmt::format("{}–{} ({})", lower, upper[k], counts[k]));
      lower = upper[k] + 1;
    }
    for (const auto& r : rs.evals) {
      auto it = r.problems.find(bench);
      if (it == r.problems.end()) continue;
      std::vector<double> sum(upper.size(), 0);
      std::vector<std::size_t> n(upper.size(), 0);
      for (const auto& p : it->second) {
        if (p.words < 0) continue;
        const auto k = static_cast<std::size_t>(
            std::lower_bound(upper.begin(), upper.end(), p.words) - upper.begin());
        sum[k] += p.correct;
        ++n[k];
      }
      svg::LineSeries s;
      s.name = r.label;
      for (std::size_t k = 0; k < upper.size(); ++k)
        if (n[k] > 0)
          s.points.push_back({static_cast<double>(k), sum[k] / static_cast<double>(n[k]),
                              fmt::format("{} problems", n[k])});
      if (!s.points.empty()) c.series.push_back(std::move(s));
    }
    if (c.series.empty()) continue;
    any = true;
    std::vector<std::string> names;
    for (const auto& s : c.series) names.push_back(s.name);
    add_chart(page, c, "Error analysis", names,
              "The paper's error analysis: test questions bucketed by length (words; buckets hold "
              "about the same number of questions, counted in brackets), accuracy per bucket.");
  }
  if (!any)
    page.missing.push_back(
        "Accuracy by question length: no eval run with its samples files (BENCH.samples.jsonl) "
        "beside summary.json");
}

void chart_yield(Page& page, const RunSet& rs) {
  svg::BarChart c;
  c.id = "bootstrap-yield";
  c.title = "Bootstrap yield per method";
  c.y = axis("yield (kept / samples)", true);
  for (const auto& b : rs.bootstraps)
    for (const auto& [m, v] : b.data["methods"].items())
      if (v.value("samples", 0) > 0 &&
          std::find(c.categories.begin(), c.categories.end(), m) == c.categories.end())
        c.categories.push_back(m);
  if (c.categories.empty()) {
    page.missing.push_back("Bootstrap yield: no bootstrap stats.json with checked samples given");
    return;
  }
  for (const auto& b : rs.bootstraps) {
    c.series.push_back(b.label);
    std::vector<svg::Bar> bars(c.categories.size());
    for (std::size_t i = 0; i < c.categories.size(); ++i) {
      const json& m = b.data["methods"].value(c.categories[i], json::object());
      if (m.value("samples", 0) <= 0) continue;
      bars[i].present = true;
      bars[i].value = m.value("yield", 0.0);
      bars[i].tooltip = fmt::format("{} kept of {} samples; {} requests", m.value("kept", 0),
                                    m.value("samples", 0), m.value("jobs", 0));
    }
    c.bars.push_back(std::move(bars));
  }
  add_chart(page, c, "Data", c.series,
            "Share of the checked solve samples that became records, per augmentation method "
            "(from each bootstrap run's stats.json).");
}

void chart_composition(Page& page, const RunSet& rs) {
  svg::StackedChart c;
  c.id = "dataset-composition";
  c.title = "Dataset composition per record type";
  c.x.label = "records";
  std::set<std::string> seen_data;
  auto add_row = [&](const std::string& row, const json& types, const char* field) {
    std::vector<svg::Segment> segs;
    for (const auto& [t, v] : types.items()) {
      const double n = field ? v.value(field, 0.0) : v.get<double>();
      if (n <= 0) continue;
      segs.push_back({t, n});
      if (std::find(c.parts.begin(), c.parts.end(), t) == c.parts.end()) c.parts.push_back(t);
    }
    if (segs.empty()) return;
    c.rows.push_back(row);
    c.segments.push_back(std::move(segs));
  };
  for (const auto& a : rs.assembles) {
    if (!a.data.contains("types")) continue;
    json types = json::object();
    for (const auto& [t, v] : a.data["types"].items())
      if (!t.empty() && t[0] != '?') types[t] = v;
    add_row("assembled: " + a.label, types, "kept");
    if (a.data.contains("sha256")) seen_data.insert(a.data["sha256"].get<std::string>());
  }
  for (const auto& t : rs.trains) {
    if (!t.record.is_object() || !t.record.contains("data")) continue;
    const json& d = t.record["data"];
    if (seen_data.count(d.value("sha256", std::string()))) continue;  // shown as assembled
    if (!seen_data.insert(d.value("sha256", std::string("?") + t.label)).second) continue;
    add_row("trained: " + t.label, d.value("types", json::object()), nullptr);
  }
  if (c.rows.empty()) {
    page.missing.push_back(
        "Dataset composition: no assemble.json, and no train_run.json whose data has a \"type\" "
        "field");
    return;
  }
  std::sort(c.parts.begin(), c.parts.end());
  add_chart(page, c, "Data", c.parts,
            "Records per type in each assembled mixture (assemble.json) and in each training "
            "set (train_run.json, when not the same file).");
}

void chart_training(Page& page, const RunSet& rs, const char* key, const std::string& id,
                    const std::string& title, const std::string& y_label) {
  svg::LineChart c;
  c.id = id;
  c.title = title;
  c.markers = false;
  c.x.label = "optimizer step";
  c.y.label = y_label;
  for (const auto& t : rs.trains) {
    svg::LineSeries s;
    s.name = t.label;
    for (const json& row : t.log)
      if (row.contains(key) && row[key].is_number() && row.contains("step"))
        s.points.push_back({row["step"].get<double>(), row[key].get<double>(), ""});
    if (!s.points.empty()) c.series.push_back(std::move(s));
  }
  if (c.series.empty()) {
    page.missing.push_back(title + ": no train_log.jsonl given");
    return;
  }
  std::vector<std::string> names;
  for (const auto& s : c.series) names.push_back(s.name);
  add_chart(page, c, "Training", names, "");
}

void chart_ppl(Page& page, const RunSet& rs) {
  svg::BarChart c;
  c.id = "ppl-type";
  c.title = "Perplexity per record type";
  c.y = axis("perplexity (token-weighted)", false);
  for (const auto& p : rs.ppls) {
    const json by_type = p.data.value("by_type", json::object());
    for (const auto& [t, v] : by_type.items())
      if (std::find(c.categories.begin(), c.categories.end(), t) == c.categories.end())
        c.categories.push_back(t);
  }
  std::sort(c.categories.begin(), c.categories.end());
  c.categories.push_back("overall");
  if (rs.ppls.empty()) {
    page.missing.push_back("Perplexity per type: no ppl.json (metamath ppl) given");
    return;
  }
  for (const auto& p : rs.ppls) {
    c.series.push_back(p.label);
    std::vector<svg::Bar> bars(c.categories.size());
    for (std::size_t i = 0; i < c.categories.size(); ++i) {
      const json& g = c.categories[i] == "overall"
                          ? p.data.value("overall", json::object())
                          : p.data.value("by_type", json::object()).value(c.categories[i], json());
      if (!g.is_object() || !g.contains("ppl") || !g["ppl"].is_number()) continue;
      bars[i].present = true;
      bars[i].value = g["ppl"].get<double>();
      bars[i].tooltip =
          fmt::format("{} examples, {} tokens, mean NLL {:.4f}", g.value("examples", 0),
                      g.value("tokens", 0), g.value("mean_nll", 0.0));
    }
    c.bars.push_back(std::move(bars));
  }
  add_chart(page, c, "Data", c.series,
            "exp(mean NLL) of the responses under the model, over the tokens metamath train "
            "learns (metamath ppl): lower is easier to learn.");
}

void chart_diversity(Page& page, const RunSet& rs) {
  if (rs.diversities.empty()) {
    page.missing.push_back("Diversity gain per type: no diversity.json (metamath diversity) given");
    return;
  }
  svg::BarChart c;
  c.id = "diversity-type";
  c.title = "Diversity gain per record type";
  c.y = axis("diversity gain (mean squared L2)", false);
  for (const auto& d : rs.diversities) {
    const json by_type = d.data.value("by_type", json::object());
    for (const auto& [t, v] : by_type.items())
      if (std::find(c.categories.begin(), c.categories.end(), t) == c.categories.end())
        c.categories.push_back(t);
  }
  std::sort(c.categories.begin(), c.categories.end());
  c.categories.push_back("overall");
  svg::LineChart curve;
  curve.id = "diversity-curve";
  curve.title = "Diversity gain of the first n new items";
  curve.x = axis("n (new items, file order)", false, true);
  curve.y.label = "diversity gain";
  for (const auto& d : rs.diversities) {
    c.series.push_back(d.label);
    std::vector<svg::Bar> bars(c.categories.size());
    for (std::size_t i = 0; i < c.categories.size(); ++i) {
      const json g =
          c.categories[i] == "overall"
              ? json{{"gain", d.data.value("gain", 0.0)}, {"items", d.data.value("items", 0)}}
              : d.data.value("by_type", json::object()).value(c.categories[i], json());
      if (!g.is_object() || !g.contains("gain")) continue;
      bars[i].present = true;
      bars[i].value = g["gain"].get<double>();
      bars[i].tooltip = fmt::format("{} items", g.value("items", 0));
    }
    c.bars.push_back(std::move(bars));
    svg::LineSeries s;
    s.name = d.label;
    const json points = d.data.value("curve", json::array());
    for (const json& p : points)
      if (p.value("n", 0.0) > 0)
        s.points.push_back({p["n"].get<double>(), p["gain"].get<double>(), ""});
    if (!s.points.empty()) curve.series.push_back(std::move(s));
  }
  add_chart(page, c, "Data", c.series,
            "The paper's diversity gain of each new set against its base set, per type.");
  if (!curve.series.empty()) {
    std::vector<std::string> names;
    for (const auto& s : curve.series) names.push_back(s.name);
    add_chart(page, curve, "Data", names, "");
  }
}

// ---------------------------------------------------------------------------------------------
// The page

std::string runs_table(const RunSet& rs) {
  std::string t =
      "<table><tr><th>run</th><th>kind</th><th>model / backend</th><th>training set</th>"
      "<th>data sha256</th></tr>\n";
  auto cell = [](const std::string& s) { return "<td>" + svg::escape(s) + "</td>"; };
  for (const auto& r : rs.evals) {
    const json& prov = r.provenance;
    const json backend = prov.value("backend", json::object());
    std::string model = r.summary["settings"].value("model", std::string());
    if (!backend.empty()) model += " (" + backend.value("kind", std::string()) + ")";
    std::string size = "-", sha = "-";
    if (const json* t = training_of(r)) {
      const json d = t->value("data", json::object());
      size = fmt::format("{} examples", d.value("examples", 0));
      sha = d.value("sha256", std::string("-")).substr(0, 16);
    }
    t += "<tr>" + cell(r.label) + cell("eval") + cell(model) + cell(size) + cell(sha) + "</tr>\n";
  }
  for (const auto& r : rs.trains) {
    const json d = r.record.is_object() ? r.record.value("data", json::object()) : json::object();
    const json m = r.record.is_object() ? r.record.value("model", json::object()) : json::object();
    std::string model = m.value("init", std::string()) == "random"
                            ? "random " + m.value("config", std::string())
                            : m.value("path", std::string());
    t += "<tr>" + cell(r.label) + cell("train") + cell(model) +
         cell(d.empty() ? fmt::format("{} steps logged", r.log.size())
                        : fmt::format("{} examples", d.value("examples", 0))) +
         cell(d.value("sha256", std::string("-")).substr(0, 16)) + "</tr>\n";
  }
  auto simple = [&](const std::vector<LabeledJson>& v, const char* kind) {
    for (const auto& r : v)
      t += "<tr>" + cell(r.label) + cell(kind) + cell("") + cell("") + cell("") + "</tr>\n";
  };
  simple(rs.bootstraps, "bootstrap");
  simple(rs.assembles, "assemble");
  simple(rs.diversities, "diversity");
  simple(rs.ppls, "ppl");
  return t + "</table>\n";
}

std::string accuracy_table(const Page& page) {
  if (!page.data.contains("accuracy")) return "";
  std::string t =
      "<h2>Eval results</h2>\n<table><tr><th>run</th><th>benchmark</th><th>accuracy (%)</th><th>Δ "
      "vs baseline "
      "(pp)</th><th>CI of Δ (pp)</th></tr>\n";
  for (const json& r : page.data["accuracy"]) {
    t += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{:.2f}</td>", svg::escape(r["run"].get<std::string>()),
        svg::escape(r["benchmark"].get<std::string>()), 100 * r["accuracy"].get<double>());
    if (r.contains("ci"))
      t += fmt::format("<td>{}</td><td>[{}, {}]</td></tr>\n", pp(r["delta"].get<double>()),
                       pp(r["ci"][0].get<double>()), pp(r["ci"][1].get<double>()));
    else
      t += "<td>-</td><td>-</td></tr>\n";
  }
  return t + "</table>\n";
}

constexpr const char* kStyle = R"(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1440px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#666;margin:0 0 12px}
.grid{display:flex;flex-wrap:wrap;gap:16px}
figure.chart-box{margin:0;padding:10px 12px;border:1px solid #e2e2e2;border-radius:6px;background:#fff;width:640px}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart{display:block;width:100%;height:auto;font-size:11px;fill:#333}
svg.chart .axis-label{font-size:12px;fill:#444}
svg.chart .mark:hover{opacity:.75}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin:2px 0 6px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
.chart-note{color:#555;font-size:12px;margin:6px 0 0}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}ul.missing{color:#666}
)";

std::string json_for_script(const json& j) {
  // "</" would end the <script> element early.
  return text::replace_all(j.dump(), "</", "<\\/");
}

}  // namespace

std::string render_report(const RunSet& rs, const ReportOptions& o, ReportResult* result) {
  Page page;
  chart_benchmarks(page, rs, o);
  chart_breakdown(page, rs, o, "subject");
  chart_breakdown(page, rs, o, "level");
  chart_accuracy_against(
      page, rs, "accuracy-vs-size", "Accuracy against training-set size", "training examples",
      training_size,
      "no eval run whose model has a training record (eval a folder written by metamath train: "
      "its train_run.json is copied into the eval run's provenance)",
      "One point per eval run whose model carries a training record (training examples from "
      "train_run.json, through the eval run's provenance).");
  chart_accuracy_against(
      page, rs, "accuracy-vs-diversity", "Accuracy against diversity gain", "diversity gain",
      [&](const EvalRunData& r) -> std::optional<double> {
        const LabeledJson* d = diversity_of(r, rs);
        if (!d) return std::nullopt;
        return d->data.value("gain", 0.0);
      },
      "no diversity.json whose new set is the training data of an eval run's model",
      "One point per eval run whose training data has a diversity run (matched by the data "
      "file's path or hash).");
  chart_length(page, rs, o);
  chart_yield(page, rs);
  chart_composition(page, rs);
  chart_ppl(page, rs);
  chart_diversity(page, rs);
  chart_training(page, rs, "loss", "train-loss", "Training loss", "loss (mean token NLL)");
  chart_training(page, rs, "lr", "train-lr", "Learning rate", "learning rate");

  std::string body;
  std::string section;
  for (const Chart& c : page.charts) {
    if (c.section != section) {
      if (!section.empty()) body += "</div>\n";
      section = c.section;
      body += "<h2>" + svg::escape(section) + "</h2>\n<div class=\"grid\">\n";
    }
    body += fmt::format(
        "<figure class=\"chart-box\" id=\"fig-{}\"><figcaption>{}</figcaption>\n{}{}{}</figure>\n",
        svg::escape(c.id), svg::escape(c.title), c.legend, c.svg,
        c.note.empty() ? "" : "<p class=\"chart-note\">" + c.note + "</p>\n");
  }
  if (!section.empty()) body += "</div>\n";
  std::string missing;
  for (const auto& m : page.missing) missing += "<li>" + svg::escape(m) + "</li>\n";

  json charts = json::array();
  for (const Chart& c : page.charts)
    charts.push_back(
        {{"id", c.id}, {"title", c.title}, {"marks", c.marks}, {"intervals", c.intervals}});
  page.data["charts"] = charts;
  page.data["missing"] = page.missing;

  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>{0}</title>\n<style>{1}</style>\n</head>\n<body>\n"
      "<!-- Charts are inline SVG written by metamath (src/analysis/report_svg.cpp): nothing to "
      "fetch or run, so the page opens offline and diffs as text. -->\n"
      "<h1>{0}</h1>\n<p class=\"meta\">{2} runs: {3} eval, {4} training, {5} bootstrap, {6} "
      "assembled, {7} diversity, {8} perplexity. Hover a mark for its numbers. Written by "
      "metamath 0.1.0.</p>\n{9}"
      "{10}<h2>Runs</h2>\n{11}{12}"
      "<script type=\"application/json\" id=\"report-data\">{13}</script>\n</body>\n</html>\n",
      svg::escape(o.title), kStyle, rs.count(), rs.evals.size(), rs.trains.size(),
      rs.bootstraps.size(), rs.assembles.size(), rs.diversities.size(), rs.ppls.size(), body,
      accuracy_table(page), runs_table(rs),
      missing.empty() ? "" : "<h2>Not shown</h2>\n<ul class=\"missing\">\n" + missing + "</ul>\n",
      json_for_script(page.data));
  if (result) {
    result->runs = rs.count();
    for (const Chart& c : page.charts)
      result->charts.push_back({c.id, c.title, c.marks, c.intervals});
    result->missing = page.missing;
  }
  return html;
}

ReportResult write_report(const ReportOptions& opts) {
  if (opts.out.empty()) fail("report: --out FILE.html is needed");
  RunSet rs = collect_runs(opts.inputs);
  ReportResult r;
  r.out = opts.out;
  const std::string html = render_report(rs, opts, &r);
  if (opts.out.has_parent_path()) fs::create_directories(opts.out.parent_path());
  write_file_atomic(opts.out, html);
  return r;
}

}  // namespace metamath::analysis
