#include "eval/benchmark.h"

#include <fmt/format.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/text.h"
#include "data/prompt.h"

namespace metamath::eval {
namespace fs = std::filesystem;

const char* style_name(answer::Style s) { return s == answer::Style::Math ? "math" : "gsm8k"; }

const std::vector<Benchmark>& benchmarks() {
  using answer::Style;
  static const std::vector<Benchmark> v = {
      {"gsm8k", "gsm8k", Style::Gsm8k, 512, false, "GSM8K test (1319 grade-school problems)"},
      {"math", "math", Style::Math, 2048, true, "MATH test (5000 competition problems)"},
      {"math500", "math500", Style::Math, 2048, true, "MATH-500 subset of MATH test"},
      {"gsm8k_backward", "gsm8k_backward", Style::Gsm8k, 512, false,
       "GSM8K_Backward (1270 masked-number questions)"},
      {"svamp", "svamp", Style::Gsm8k, 512, false, "SVAMP (1000 one-step variations)"},
      {"asdiv", "asdiv", Style::Gsm8k, 512, false, "ASDiv (2215 diverse word problems)"},
  };
  return v;
}

const Benchmark& find_benchmark(std::string_view name) {
  for (const auto& b : benchmarks())
    if (b.name == name) return b;
  std::vector<std::string> names;
  for (const auto& b : benchmarks()) names.push_back(b.name);
  fail("unknown benchmark \"{}\" (known: {}, or all)", name, fmt::join(names, ", "));
}

std::vector<Benchmark> parse_benchmark_list(std::string_view list) {
  std::vector<Benchmark> out;
  std::set<std::string> seen;
  for (const std::string& part : text::split(list, ',')) {
    std::string name(text::trim(part));
    if (name.empty()) continue;
    if (name == "all") {
      for (const auto& b : benchmarks())
        if (seen.insert(b.name).second) out.push_back(b);
      continue;
    }
    const Benchmark& b = find_benchmark(name);
    if (!seen.insert(b.name).second) fail("benchmark \"{}\" is listed twice", name);
    out.push_back(b);
  }
  if (out.empty())
    fail("no benchmark given (known: gsm8k, math, math500, gsm8k_backward, svamp, asdiv)");
  return out;
}

std::map<std::string, fs::path> parse_data_flags(const std::vector<std::string>& flags,
                                                 const std::vector<Benchmark>& run) {
  std::map<std::string, fs::path> data;
  for (const std::string& d : flags) {
    std::size_t eq = d.find('=');
    if (eq == std::string::npos) {
      if (run.size() != 1)
        fail("--data {}: with several benchmarks write NAME=PATH (e.g. gsm8k=test.jsonl)", d);
      data[run[0].name] = d;
    } else {
      std::string name(text::trim(d.substr(0, eq)));
      find_benchmark(name);
      data[name] = d.substr(eq + 1);
    }
  }
  return data;
}

const std::vector<std::string>& default_stop() {
  static const std::vector<std::string> v = {
      "Question:", "Question",     "USER:",       "USER",      "ASSISTANT:",
      "ASSISTANT", "Instruction:", "Instruction", "Response:", "Response"};
  return v;
}

std::vector<data::Problem> load_problems(const Benchmark& b, const fs::path& path) {
  fs::path p = path.empty() ? data::default_path(b.dataset, "test") : path;
  std::error_code ec;
  if (!fs::exists(p, ec))
    fail("{}: data file of benchmark {} not found; pass --data {}=PATH or set METAMATH_DATA",
         p.string(), b.name, b.name);
  std::vector<data::Problem> v = data::load_dataset(b.dataset, p, "test");
  if (v.empty()) fail("{}: no problems in the data file of benchmark {}", p.string(), b.name);
  std::set<std::string> ids;
  for (const auto& pr : v)
    if (!ids.insert(pr.id).second) fail("{}: problem id \"{}\" appears twice", p.string(), pr.id);
  return v;
}

namespace {

std::string substitute(std::string_view tmpl, std::string_view question) {
  static constexpr std::string_view kSlot = "{question}";
  std::string out;
  std::size_t i = 0;
  while (true) {
    std::size_t k = tmpl.find(kSlot, i);
    if (k == std::string_view::npos) break;
    out.append(tmpl.substr(i, k - i));
    out.append(question);
    i = k + kSlot.size();
  }
  out.append(tmpl.substr(i));
  return out;
}

constexpr std::string_view kRoles[] = {"system", "user", "assistant"};

// "<<user>>" -> "user"; other lines -> empty.
std::string_view marker_role(std::string_view line) {
  line = text::trim(line);
  for (std::string_view r : kRoles)
    if (line.size() == r.size() + 4 && text::starts_with(line, "<<") &&
        text::ends_with(line, ">>") && line.substr(2, r.size()) == r)
      return r;
  return {};
}

}  // namespace

std::string PromptTemplate::render(std::string_view question) const {
  if (chat) fail("prompt template {}: a chat template has no raw prompt", name);
  return substitute(text, question);
}

std::vector<llm::ChatMessage> PromptTemplate::render_chat(std::string_view question) const {
  if (!chat) fail("prompt template {}: not a chat template", name);
  std::vector<llm::ChatMessage> out;
  std::string_view role;
  std::string body;
  auto flush = [&] {
    if (role.empty()) return;
    // Drop the newline that ends the marker line and the one before the next marker.
    std::string_view b = body;
    while (!b.empty() && b.back() == '\n') b.remove_suffix(1);
    out.push_back({std::string(role), substitute(b, question)});
  };
  for (const std::string& line : text::split(text, '\n')) {
    std::string_view r = marker_role(line);
    if (!r.empty()) {
      flush();
      role = r;
      body.clear();
      continue;
    }
    body += line;
    body += '\n';
  }
  flush();
  return out;
}

PromptTemplate parse_template(std::string_view src, std::string name, std::string where) {
  PromptTemplate t;
  t.name = std::move(name);
  t.source = std::move(where);
  std::vector<std::string> lines = text::split(src, '\n');
  std::size_t i = 0;
  for (; i < lines.size() && text::starts_with(lines[i], "%"); ++i) {
    std::string_view c = text::trim(std::string_view(lines[i]).substr(1));
    if (text::starts_with(c, "stop:")) {
      std::string_view js = text::trim(c.substr(5));
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(js);
      } catch (const nlohmann::json::exception& e) {
        fail("{}:{}: \"% stop:\" wants a JSON array of strings ({})", t.source, i + 1, e.what());
      }
      if (!j.is_array()) fail("{}:{}: \"% stop:\" wants a JSON array of strings", t.source, i + 1);
      std::vector<std::string> stop;
      for (const auto& s : j) {
        if (!s.is_string() || s.get<std::string>().empty())
          fail("{}:{}: \"% stop:\" entries must be non-empty strings", t.source, i + 1);
        stop.push_back(s.get<std::string>());
      }
      t.stop = std::move(stop);
    }
  }
  std::string body;
  for (std::size_t k = i; k < lines.size(); ++k) {
    body += lines[k];
    if (k + 1 < lines.size()) body += '\n';
  }
  // A file's final newline is not part of the prompt.
  while (!body.empty() && body.back() == '\n') body.pop_back();
  t.text = std::move(body);
  for (const std::string& line : text::split(t.text, '\n'))
    if (!marker_role(line).empty()) t.chat = true;
  if (t.text.find("{question}") == std::string::npos)
    fail("{}: prompt template has no {{question}} placeholder", t.source);
  if (t.chat) {
    auto msgs = t.render_chat("");
    if (msgs.empty() || marker_role(text::split(t.text, '\n').front()).empty())
      fail("{}: chat template text must start with a <<system>>, <<user>> or <<assistant>> line",
           t.source);
  }
  return t;
}

std::vector<fs::path> template_dirs() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("METAMATH_PROMPTS"); env && *env)
    dirs.push_back(fs::path(env) / "eval");
  dirs.push_back(fs::path("prompts") / "eval");
#ifdef METAMATH_SOURCE_DIR
  dirs.push_back(fs::path(METAMATH_SOURCE_DIR) / "prompts" / "eval");
#endif
  return dirs;
}

PromptTemplate load_template(std::string_view name, answer::Style style) {
  if (name == "alpaca") {
    PromptTemplate t;
    t.name = "alpaca";
    t.source = "(built in)";
    t.text = data::alpaca_eval_prompt("{question}");
    return t;
  }
  std::error_code ec;
  fs::path direct(name);
  if (fs::is_regular_file(direct, ec))
    return parse_template(read_file(direct), std::string(name), direct.string());
  std::vector<std::string> tried;
  for (const fs::path& dir : template_dirs()) {
    for (const std::string& file :
         {fmt::format("{}_{}.txt", name, style_name(style)), fmt::format("{}.txt", name)}) {
      fs::path p = dir / file;
      if (fs::is_regular_file(p, ec))
        return parse_template(read_file(p), std::string(name), p.string());
      tried.push_back(p.string());
    }
  }
  fail("prompt template \"{}\" not found (tried {}); known: {}", name, fmt::join(tried, ", "),
       fmt::join(available_templates(), ", "));
}

std::vector<std::string> available_templates() {
  std::set<std::string> names = {"alpaca"};
  std::error_code ec;
  for (const fs::path& dir : template_dirs()) {
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".txt") names.insert(e.path().stem().string());
  }
  return {names.begin(), names.end()};
}

}  // namespace metamath::eval
