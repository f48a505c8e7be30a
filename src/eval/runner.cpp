#include "eval/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "answer/official.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/text.h"
#include "eval/metrics.h"
#include "eval/provenance.h"
#include "eval/score.h"

namespace metamath::eval {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Shards

std::string shard_suffix(const Shard& sh) {
  return sh.whole() ? std::string() : fmt::format(".shard-{}-of-{}", sh.index, sh.count);
}

// ---------------------------------------------------------------------------------------------
// Scoring and summaries

void score_row(json& row, answer::Style style, const answer::Limits& limits) {
  const json* c = lookup(row, "completion");
  const json* g = lookup(row, "gold");
  RowVerdict v = score_one(c ? field_text(*c) : std::string(), g ? field_text(*g) : std::string(),
                           style, limits);
  row["pred_answer"] = v.pred_answer;
  row["pred_method"] = answer::method_name(v.pred_method);
  row["correct"] = v.correct;
  row["verdict"] = answer::verdict_name(v.verdict);
  row["reason"] = v.reason;
  row["official_correct"] = answer::official::score(c ? field_text(*c) : std::string(),
                                                    g ? field_text(*g) : std::string(), style)
                                .correct;
}

namespace {

std::string row_where(const json& row) {
  return fmt::format("problem \"{}\" sample {}", row.value("id", std::string("?")),
                     row.value("sample", -1));
}

// Sorts by problem (its "index"; rows without one keep the order their id first appeared in),
// then sample.
void sort_rows(std::vector<json>& rows) {
  std::map<std::string, std::int64_t> first;
  for (std::size_t i = 0; i < rows.size(); ++i)
    first.emplace(rows[i].value("id", std::string()), static_cast<std::int64_t>(i));
  auto key = [&](const json& r) {
    std::string id = r.value("id", std::string());
    auto it = r.find("index");
    std::int64_t idx =
        it != r.end() && it->is_number_integer() ? it->get<std::int64_t>() : first[id];
    return std::make_tuple(idx, id, r.value("sample", 0));
  };
  std::stable_sort(rows.begin(), rows.end(),
                   [&](const json& a, const json& b) { return key(a) < key(b); });
}

struct Acc {
  std::size_t problems = 0, samples = 0, correct = 0;
  json to_json() const {
    return json{
        {"problems", problems},
        {"samples", samples},
        {"correct", correct},
        {"accuracy", samples ? static_cast<double>(correct) / static_cast<double>(samples) : 0.0}};
  }
};

}  // namespace

json summarize_benchmark(std::vector<json> rows, int n, answer::Style style, bool breakdown,
                         const answer::Limits& limits) {
  if (n < 1) fail("summary: n must be at least 1");
  sort_rows(rows);
  Acc all;
  std::map<std::string, Acc> by_subject, by_level;
  std::map<std::string, std::size_t> methods;
  std::map<int, double> pass_sum, maj_sum;
  std::vector<int> ks = report_ks(n);
  std::size_t unparsable = 0, errors = 0, truncated = 0, official_correct = 0;
  std::uint64_t prompt_tokens = 0, completion_tokens = 0;
  json per_problem = json::object();

  for (std::size_t i = 0; i < rows.size();) {
    const std::string id = rows[i].value("id", std::string());
    if (id.empty()) fail("summary: a sample row has no \"id\"");
    std::size_t j = i;
    std::vector<Vote> votes;
    int c = 0;
    for (; j < rows.size() && rows[j].value("id", std::string()) == id; ++j) {
      const json& r = rows[j];
      int s = r.value("sample", -1);
      if (s != static_cast<int>(j - i))
        fail("summary: {}: expected sample {} (each problem needs samples 0..{})", row_where(r),
             j - i, n - 1);
      bool ok = r.value("correct", false);
      c += ok;
      official_correct += r.value("official_correct", false);
      votes.push_back({r.value("pred_answer", std::string()), ok});
      ++methods[r.value("pred_method", std::string("none"))];
      if (r.value("verdict", std::string()) == "unparsable") ++unparsable;
      if (r.contains("error")) ++errors;
      if (r.value("finish_reason", std::string()) == "length") ++truncated;
      prompt_tokens += r.value("prompt_tokens", std::uint64_t{0});
      completion_tokens += r.value("completion_tokens", std::uint64_t{0});
    }
    if (static_cast<int>(j - i) != n)
      fail("summary: problem \"{}\" has {} samples, expected {}", id, j - i, n);
    if (per_problem.contains(id)) fail("summary: problem \"{}\" appears twice", id);
    per_problem[id] = c;
    auto add = [&](Acc& a) {
      ++a.problems;
      a.samples += static_cast<std::size_t>(n);
      a.correct += static_cast<std::size_t>(c);
    };
    add(all);
    if (breakdown) {
      std::string subject = rows[i].value("subject", std::string());
      std::string level = rows[i].value("level", std::string());
      if (!subject.empty()) add(by_subject[subject]);
      if (!level.empty()) add(by_level[level]);
    }
    for (int k : ks) {
      pass_sum[k] += pass_at_k(n, c, k);
      if (n > 1) maj_sum[k] += majority_correct(votes, static_cast<std::size_t>(k), style, limits);
    }
    i = j;
  }
  json out = all.to_json();
  out["n"] = n;
  const double np = static_cast<double>(std::max<std::size_t>(all.problems, 1));
  json pass = json::object(), maj = json::object();
  for (int k : ks) {
    pass[std::to_string(k)] = pass_sum[k] / np;
    if (n > 1) maj[std::to_string(k)] = maj_sum[k] / np;
  }
  out["pass@k"] = pass;
  if (n > 1) out["maj@k"] = maj;
  out["unparsable"] = unparsable;
  out["errors"] = errors;
  out["truncated"] = truncated;
  out["pred_methods"] = methods;
  // MetaMath's official scoring of the same samples (answer/official.h), for --scoring.
  out["official"] = {{"correct", official_correct},
                     {"accuracy", all.samples ? static_cast<double>(official_correct) /
                                                    static_cast<double>(all.samples)
                                              : 0.0}};
  out["tokens"] = {{"prompt", prompt_tokens}, {"completion", completion_tokens}};
  if (breakdown) {
    json bs = json::object(), bl = json::object();
    for (const auto& [k, a] : by_subject) bs[k] = a.to_json();
    for (const auto& [k, a] : by_level) bl[k] = a.to_json();
    out["by_subject"] = bs;
    out["by_level"] = bl;
  }
  out["per_problem"] = per_problem;
  return out;
}

std::string format_eval_summary(const json& summary, Scoring scoring) {
  const json& settings = summary.at("settings");
  const json& results = summary.at("results");
  const int n = settings.value("n", 1);
  std::vector<int> ks = report_ks(n);
  std::string md = fmt::format("model: {} · prompt: {} · ", settings.value("model", std::string()),
                               settings.value("prompt", std::string()));
  md += n == 1 && settings.value("temperature", 0.0) == 0.0
            ? std::string("greedy")
            : fmt::format("n={} temperature={}", n, settings.value("temperature", 0.0));
  if (scoring == Scoring::Official) md += " · scored as MetaMath's official eval scripts";
  md += "\n\n| benchmark | problems | correct | accuracy (%) |";
  std::string rule = "|---|---:|---:|---:|";
  if (scoring == Scoring::Both) {
    md += " official correct | official accuracy (%) | difference (points) |";
    rule += "---:|---:|---:|";
  }
  if (n > 1) {
    for (int k : ks) {
      md += fmt::format(" pass@{} (%) |", k);
      rule += "---:|";
    }
    for (int k : ks) {
      if (k == 1) continue;
      md += fmt::format(" maj@{} (%) |", k);
      rule += "---:|";
    }
  }
  md += "\n" + rule + "\n";
  for (const json& b : settings.at("benchmarks")) {
    const std::string name = b.at("name");
    if (!results.contains(name)) continue;
    const json& r = results.at(name);
    const json off = r.value("official", json::object());
    const bool official = scoring == Scoring::Official;
    md += fmt::format("| {} | {} | {} | {:.2f} |", name, r.value("problems", 0),
                      (official ? off : r).value("correct", 0),
                      100.0 * (official ? off : r).value("accuracy", 0.0));
    if (scoring == Scoring::Both)
      md += fmt::format(" {} | {:.2f} | {:+.2f} |", off.value("correct", 0),
                        100.0 * off.value("accuracy", 0.0),
                        100.0 * (r.value("accuracy", 0.0) - off.value("accuracy", 0.0)));
    if (n > 1) {
      for (int k : ks)
        md += fmt::format(" {:.2f} |", 100.0 * r["pass@k"].value(std::to_string(k), 0.0));
      for (int k : ks)
        if (k != 1)
          md += fmt::format(" {:.2f} |", 100.0 * r["maj@k"].value(std::to_string(k), 0.0));
    }
    md += "\n";
  }
  for (const json& b : settings.at("benchmarks")) {
    const std::string name = b.at("name");
    if (!results.contains(name)) continue;
    const json& r = results.at(name);
    for (const char* key : {"by_subject", "by_level"}) {
      if (!r.contains(key) || r[key].empty()) continue;
      md += fmt::format("\n| {} {} | problems | correct | accuracy (%) |\n|---|---:|---:|---:|\n",
                        name, std::string(key) == "by_subject" ? "subject" : "level");
      for (const auto& [k, a] : r[key].items())
        md += fmt::format("| {} | {} | {} | {:.2f} |\n", k, a.value("problems", 0),
                          a.value("correct", 0), 100.0 * a.value("accuracy", 0.0));
    }
  }
  std::vector<std::string> notes;
  for (const auto& [name, r] : results.items()) {
    if (r.value("errors", 0) > 0)
      notes.push_back(fmt::format("{}: {} samples failed in the backend (counted wrong)", name,
                                  r.value("errors", 0)));
    if (r.value("truncated", 0) > 0)
      notes.push_back(
          fmt::format("{}: {} samples hit the token limit", name, r.value("truncated", 0)));
  }
  if (!notes.empty()) md += "\n" + fmt::format("{}", fmt::join(notes, "\n")) + "\n";
  return md;
}

// ---------------------------------------------------------------------------------------------
// Files

namespace {

fs::path samples_path(const fs::path& dir, const std::string& bench, const Shard& sh) {
  return dir / (bench + shard_suffix(sh) + ".samples.jsonl");
}
fs::path run_path(const fs::path& dir, const Shard& sh) {
  return dir / ("run" + shard_suffix(sh) + ".json");
}
fs::path summary_path(const fs::path& dir, const Shard& sh, const char* ext) {
  return dir / ("summary" + shard_suffix(sh) + ext);
}

// A killed run can leave a last line without its newline: drop it (its problem is regenerated).
void repair_journal(const fs::path& file) {
  std::string s = read_file(file);
  if (s.empty() || s.back() == '\n') return;
  std::size_t keep = s.rfind('\n');
  keep = keep == std::string::npos ? 0 : keep + 1;
  log::warn("{}: dropping a torn last line ({} bytes) left by an interrupted run", file.string(),
            s.size() - keep);
  fs::resize_file(file, keep);
}

void write_rows_atomic(const fs::path& file, const std::vector<json>& rows) {
  JsonlWriter w(file, JsonlWriter::Mode::Atomic);
  for (const json& r : rows) w.write(r);
  w.commit();
}

json make_summary(const json& settings, const fs::path& dir, const Shard& sh,
                  const answer::Limits& limits) {
  json results = json::object();
  const int n = settings.at("n");
  for (const json& b : settings.at("benchmarks")) {
    const std::string name = b.at("name");
    const Benchmark& bench = find_benchmark(name);
    fs::path f = samples_path(dir, name, sh);
    std::vector<json> rows = read_samples(f);
    results[name] = summarize_benchmark(std::move(rows), n, bench.style, bench.breakdown, limits);
    results[name]["samples_file"] = f.filename().string();
  }
  return json{{"settings", settings}, {"results", results}};
}

EvalResult write_summary(const json& settings, const fs::path& dir, const Shard& sh,
                         const answer::Limits& limits, Scoring scoring = Scoring::Ours) {
  EvalResult r;
  r.summary = make_summary(settings, dir, sh, limits);
  r.markdown = format_eval_summary(r.summary, scoring);
  write_file_atomic(summary_path(dir, sh, ".json"), r.summary.dump(2) + "\n");
  write_file_atomic(summary_path(dir, sh, ".md"), r.markdown);
  return r;
}

struct Work {
  std::size_t bench;  // index into the benchmark list
  const data::Problem* problem;
  std::size_t index;  // in the benchmark's data file
};

// ---------------------------------------------------------------------------------------------
// run_eval's steps, in order

void check_options(const EvalOptions& o) {
  if (o.benchmarks.empty()) fail("eval: no benchmark given");
  if (o.n < 1) fail("--n must be at least 1 (got {})", o.n);
  if (o.temperature < 0) fail("--temperature must be >= 0 (got {})", o.temperature);
  if (o.n > 1 && o.temperature == 0)
    log::warn("--n {} with greedy decoding: all samples of a problem will be the same", o.n);
  if (o.out_dir.empty()) fail("eval: an output folder (--out) is needed");
  for (const auto& [name, path] : o.data) {
    bool listed = false;
    for (const auto& b : o.benchmarks) listed |= b.name == name;
    if (!listed) fail("--data {}=...: benchmark {} is not being evaluated", name, name);
  }
}

// One benchmark as it will be run: its problems, prompt template and sampling.
struct BenchRun {
  std::vector<data::Problem> problems;
  PromptTemplate tmpl;
  llm::Sampling sampling;
};

// Everything run_eval sends, and the settings written to run{SFX}.json.
struct EvalPlan {
  std::vector<BenchRun> benches;  // parallel to EvalOptions::benchmarks
  json settings;
  json provenance;  // EvalOptions::provenance plus "data": benchmark -> data_file_provenance
};

// Loads one benchmark's problems and template; appends its entry of settings["benchmarks"].
BenchRun plan_benchmark(const Benchmark& b, const EvalOptions& o, json& bench_settings) {
  auto it = o.data.find(b.name);
  fs::path data_file = it == o.data.end() ? fs::path() : it->second;
  BenchRun run;
  run.problems = load_problems(b, data_file);
  if (o.limit && run.problems.size() > o.limit) run.problems.resize(o.limit);
  run.tmpl = load_template(o.prompt, b.style);
  llm::Sampling& s = run.sampling;
  s.max_tokens = o.max_tokens > 0 ? o.max_tokens : b.max_tokens;
  s.temperature = o.temperature;
  s.top_p = o.top_p;
  s.n = o.n;
  s.stop = o.stop ? *o.stop : run.tmpl.stop ? *run.tmpl.stop : default_stop();
  bench_settings.push_back(
      {{"name", b.name},
       {"data", (data_file.empty() ? data::default_path(b.dataset, "test") : data_file).string()},
       {"problems", run.problems.size()},
       {"max_tokens", s.max_tokens},
       {"stop", s.stop},
       {"template", run.tmpl.text},
       {"chat", run.tmpl.chat}});
  return run;
}

EvalPlan plan_eval(const llm::Backend& backend, const EvalOptions& o) {
  EvalPlan plan;
  plan.settings = {{"model", backend.model_name()},
                   {"prompt", o.prompt},
                   {"n", o.n},
                   {"temperature", o.temperature},
                   {"top_p", o.top_p},
                   {"seed", o.seed},
                   {"limit", o.limit}};
  json bench_settings = json::array();
  for (const Benchmark& b : o.benchmarks)
    plan.benches.push_back(plan_benchmark(b, o, bench_settings));
  plan.settings["benchmarks"] = bench_settings;
  plan.provenance = o.provenance.is_object() ? o.provenance : json::object();
  for (const json& b : bench_settings)
    plan.provenance["data"][b.at("name").get<std::string>()] =
        data_file_provenance(b.at("data").get<std::string>());
  return plan;
}

// Writes run{SFX}.json; a folder holding a run with other settings is an error.
void write_run_file(const EvalOptions& o, const json& settings, const json& provenance) {
  const fs::path run_file = run_path(o.out_dir, o.shard);
  json run = {{"settings", settings},
              {"shard", {{"index", o.shard.index}, {"count", o.shard.count}}},
              {"provenance", provenance}};
  if (fs::exists(run_file)) {
    json old = read_json_file(run_file);
    std::string d = first_difference(old.value("settings", json()), settings);
    if (!d.empty())
      fail(
          "{}: this folder holds a run with other settings ({}); use another --out folder, or "
          "delete it to start over",
          run_file.string(), d);
  }
  write_file_atomic(run_file, run.dump(2) + "\n");
}

// What is left to generate after resuming, and the journals the new samples go to.
struct Resumed {
  std::vector<Work> todo;
  std::vector<std::unique_ptr<JsonlWriter>> journals;  // one per benchmark
  std::size_t problems = 0;                            // kept from an earlier run
};

// True when a problem's saved rows are exactly samples 0..n-1 (and, with --retry-errors, none
// holds a backend error).
bool finished_problem(const std::vector<json>& rows, const EvalOptions& o) {
  std::set<int> samples;
  for (const json& r : rows) samples.insert(r.value("sample", -1));
  bool errored = false;
  for (const json& r : rows) errored |= r.contains("error");
  return static_cast<int>(samples.size()) == o.n && *samples.begin() == 0 &&
         *samples.rbegin() == o.n - 1 && rows.size() == samples.size() &&
         !(errored && o.retry_errors);
}

// Keeps the finished problems of benchmark `bi` in its samples file (rewriting the file when rows
// are dropped), queues the others of this shard, and opens the journal.
void resume_benchmark(std::size_t bi, const EvalOptions& o, const EvalPlan& plan, Resumed& out) {
  const Benchmark& b = o.benchmarks[bi];
  fs::path f = samples_path(o.out_dir, b.name, o.shard);
  std::map<std::string, std::vector<json>> have;
  std::size_t rows_on_disk = 0;
  if (fs::exists(f)) {
    repair_journal(f);
    for (json& r : read_samples(f)) {
      ++rows_on_disk;
      have[r.value("id", std::string())].push_back(std::move(r));
    }
  }
  std::vector<json> kept;
  std::set<std::string> done;
  const std::vector<data::Problem>& problems = plan.benches[bi].problems;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (!o.shard.owns(i)) continue;
    const data::Problem& p = problems[i];
    auto h = have.find(p.id);
    if (h != have.end() && finished_problem(h->second, o)) {
      for (json& r : h->second) kept.push_back(std::move(r));
      done.insert(p.id);
      ++out.problems;
      continue;
    }
    out.todo.push_back({bi, &p, i});
  }
  if (kept.size() != rows_on_disk) {
    log::warn("{}: {} rows of unfinished, failed or unknown problems dropped; they are regenerated",
              f.string(), rows_on_disk - kept.size());
    write_rows_atomic(f, kept);
  }
  if (!done.empty()) log::info("{}: resuming, {} problems already done", b.name, done.size());
  out.journals.push_back(std::make_unique<JsonlWriter>(f, JsonlWriter::Mode::Append));
}

// Resume: keep the problems whose n samples are all in the journal.
Resumed resume(const EvalOptions& o, const EvalPlan& plan) {
  Resumed r;
  for (std::size_t bi = 0; bi < o.benchmarks.size(); ++bi) resume_benchmark(bi, o, plan, r);
  return r;
}

// One request per problem left, all n samples in it; request id = index into `todo`.
std::vector<llm::Request> make_requests(const EvalOptions& o, const EvalPlan& plan,
                                        const std::vector<Work>& todo) {
  std::vector<llm::Request> requests;
  requests.reserve(todo.size());
  for (std::size_t w = 0; w < todo.size(); ++w) {
    const Work& wk = todo[w];
    llm::Request r;
    r.id = w;
    const PromptTemplate& t = plan.benches[wk.bench].tmpl;
    if (t.chat)
      r.messages = t.render_chat(wk.problem->question);
    else
      r.prompt = t.render(wk.problem->question);
    r.sampling = plan.benches[wk.bench].sampling;
    r.sampling.seed =
        o.seed + static_cast<std::uint64_t>(wk.index) * static_cast<std::uint64_t>(o.n);
    requests.push_back(std::move(r));
  }
  return requests;
}

// The scored row of sample s of a finished request (a BadRequest result gives error rows).
json sample_row(const Work& wk, const Benchmark& b, const llm::Request& req, const llm::Result& res,
                int s, const answer::Limits& limits) {
  json row = {{"id", wk.problem->id}, {"index", wk.index}, {"sample", s}, {"benchmark", b.name}};
  if (req.is_chat()) {
    json msgs = json::array();
    for (const auto& m : req.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
    row["messages"] = msgs;
  } else {
    row["prompt"] = req.prompt;
  }
  if (res.ok()) {
    row["completion"] = res.choices[static_cast<std::size_t>(s)].text;
    row["finish_reason"] = res.choices[static_cast<std::size_t>(s)].finish_reason;
  } else {
    row["completion"] = "";
    row["finish_reason"] = "error";
    row["error"] = res.error.empty() ? std::string("bad request") : res.error;
  }
  row["gold"] = wk.problem->answer;
  row["question_words"] = text::word_count(wk.problem->question);
  if (b.breakdown) {
    row["subject"] = wk.problem->subject;
    row["level"] = wk.problem->level;
  }
  score_row(row, b.style, limits);
  if (!res.ok()) row["reason"] = "backend error: " + row["error"].get<std::string>();
  // Prompt tokens count once per problem (on sample 0); completion tokens per sample when
  // the backend reports them per choice, else the request's total on sample 0.
  const int choice_tokens =
      res.ok() ? res.choices[static_cast<std::size_t>(s)].completion_tokens : -1;
  if (choice_tokens >= 0) row["completion_tokens"] = choice_tokens;
  if (s == 0) {
    row["prompt_tokens"] = res.prompt_tokens;
    if (choice_tokens < 0) row["completion_tokens"] = res.completion_tokens;
  }
  return row;
}

// Receives the backend's results: journals the rows of each finished problem, counts failures,
// keeps the progress bar's accuracy.
class ResultRecorder {
 public:
  ResultRecorder(const EvalOptions& o, const llm::Backend& backend, const Resumed& work,
                 const std::vector<llm::Request>& requests)
      : o_(o), backend_(backend), work_(work), requests_(requests) {
    if (o.progress && !requests.empty()) bar_ = std::make_unique<Progress>("eval", requests.size());
  }

  void operator()(const llm::Result& res) {
    if (res.id >= work_.todo.size()) {
      note_failure(fmt::format("result with unknown id {}", res.id), /*tick=*/false);
      return;
    }
    const Work& wk = work_.todo[res.id];
    const bool bad_request = res.error_kind == llm::ErrorKind::BadRequest;
    if (!res.ok() && !bad_request) {
      note_failure(
          fmt::format("{}: {}", wk.problem->id, res.error.empty() ? "unknown error" : res.error));
      return;
    }
    if (res.ok() && static_cast<int>(res.choices.size()) != o_.n) {
      note_failure(fmt::format("{}: the backend returned {} choices, expected {}", wk.problem->id,
                               res.choices.size(), o_.n));
      return;
    }
    const Benchmark& b = o_.benchmarks[wk.bench];
    for (int s = 0; s < o_.n; ++s) {
      json row = sample_row(wk, b, requests_[res.id], res, s, o_.limits);
      ++samples_done_;
      samples_correct_ += row["correct"].get<bool>();
      work_.journals[wk.bench]->write(row);
    }
    ++generated_;
    if (bar_) {
      const double acc = samples_done_ ? 100.0 * static_cast<double>(samples_correct_) /
                                             static_cast<double>(samples_done_)
                                       : 0.0;
      bar_->set_postfix(fmt::format("acc {:.1f}% · {}", acc, llm::usage_summary(backend_)));
      bar_->tick();
    }
  }

  void finish() {
    if (bar_) bar_->finish();
  }
  std::size_t generated() const { return generated_; }
  std::size_t failed() const { return failed_; }
  const std::string& first_failure() const { return first_failure_; }

 private:
  void note_failure(std::string what, bool tick = true) {
    ++failed_;
    if (first_failure_.empty()) first_failure_ = std::move(what);
    if (tick && bar_) bar_->tick();
  }

  const EvalOptions& o_;
  const llm::Backend& backend_;
  const Resumed& work_;
  const std::vector<llm::Request>& requests_;
  std::unique_ptr<Progress> bar_;
  std::size_t failed_ = 0, samples_done_ = 0, samples_correct_ = 0, generated_ = 0;
  std::string first_failure_;
};

// Generate what is left; returns the number of problems generated. Throws (after committing the
// journals) when requests failed for good.
std::size_t generate_remaining(llm::Backend& backend, const EvalOptions& o, const EvalPlan& plan,
                               Resumed& work) {
  const std::vector<llm::Request> requests = make_requests(o, plan, work.todo);
  ResultRecorder recorder(o, backend, work, requests);
  if (!requests.empty()) backend.generate(requests, [&](llm::Result res) { recorder(res); });
  recorder.finish();
  for (auto& j : work.journals) j->commit();
  work.journals.clear();
  if (recorder.failed())
    fail(
        "{} of {} requests failed (first: {}); the {} finished problems are saved in {}: run the "
        "same command again to retry the rest",
        recorder.failed(), requests.size(), recorder.first_failure(),
        recorder.generated() + work.problems, o.out_dir.string());
  return recorder.generated();
}

// Rewrites each samples file sorted by (index, sample).
void sort_samples_files(const EvalOptions& o) {
  for (const Benchmark& b : o.benchmarks) {
    fs::path f = samples_path(o.out_dir, b.name, o.shard);
    std::vector<json> rows = read_samples(f);
    sort_rows(rows);
    write_rows_atomic(f, rows);
  }
}

}  // namespace

std::vector<json> read_samples(const fs::path& file) { return read_jsonl(file); }

EvalResult run_eval(llm::Backend& backend, const EvalOptions& o) {
  check_options(o);
  fs::create_directories(o.out_dir);
  const EvalPlan plan = plan_eval(backend, o);
  write_run_file(o, plan.settings, plan.provenance);
  Resumed work = resume(o, plan);
  const std::size_t generated = generate_remaining(backend, o, plan, work);
  sort_samples_files(o);
  EvalResult r = write_summary(plan.settings, o.out_dir, o.shard, o.limits, o.scoring);
  r.generated = generated;
  r.resumed = work.problems;
  return r;
}

EvalResult merge_shards(const fs::path& dir) {
  // Find the shard run files.
  std::map<int, std::map<int, json>> by_count;  // count -> index -> run
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: no such folder", dir.string());
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    constexpr std::string_view kPre = "run.shard-", kSuf = ".json";
    if (!text::starts_with(name, kPre) || !text::ends_with(name, kSuf)) continue;
    std::string mid = name.substr(kPre.size(), name.size() - kPre.size() - kSuf.size());
    std::size_t of = mid.find("-of-");
    if (of == std::string::npos) continue;
    Shard sh;
    try {
      sh = parse_shard(mid.substr(0, of) + "/" + mid.substr(of + 4));
    } catch (const Error&) {
      continue;
    }
    const int i = sh.index, n = sh.count;
    by_count[n][i] = read_json_file(e.path());
  }
  if (by_count.empty()) fail("{}: no run.shard-I-of-N.json files: nothing to merge", dir.string());
  if (by_count.size() > 1)
    fail("{}: shard files of runs with different shard counts", dir.string());
  const int count = by_count.begin()->first;
  const auto& runs = by_count.begin()->second;
  const json& settings = runs.begin()->second.at("settings");
  for (int i = 0; i < count; ++i) {
    Shard sh{i, count};
    if (!runs.count(i))
      fail("{}: shard {}/{} has not run (no {})", dir.string(), i, count,
           run_path(dir, sh).filename().string());
    std::string d = first_difference(settings, runs.at(i).at("settings"));
    if (!d.empty()) fail("{}: shard {}/{} ran with other settings ({})", dir.string(), i, count, d);
    if (!fs::exists(summary_path(dir, sh, ".json")))
      fail("{}: shard {}/{} has not finished (no {}); rerun it, it resumes", dir.string(), i, count,
           summary_path(dir, sh, ".json").filename().string());
  }
  for (const json& b : settings.at("benchmarks")) {
    const std::string name = b.at("name");
    std::vector<json> rows;
    for (int i = 0; i < count; ++i)
      for (json& r : read_samples(samples_path(dir, name, Shard{i, count})))
        rows.push_back(std::move(r));
    sort_rows(rows);
    std::size_t problems = 0;
    for (const json& r : rows) problems += r.value("sample", -1) == 0;
    if (problems != b.value("problems", std::size_t{0}))
      fail("{}: the shards of {} hold {} problems, the run has {}", dir.string(), name, problems,
           b.value("problems", std::size_t{0}));
    write_rows_atomic(samples_path(dir, name, Shard{}), rows);
  }
  const json provenance = runs.begin()->second.value("provenance", json::object());
  write_file_atomic(run_path(dir, Shard{}), json{{"settings", settings},
                                                 {"shard", {{"index", 0}, {"count", 1}}},
                                                 {"provenance", provenance}}
                                                    .dump(2) +
                                                "\n");
  return write_summary(settings, dir, Shard{}, answer::Limits{});
}

EvalResult rescore_run(const fs::path& dir, const answer::Limits& limits) {
  fs::path rf = run_path(dir, Shard{});
  if (!fs::exists(rf))
    fail("{}: not found; --rescore needs a finished (or merged) run folder", rf.string());
  json settings = read_json_file(rf).at("settings");
  for (const json& b : settings.at("benchmarks")) {
    const Benchmark& bench = find_benchmark(b.at("name").get<std::string>());
    fs::path f = samples_path(dir, bench.name, Shard{});
    std::vector<json> rows = read_samples(f);
    for (json& r : rows) {
      std::string err = r.contains("error") ? r["error"].get<std::string>() : std::string();
      score_row(r, bench.style, limits);
      if (!err.empty()) r["reason"] = "backend error: " + err;
    }
    write_rows_atomic(f, rows);
  }
  return write_summary(settings, dir, Shard{}, limits);
}

}  // namespace metamath::eval
