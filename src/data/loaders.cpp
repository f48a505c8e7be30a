#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/text.h"
#include "data/problem.h"

namespace metamath::data {
namespace fs = std::filesystem;

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"gsm8k", "math",  "math500",   "gsm8k_backward",
                                                 "svamp", "asdiv", "metamathqa"};
  return names;
}

fs::path data_root() {
  if (const char* env = std::getenv("METAMATH_DATA"); env && *env) return fs::path(env);
  return fs::path("..") / "shared" / "data";
}

fs::path default_path(std::string_view dataset, std::string_view split) {
  if (dataset == "metamathqa") fail("metamathqa has no default file: pass its path");
  std::string file = std::string(split) + ".jsonl";
  // The backward and small benchmarks only have a test split.
  if (dataset == "gsm8k_backward" || dataset == "svamp" || dataset == "asdiv" ||
      dataset == "math500")
    file = "test.jsonl";
  return data_root() / std::string(dataset) / file;
}

namespace {

// Iterates a JSONL file, handing each record and its "file:line" to fn.
template <typename Fn>
void each_record(const fs::path& file, JsonlOptions opts, Fn&& fn) {
  JsonlReader r(file, opts);
  json rec;
  while (r.next(rec)) fn(rec, r.where(), r.line());
}

std::string opt_string(const json& rec, const char* field) {
  auto it = rec.find(field);
  if (it == rec.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

std::string stem_split(const fs::path& file) {
  std::string s = file.stem().string();
  return s.empty() ? "data" : s;
}

Problem math_record(const json& rec, const std::string& where, std::string id) {
  Problem p;
  p.dataset = "math";
  p.style = "math";
  p.question = require_string(rec, "problem", where);
  p.solution = require_string(rec, "solution", where);
  p.level = opt_string(rec, "level");
  p.subject = opt_string(rec, "type");
  auto boxed = text::last_boxed(p.solution);
  if (!boxed) fail("{}: field \"solution\" has no \\boxed{{...}} answer", where);
  p.answer = *boxed;
  std::string uid = opt_string(rec, "unique_id");
  p.id = uid.empty() ? std::move(id) : uid;
  return p;
}

}  // namespace

std::vector<Problem> load_gsm8k(const fs::path& file, JsonlOptions opts) {
  std::vector<Problem> out;
  std::string split = stem_split(file);
  each_record(file, opts, [&](const json& rec, const std::string& where, std::size_t) {
    Problem p;
    p.dataset = "gsm8k";
    p.style = "gsm8k";
    p.id = "gsm8k/" + split + "/" + std::to_string(out.size());
    p.question = require_string(rec, "question", where);
    p.solution = require_string(rec, "answer", where);
    auto gold = text::after_hashes(p.solution);
    if (!gold) fail("{}: field \"answer\" has no \"#### N\" final answer", where);
    p.answer = *gold;
    out.push_back(std::move(p));
  });
  return out;
}

std::vector<Problem> load_math(const fs::path& path, JsonlOptions opts) {
  std::vector<Problem> out;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    // Original release layout: <split>/<subject>/<n>.json, sorted by subject then numeric id.
    std::vector<fs::path> files;
    for (auto& e : fs::recursive_directory_iterator(path))
      if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
    if (files.empty())
      fail("{}: no <subject>/<n>.json problem files in this folder", path.string());
    std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
      if (a.parent_path() != b.parent_path()) return a.parent_path() < b.parent_path();
      auto na = std::strtoll(a.stem().c_str(), nullptr, 10),
           nb = std::strtoll(b.stem().c_str(), nullptr, 10);
      return na != nb ? na < nb : a < b;
    });
    std::string split = path.filename().string();
    if (split.empty()) split = path.parent_path().filename().string();
    for (const auto& f : files) {
      json rec;
      try {
        rec = json::parse(read_file(f));
      } catch (const json::parse_error& e) {
        fail("{}: malformed JSON ({})", f.string(), e.what());
      }
      if (!rec.is_object()) fail("{}: expected a JSON object", f.string());
      std::string id =
          split + "/" + f.parent_path().filename().string() + "/" + f.filename().string();
      out.push_back(math_record(rec, f.string(), id));
    }
    return out;
  }
  std::string split = stem_split(path);
  each_record(path, opts, [&](const json& rec, const std::string& where, std::size_t) {
    out.push_back(math_record(rec, where, "math/" + split + "/" + std::to_string(out.size())));
  });
  return out;
}

std::vector<Problem> load_math500(const fs::path& file, JsonlOptions opts) {
  std::vector<Problem> out;
  each_record(file, opts, [&](const json& rec, const std::string& where, std::size_t) {
    Problem p;
    p.dataset = "math500";
    p.style = "math";
    p.question = require_string(rec, "problem", where);
    p.solution = opt_string(rec, "solution");
    p.answer = require_string(rec, "answer", where);  // curated answer
    p.subject = opt_string(rec, "subject");
    const json& lv = require_field(rec, "level", where);
    p.level = lv.is_number() ? "Level " + lv.dump() : opt_string(rec, "level");
    p.id = opt_string(rec, "unique_id");
    if (p.id.empty()) p.id = "math500/" + std::to_string(out.size());
    out.push_back(std::move(p));
  });
  return out;
}

std::vector<Problem> load_gsm8k_backward(const fs::path& file, JsonlOptions opts) {
  std::vector<Problem> out;
  each_record(file, opts, [&](const json& rec, const std::string& where, std::size_t) {
    Problem p;
    p.dataset = "gsm8k_backward";
    p.style = "gsm8k";
    p.id = "gsm8k_backward/" + std::to_string(out.size());
    p.question = require_string(rec, "question", where);
    p.answer =
        text::replace_all(std::string(text::trim(require_string(rec, "answer", where))), ",", "");
    p.original_question = opt_string(rec, "original_question");
    if (p.answer.empty()) fail("{}: field \"answer\" is empty", where);
    out.push_back(std::move(p));
  });
  return out;
}

std::string format_number(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15)
    return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{}", v);  // shortest round-trip form
}

std::vector<Problem> load_svamp(const fs::path& file, JsonlOptions opts) {
  std::vector<Problem> out;
  each_record(file, opts, [&](const json& rec, const std::string& where, std::size_t) {
    Problem p;
    p.dataset = "svamp";
    p.style = "gsm8k";
    std::string body(text::trim(require_string(rec, "Body", where)));
    std::string q(text::trim(require_string(rec, "Question", where)));
    // Bodies sometimes lack a final period before the question.
    if (!body.empty() && body.back() != '.' && body.back() != '?' && body.back() != '!')
      body += ".";
    p.question = body.empty() ? q : body + " " + q;
    const json& a = require_field(rec, "Answer", where);
    if (!a.is_number())
      fail("{}: field \"Answer\" should be a number, got {}", where, a.type_name());
    p.answer = format_number(a.get<double>());
    p.solution = opt_string(rec, "Equation");
    p.type = opt_string(rec, "Type");
    p.id = opt_string(rec, "ID");
    if (p.id.empty()) p.id = "svamp/" + std::to_string(out.size());
    out.push_back(std::move(p));
  });
  return out;
}

std::string asdiv_answer(std::string_view raw) {
  std::string out;
  for (const std::string& part : text::split(raw, ';')) {
    std::string_view s = text::trim(part);
    // Drop a trailing "(unit)" annotation: "9 (apples)" -> "9".
    if (!s.empty() && s.back() == ')') {
      std::size_t open = s.rfind('(');
      if (open != std::string_view::npos && open > 0 && s[open - 1] == ' ')
        s = text::trim(s.substr(0, open));
    }
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

std::vector<Problem> load_asdiv(const fs::path& file, JsonlOptions opts) {
  std::vector<Problem> out;
  each_record(file, opts, [&](const json& rec, const std::string& where, std::size_t) {
    Problem p;
    p.dataset = "asdiv";
    p.style = "gsm8k";
    std::string body(text::trim(require_string(rec, "body", where)));
    std::string q(text::trim(require_string(rec, "question", where)));
    p.question = body.empty() ? q : body + " " + q;
    p.answer = asdiv_answer(require_string(rec, "answer", where));
    p.solution = opt_string(rec, "formula");
    p.type = opt_string(rec, "solution_type");
    p.id = "asdiv/" + (rec.contains("idx") ? opt_string(rec, "idx") : std::to_string(out.size()));
    out.push_back(std::move(p));
  });
  return out;
}

std::vector<Problem> load_metamathqa(const fs::path& file, JsonlOptions opts) {
  std::vector<Problem> out;
  each_record(file, opts, [&](const json& rec, const std::string& where, std::size_t) {
    Problem p;
    p.dataset = "metamathqa";
    p.question = require_string(rec, "query", where);
    p.solution = require_string(rec, "response", where);
    p.type = opt_string(rec, "type");
    p.original_question = opt_string(rec, "original_question");
    p.style = text::starts_with(p.type, "MATH") ? "math" : "gsm8k";
    // MetaMathQA responses end with "The answer is: X".
    std::size_t k = p.solution.rfind("The answer is:");
    if (k != std::string::npos) p.answer = std::string(text::trim(p.solution.substr(k + 14)));
    p.id = "metamathqa/" + std::to_string(out.size());
    out.push_back(std::move(p));
  });
  return out;
}

std::vector<Problem> load_dataset(std::string_view name, const fs::path& path,
                                  std::string_view split, JsonlOptions opts) {
  fs::path p = path.empty() ? default_path(name, split) : path;
  if (name == "gsm8k") return load_gsm8k(p, opts);
  if (name == "math") return load_math(p, opts);
  if (name == "math500") return load_math500(p, opts);
  if (name == "gsm8k_backward") return load_gsm8k_backward(p, opts);
  if (name == "svamp") return load_svamp(p, opts);
  if (name == "asdiv") return load_asdiv(p, opts);
  if (name == "metamathqa") return load_metamathqa(p, opts);
  fail(
      "unknown dataset \"{}\" (known: gsm8k, math, math500, gsm8k_backward, svamp, asdiv, "
      "metamathqa)",
      name);
}

}  // namespace metamath::data
