// `metamath report` on a set of runs whose numbers are known by construction: three eval runs on
// the real GSM8K and MATH-500 test problems through a scripted backend that answers a chosen set
// of problems right, two training runs (hand-written logs and records, the models of two of the
// eval runs), a bootstrap stats.json, an assemble.json, two diversity.json and a ppl.json.
//
// The page is rendered by headless Chromium: tests/analysis/render_check.js runs in it and
// reports, from the laid-out DOM, each chart's marks, intervals and geometry; the test compares
// them with the counts and values the fixture implies and saves a screenshot
// (METAMATH_REPORT_SCREENSHOT=FILE copies it, e.g. to docs/report.png).
#include "analysis/report.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "analysis/report_svg.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/sha256.h"
#include "eval/benchmark.h"
#include "eval/fake_backend.h"
#include "eval/metrics.h"
#include "eval/provenance.h"
#include "eval/runner.h"
#include "test_util.h"

namespace metamath::analysis {
namespace {
namespace fs = std::filesystem;

constexpr std::size_t kLimit = 12;

// Which problem indices a run answers right.
using Rule = std::function<bool(std::size_t)>;

// An eval run over the first kLimit problems of gsm8k and math500: problem i is answered with its
// gold answer when right(i), else with a wrong number.
void scripted_eval(const fs::path& data, const fs::path& out, const Rule& right,
                   const json& provenance) {
  eval::EvalOptions o;
  o.benchmarks = eval::parse_benchmark_list("gsm8k,math500");
  o.data = {{"gsm8k", data / "gsm8k" / "test.jsonl"}, {"math500", data / "math500" / "test.jsonl"}};
  o.limit = kLimit;
  o.out_dir = out;
  o.progress = false;
  o.provenance = provenance;
  std::map<std::string, std::pair<std::size_t, std::string>> by_prompt;  // -> index, gold
  for (const auto& b : o.benchmarks) {
    auto problems = eval::load_problems(b, o.data[b.name]);
    const eval::PromptTemplate t = eval::load_template("alpaca", b.style);
    for (std::size_t i = 0; i < kLimit; ++i)
      by_prompt[t.render(problems[i].question)] = {i, problems[i].answer};
  }
  fake::FakeBackend backend([&](const llm::Request& r) {
    const auto& [i, gold] = by_prompt.at(r.prompt);
    return fake::choices(
        {right(i) ? " So it is.\nThe answer is: " + gold : " So it is.\nThe answer is: 987654321"});
  });
  eval::run_eval(backend, o);
}

void write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  write_file_atomic(p, s);
}

std::string sha_of(const fs::path& f) { return sha256_file(f); }

// A training run folder: train_run.json as `metamath train` writes it, and a log of `steps` rows.
void training_folder(const fs::path& dir, const fs::path& data_file, int examples,
                     const json& types, int steps) {
  json rec = {{"kind", "metamath-train"},
              {"status", "finished"},
              {"data",
               {{"path", fs::absolute(data_file).string()},
                {"sha256", sha_of(data_file)},
                {"examples", examples},
                {"records", examples},
                {"types", types}}},
              {"model", {{"init", "random"}, {"config", "tiny"}}},
              {"steps", steps}};
  write(dir / "train_run.json", rec.dump(2));
  std::string log;
  for (int s = 1; s <= steps; ++s)
    log += json{{"step", s}, {"loss", 3.0 / s}, {"lr", 1e-3 * s / steps}}.dump() + "\n";
  write(dir / "train_log.jsonl", log);
}

struct Fixture {
  fs::path dir;
  std::vector<int> gsm_words;  // question words of the first kLimit problems (own count)
  std::set<std::string> subjects, levels;  // of the first kLimit MATH-500 problems
};

int own_word_count(const std::string& s) {
  std::istringstream in(s);
  std::string w;
  int n = 0;
  while (in >> w) ++n;
  return n;
}

const Rule kRightA = [](std::size_t i) { return i % 2 == 0; };  // 6 of 12
const Rule kRightB = [](std::size_t i) { return i % 3 != 0; };  // 8 of 12
const Rule kRightC = [](std::size_t i) { return i == 0; };      // 1 of 12

Fixture make_fixture(const fs::path& data) {
  Fixture f;
  f.dir = testing::temp_dir("report");
  const fs::path runs = f.dir / "runs";
  // Training data files (their content only matters for the hashes).
  write(runs / "data" / "mix-a.jsonl",
        "{\"query\": \"a\", \"response\": \"b\", \"type\": \"GSM_AnsAug\"}\n");
  write(runs / "data" / "mix-b.jsonl",
        "{\"query\": \"c\", \"response\": \"d\", \"type\": \"GSM_SV\"}\n");
  training_folder(runs / "small" / "model", runs / "data" / "mix-a.jsonl", 1000,
                  {{"GSM_AnsAug", 600}, {"GSM_Rephrased", 300}, {"GSM_SV", 100}}, 10);
  training_folder(runs / "large" / "model", runs / "data" / "mix-b.jsonl", 4000,
                  {{"GSM_AnsAug", 3000}, {"GSM_FOBAR", 1000}}, 15);
  auto prov = [](const fs::path& model) {
    llm::BackendOptions bo;
    bo.kind = "local";
    bo.model = model.string();
    return eval::backend_provenance(bo);
  };
  scripted_eval(data, runs / "small" / "eval", kRightA, prov(runs / "small" / "model"));
  scripted_eval(data, runs / "large" / "eval", kRightB, prov(runs / "large" / "model"));
  scripted_eval(data, runs / "zzz-untrained" / "eval", kRightC, json::object());
  // Bootstrap stats (stats_json's shape): Rephrase has no checked samples, so no bar.
  json methods = {{"AnsAug", {{"jobs", 10}, {"samples", 40}, {"kept", 30}, {"yield", 0.75}}},
                  {"Rephrase", {{"jobs", 10}, {"samples", 0}, {"kept", 0}, {"yield", 0.0}}},
                  {"SV", {{"jobs", 10}, {"samples", 20}, {"kept", 5}, {"yield", 0.25}}},
                  {"FOBAR", {{"jobs", 10}, {"samples", 20}, {"kept", 10}, {"yield", 0.5}}}};
  write(runs / "boot" / "stats.json", json{{"problems", 10}, {"methods", methods}}.dump(2));
  // The assembled mixture of the small run (same sha256 as its training data: drawn once).
  write(runs / "small" / "assemble.json", json{{"kind", "assemble"},
                                               {"sha256", sha_of(runs / "data" / "mix-a.jsonl")},
                                               {"types",
                                                {{"GSM_AnsAug", {{"kept", 600}}},
                                                 {"GSM_Rephrased", {{"kept", 300}}},
                                                 {"GSM_SV", {{"kept", 100}}},
                                                 {"?AnsAug", {{"samples", 5}}}}}}
                                              .dump(2));
  // Diversity of each training set (matched by path) and perplexity.
  for (const char* run : {"small", "large"}) {
    const fs::path mix =
        runs / "data" / (std::string("mix-") + (run[0] == 's' ? "a" : "b") + ".jsonl");
    write(runs / run / "diversity" / "diversity.json",
          json{{"kind", "diversity"},
               {"gain", run[0] == 's' ? 0.1 : 0.3},
               {"items", 10},
               {"by_type",
                {{"GSM_AnsAug", {{"items", 6}, {"gain", 0.05}}},
                 {"GSM_SV", {{"items", 4}, {"gain", 0.2}}}}},
               {"curve", json::array({{{"n", 1}, {"gain", 0.2}}, {{"n", 10}, {"gain", 0.1}}})},
               {"data", {{"new", {{"path", fs::absolute(mix).string()}}}}}}
              .dump(2));
  }
  write(runs / "ppl" / "ppl.json",
        json{{"kind", "ppl"},
             {"overall", {{"examples", 5}, {"tokens", 50}, {"mean_nll", 1.0}, {"ppl", 2.718}}},
             {"by_type", {{"GSM_AnsAug", {{"ppl", 2.0}}}, {"MATH_FOBAR", {{"ppl", 4.0}}}}}}
            .dump(2));

  auto problems = eval::load_problems(eval::find_benchmark("gsm8k"), data / "gsm8k" / "test.jsonl");
  for (std::size_t i = 0; i < kLimit; ++i)
    f.gsm_words.push_back(own_word_count(problems[i].question));
  auto math = eval::load_problems(eval::find_benchmark("math500"), data / "math500" / "test.jsonl");
  for (std::size_t i = 0; i < kLimit; ++i) {
    f.subjects.insert(math[i].subject);
    f.levels.insert(math[i].level);
  }
  return f;
}

std::string html_unescape(std::string s) {
  for (auto [from, to] :
       {std::pair{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&amp;", "&"}}) {
    std::string out;
    std::size_t at = 0, hit;
    while ((hit = s.find(from, at)) != std::string::npos) {
      out += s.substr(at, hit - at) + to;
      at = hit + std::string(from).size();
    }
    s = out + s.substr(at);
  }
  return s;
}

std::optional<std::string> chromium() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    auto r = testing::run_command(fmt::format("command -v {}", name));
    if (r.code == 0) return std::string(name);
  }
  return std::nullopt;
}

// Loads the page with render_check.js appended in headless Chromium; returns its JSON.
json browser_check(const std::string& browser, const fs::path& html, const fs::path& work) {
  std::string page = read_file(html);
  const std::string script =
      read_file(fs::path(METAMATH_SOURCE_DIR) / "tests" / "analysis" / "render_check.js");
  const std::size_t end = page.rfind("</body>");
  EXPECT_NE(end, std::string::npos);
  page.insert(end, "<script>\n" + script + "\n</script>\n");
  const fs::path checked = work / "checked.html", dom = work / "dom.html";
  write_file_atomic(checked, page);
  auto r = testing::run_command(fmt::format(
      "{{ {} --headless --disable-gpu --no-sandbox --window-size=1440,900 --dump-dom file://{} "
      "2>/dev/null; }} > {}",
      browser, checked.string(), dom.string()));
  EXPECT_EQ(r.code, 0) << r.output;
  const std::string out = read_file(dom);
  const std::string open = "<pre id=\"render-check\">";
  const std::size_t a = out.rfind(open);  // the script's own comment names it too
  if (a == std::string::npos) {
    ADD_FAILURE() << "render_check.js did not run; DOM dump starts: " << out.substr(0, 300);
    return json();
  }
  const std::size_t b = out.find("</pre>", a);
  return json::parse(html_unescape(out.substr(a + open.size(), b - a - open.size())));
}

const json& chart(const json& check, const std::string& id) {
  static const json none;
  for (const json& c : check["charts"])
    if (c["id"] == id) return c;
  ADD_FAILURE() << "chart " << id << " is not on the page";
  return none;
}

// Value of the mark (series, category-or-x) in a chart's values list.
double value_of(const json& c, const std::string& series, const std::string& cat) {
  for (const json& v : c["values"])
    if (v[0] == series && v[1] == cat) return v[2].get<double>();
  ADD_FAILURE() << c["id"] << ": no mark for " << series << " / " << cat;
  return NAN;
}

TEST(Report, EveryChartRendersInChromiumWithTheMarksItsDataImplies) {
  METAMATH_REQUIRE_DATA(data);
  const Fixture f = make_fixture(data);
  ReportOptions o;
  o.inputs = {f.dir / "runs"};
  o.out = f.dir / "report.html";
  o.length_buckets = 3;
  o.compare.rounds = 2000;
  const ReportResult res = write_report(o);
  EXPECT_TRUE(res.missing.empty()) << res.missing.front();

  // Self-contained: nothing on the page points outside it (the SVG namespace is a name, not a
  // fetch).
  const std::string html = read_file(o.out);
  std::string stripped = html;
  for (std::size_t at; (at = stripped.find("http://www.w3.org/2000/svg")) != std::string::npos;)
    stripped.erase(at, 26);
  EXPECT_EQ(stripped.find("http://"), std::string::npos);
  EXPECT_EQ(stripped.find("https://"), std::string::npos);
  EXPECT_EQ(stripped.find(" src="), std::string::npos);

  auto browser = chromium();
  METAMATH_REQUIRE(browser.has_value(), "chromium not installed (scripts/setup.sh installs it)");
  const json check = browser_check(*browser, o.out, f.dir);
  ASSERT_TRUE(check.is_object());
  EXPECT_EQ(check["fetches"], 0);
  EXPECT_EQ(check["dataCharts"].get<std::size_t>(), check["charts"].size());

  // Every chart: laid out, marks inside the plot, labels inside the chart, the DOM's counts equal
  // to what the chart says it drew.
  for (const json& c : check["charts"]) {
    SCOPED_TRACE(c["id"].get<std::string>());
    EXPECT_GT(c["width"].get<double>(), 100);
    EXPECT_GT(c["height"].get<double>(), 100);
    EXPECT_EQ(c["outside"], 0);
    EXPECT_EQ(c["textOutside"], 0);
    EXPECT_EQ(c["marks"], c["declaredMarks"]);
    EXPECT_EQ(c["intervals"], c["declaredIntervals"]);
  }

  // What the fixture implies. Labels: "small", "large", "zzz-untrained" (folder order); the
  // baseline is the first, "large".
  const std::size_t runs = 3, benches = 2;
  const json& acc = chart(check, "accuracy-benchmark");
  EXPECT_EQ(acc["marks"], runs * benches);
  EXPECT_EQ(acc["intervals"], (runs - 1) * benches);  // every run but the baseline
  EXPECT_NEAR(value_of(acc, "small", "gsm8k"), 6.0 / 12, 1e-9);
  EXPECT_NEAR(value_of(acc, "large", "gsm8k"), 8.0 / 12, 1e-9);
  EXPECT_NEAR(value_of(acc, "zzz-untrained", "math500"), 1.0 / 12, 1e-9);

  const json& subj = chart(check, "accuracy-subject-math500");
  EXPECT_EQ(subj["marks"], runs * f.subjects.size());
  const json& lvl = chart(check, "accuracy-level-math500");
  EXPECT_EQ(lvl["marks"], runs * f.levels.size());
  EXPECT_EQ(lvl["intervals"], (runs - 1) * f.levels.size());

  // Two eval runs carry a training record (1000 and 4000 examples), each with both benchmarks.
  const json& size = chart(check, "accuracy-vs-size");
  EXPECT_EQ(size["marks"], 2 * benches);
  EXPECT_NEAR(value_of(size, "gsm8k", "1000"), 6.0 / 12, 1e-9);
  EXPECT_NEAR(value_of(size, "gsm8k", "4000"), 8.0 / 12, 1e-9);
  const json& div = chart(check, "accuracy-vs-diversity");
  EXPECT_EQ(div["marks"], 2 * benches);
  EXPECT_NEAR(value_of(div, "math500", "0.3"), 8.0 / 12, 1e-9);

  // Question length: equal-count buckets (3) of the 12 GSM8K questions' words; each run's
  // accuracy per bucket from its rule.
  std::vector<int> sorted = f.gsm_words;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> upper;
  for (std::size_t k = 1; k <= 3; ++k)
    if (upper.empty() || sorted[k * 12 / 3 - 1] > upper.back())
      upper.push_back(sorted[k * 12 / 3 - 1]);
  const json& len = chart(check, "accuracy-length-gsm8k");
  EXPECT_EQ(len["marks"], runs * upper.size());
  for (std::size_t k = 0; k < upper.size(); ++k) {
    const int lo = k == 0 ? sorted.front() : upper[k - 1] + 1;
    double right = 0, n = 0;
    for (std::size_t i = 0; i < kLimit; ++i)
      if (f.gsm_words[i] >= lo && f.gsm_words[i] <= upper[k]) {
        right += kRightA(i);
        ++n;
      }
    EXPECT_NEAR(value_of(len, "small", std::to_string(k)), right / n, 1e-9) << "bucket " << k;
  }

  EXPECT_EQ(chart(check, "bootstrap-yield")["marks"], 3);  // Rephrase had no samples
  EXPECT_NEAR(value_of(chart(check, "bootstrap-yield"), "boot", "SV"), 0.25, 1e-9);
  // Assembled (3 types) + the large run's training set (2 types); the small run's training set
  // is the assembled file and is not drawn twice.
  EXPECT_EQ(chart(check, "dataset-composition")["marks"], 5);
  EXPECT_EQ(chart(check, "ppl-type")["marks"], 3);  // two types + overall
  EXPECT_EQ(chart(check, "diversity-type")["marks"], 2 * 3);
  EXPECT_EQ(chart(check, "diversity-curve")["marks"], 2 * 2);
  for (const char* id : {"train-loss", "train-lr"}) {
    const json& t = chart(check, id);
    EXPECT_EQ(t["marks"], 2);
    EXPECT_EQ(t["linePoints"], json({15, 10}));  // large, then small
  }

  // The screenshot for the README.
  const fs::path png = f.dir / "report.png";
  auto shot = testing::run_command(fmt::format(
      "{} --headless --disable-gpu --no-sandbox --hide-scrollbars --window-size=1440,{} "
      "--screenshot={} file://{}",
      *browser, std::min(check["height"].get<int>() + 20, 6000), png.string(), o.out.string()));
  ASSERT_EQ(shot.code, 0) << shot.output;
  const std::string bytes = read_file(png);
  ASSERT_GT(bytes.size(), 20000u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  if (const char* keep = std::getenv("METAMATH_REPORT_SCREENSHOT"); keep && *keep)
    fs::copy_file(png, keep, fs::copy_options::overwrite_existing);
}

TEST(Report, IntervalsAreEvalComparesPairedBootstrap) {
  METAMATH_REQUIRE_DATA(data);
  const Fixture f = make_fixture(data);
  ReportOptions o;
  o.inputs = {f.dir / "runs"};
  o.baseline = "small";
  o.compare.rounds = 3000;
  ReportResult res;
  const std::string html = render_report(collect_runs(o.inputs), o, &res);
  // The whisker of "large" on gsm8k is small's accuracy + eval --compare's interval of
  // large - small.
  const json a = read_json_file(f.dir / "runs" / "small" / "eval" / "summary.json");
  const json b = read_json_file(f.dir / "runs" / "large" / "eval" / "summary.json");
  const json table = eval::compare_summaries(a, b, "small", "large", o.compare).table;
  const json& row = table[0];
  ASSERT_EQ(row["benchmark"], "gsm8k");
  const std::string lo =
      fmt::format("data-lo=\"{:.10g}\"", std::clamp(0.5 + row["ci"][0].get<double>(), 0.0, 1.0));
  const std::string hi =
      fmt::format("data-hi=\"{:.10g}\"", std::clamp(0.5 + row["ci"][1].get<double>(), 0.0, 1.0));
  const std::string whisker = "data-series=\"large\" data-category=\"gsm8k\" " + lo + " " + hi;
  EXPECT_NE(html.find(whisker), std::string::npos) << whisker;
  // Unpaired runs get no whisker: the baseline itself.
  EXPECT_EQ(html.find("class=\"ci\" data-series=\"small\""), std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              ReportOptions bad = o;
              bad.baseline = "nope";
              render_report(collect_runs(bad.inputs), bad, nullptr);
            }).find("--baseline nope"),
            std::string::npos);
}

TEST(Report, SaysWhatIsMissingAndRejectsFoldersWithoutRuns) {
  const fs::path dir = testing::temp_dir("report_empty");
  write(dir / "boot" / "stats.json",
        json{{"problems", 1},
             {"methods", {{"AnsAug", {{"samples", 4}, {"kept", 1}, {"yield", 0.25}}}}}}
            .dump());
  ReportResult res;
  const std::string html = render_report(collect_runs({dir}), ReportOptions{}, &res);
  ASSERT_EQ(res.charts.size(), 1u);
  EXPECT_EQ(res.charts[0].id, "bootstrap-yield");
  EXPECT_GE(res.missing.size(), 5u);
  EXPECT_NE(html.find("Not shown"), std::string::npos);
  const fs::path empty = testing::temp_dir("report_none");
  EXPECT_NE(testing::error_of([&] { collect_runs({empty}); }).find("no runs found"),
            std::string::npos);
  write(dir / "bad" / "summary.json", "{\"results\": ");
  EXPECT_NE(testing::error_of([&] { collect_runs({dir}); }).find("summary.json"),
            std::string::npos);
}

// Item 5: what eval records about its run, checked against coreutils and the model's record.
TEST(Report, EvalRunsRecordTheirDataHashesAndTheModelsTrainingRecord) {
  METAMATH_REQUIRE_DATA(data);
  const Fixture f = make_fixture(data);
  const json run = read_json_file(f.dir / "runs" / "small" / "eval" / "run.json");
  const json& prov = run["provenance"];
  auto sum = testing::run_command("sha256sum " + (data / "gsm8k" / "test.jsonl").string());
  ASSERT_EQ(sum.code, 0) << sum.output;
  EXPECT_EQ(prov["data"]["gsm8k"]["sha256"], sum.output.substr(0, 64));
  EXPECT_EQ(prov["data"]["gsm8k"]["bytes"], fs::file_size(data / "gsm8k" / "test.jsonl"));
  EXPECT_EQ(prov["backend"]["kind"], "local");
  EXPECT_EQ(prov["training"]["data"]["examples"], 1000);
  // A training checkpoint folder finds its run's record one level up; other folders have none.
  const fs::path model = f.dir / "runs" / "small" / "model";
  fs::create_directories(model / "checkpoint-3");
  EXPECT_EQ(eval::find_training_record(model / "checkpoint-3")["data"]["examples"], 1000);
  EXPECT_TRUE(eval::find_training_record(f.dir / "runs" / "boot").is_null());
  // summary.json stays a function of the samples alone (no provenance in it).
  EXPECT_FALSE(
      read_json_file(f.dir / "runs" / "small" / "eval" / "summary.json").contains("provenance"));
  // Samples record the question's words.
  const auto rows = read_jsonl(f.dir / "runs" / "small" / "eval" / "gsm8k.samples.jsonl");
  for (std::size_t i = 0; i < rows.size(); ++i)
    EXPECT_EQ(rows[i]["question_words"], f.gsm_words[i]) << i;
}

TEST(ReportSvg, NiceTicksCoverTheRange) {
  const std::vector<double> unit = svg::nice_ticks(0, 1, 5);
  ASSERT_EQ(unit.size(), 6u);
  for (std::size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], 0.2 * i, 1e-12);
  const auto t = svg::nice_ticks(0, 0.37, 5);
  EXPECT_DOUBLE_EQ(t.front(), 0);
  EXPECT_GE(t.back(), 0.37);
  EXPECT_EQ(svg::log_ticks(100, 10000),
            (std::vector<double>{100, 200, 500, 1000, 2000, 5000, 10000}));
  EXPECT_EQ(svg::escape("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
}

}  // namespace
}  // namespace metamath::analysis
