#include "eval/compare.h"

#include <fmt/format.h>

#include <set>

#include "core/error.h"
#include "core/jsonl.h"
#include "eval/metrics.h"

namespace metamath::eval {
namespace fs = std::filesystem;

namespace {

const json& results_of(const json& s, const std::string& name) {
  if (!s.is_object() || !s.contains("results") || !s["results"].is_object())
    fail(
        "{}: not a metamath eval summary (no \"results\" object); compare summary.json files "
        "written by metamath eval",
        name);
  return s["results"];
}

// Benchmarks in the order of the run's settings, then any others.
std::vector<std::string> bench_order(const json& s) {
  std::vector<std::string> v;
  std::set<std::string> seen;
  if (s.contains("settings") && s["settings"].contains("benchmarks"))
    for (const json& b : s["settings"]["benchmarks"])
      if (b.contains("name") && seen.insert(b["name"].get<std::string>()).second)
        v.push_back(b["name"]);
  for (const auto& [k, r] : s["results"].items())
    if (seen.insert(k).second) v.push_back(k);
  return v;
}

std::string pct(double v) { return fmt::format("{:.2f}", 100.0 * v); }
std::string signed_pp(double v) { return fmt::format("{:+.2f}", 100.0 * v); }

}  // namespace

Comparison compare_summaries(const json& a, const json& b, const std::string& name_a,
                             const std::string& name_b, const CompareOptions& opts) {
  const json& ra = results_of(a, name_a);
  const json& rb = results_of(b, name_b);
  Comparison c;
  c.table = json::array();
  std::string md = fmt::format(
      "A: {} ({})\nB: {} ({})\n\n", name_a,
      a.contains("settings") ? a["settings"].value("model", std::string("?")) : "?", name_b,
      b.contains("settings") ? b["settings"].value("model", std::string("?")) : "?");
  md += fmt::format(
      "| benchmark | A (%) | B (%) | Δ B−A (pp) | {:.0f}% CI of Δ (pp) | paired problems |\n"
      "|---|---:|---:|---:|---|---:|\n",
      100 * opts.level);
  std::string detail;
  bool any = false;
  for (const std::string& name : bench_order(a)) {
    if (!rb.contains(name)) {
      md +=
          fmt::format("| {} | {} | — | — | — | 0 |\n", name, pct(ra[name].value("accuracy", 0.0)));
      continue;
    }
    any = true;
    const json& x = ra[name];
    const json& y = rb[name];
    const double acc_a = x.value("accuracy", 0.0), acc_b = y.value("accuracy", 0.0);
    const int na = x.value("n", 1), nb = y.value("n", 1);
    std::vector<double> va, vb;
    if (x.contains("per_problem") && y.contains("per_problem")) {
      for (const auto& [id, ca] : x["per_problem"].items()) {
        auto it = y["per_problem"].find(id);
        if (it == y["per_problem"].end()) continue;
        va.push_back(ca.get<double>() / na);
        vb.push_back(it->get<double>() / nb);
      }
    }
    json row = {{"benchmark", name},
                {"a", acc_a},
                {"b", acc_b},
                {"delta", acc_b - acc_a},
                {"problems_a", x.value("problems", 0)},
                {"problems_b", y.value("problems", 0)},
                {"paired", va.size()}};
    std::string ci_text = "—";
    if (!va.empty()) {
      BootstrapCI ci = paired_bootstrap(va, vb, opts.rounds, opts.level, opts.seed);
      row["paired_delta"] = ci.mean;
      row["ci"] = {ci.lo, ci.hi};
      row["significant"] = ci.lo > 0 || ci.hi < 0;
      ci_text = fmt::format("[{}, {}]{}", signed_pp(ci.lo), signed_pp(ci.hi),
                            (ci.lo > 0 || ci.hi < 0) ? " *" : "");
      if (va.size() != static_cast<std::size_t>(x.value("problems", 0)) ||
          va.size() != static_cast<std::size_t>(y.value("problems", 0)))
        ci_text += fmt::format(" (on the {} common problems: Δ {})", va.size(), signed_pp(ci.mean));
    }
    md += fmt::format("| {} | {} | {} | {} | {} | {} |\n", name, pct(acc_a), pct(acc_b),
                      signed_pp(acc_b - acc_a), ci_text, va.size());
    c.table.push_back(row);
    for (const char* key : {"by_subject", "by_level"}) {
      if (!x.contains(key) || !y.contains(key)) continue;
      std::string part;
      for (const auto& [k, sa] : x[key].items()) {
        if (!y[key].contains(k)) continue;
        double pa = sa.value("accuracy", 0.0), pb = y[key][k].value("accuracy", 0.0);
        part += fmt::format("| {} | {} | {} | {} | {} |\n", k, sa.value("problems", 0), pct(pa),
                            pct(pb), signed_pp(pb - pa));
        c.table.push_back({{"benchmark", name},
                           {std::string(key) == "by_subject" ? "subject" : "level", k},
                           {"a", pa},
                           {"b", pb},
                           {"delta", pb - pa}});
      }
      if (!part.empty())
        detail += fmt::format(
            "\n| {} {} | problems | A (%) | B (%) | Δ (pp) |\n|---|---:|---:|---:|---:|\n{}", name,
            std::string(key) == "by_subject" ? "subject" : "level", part);
    }
  }
  for (const std::string& name : bench_order(b))
    if (!ra.contains(name))
      md +=
          fmt::format("| {} | — | {} | — | — | 0 |\n", name, pct(rb[name].value("accuracy", 0.0)));
  if (!any) fail("{} and {} have no benchmark in common", name_a, name_b);
  md += fmt::format(
      "\nCI: paired bootstrap over problems ({} resamples); * = the interval excludes 0.\n",
      opts.rounds);
  c.markdown = md + detail;
  return c;
}

Comparison compare_files(const fs::path& a, const fs::path& b, const CompareOptions& opts) {
  return compare_summaries(read_json_file(a), read_json_file(b), a.string(), b.string(), opts);
}

}  // namespace metamath::eval
