#include "bootstrap/official_prompts.h"

#include <fmt/format.h>

#include <array>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/text.h"

namespace metamath::bootstrap {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The cue after a question to solve (the newest revision of the scripts; the first one ended
// with "\nA:" alone, see docs/official_prompts.md).
constexpr std::string_view kSolveCue = "\nA: Let's think step by step.\n";
constexpr std::string_view kRephraseCue = "\nRephrase the above question: ";
constexpr std::string_view kRewriteCue = "\n Result: ";
constexpr std::string_view kFobarSentence = "\nIf we know the answer to the above question is ";

constexpr std::array<OfficialKind, 5> kKinds = {OfficialKind::Solve, OfficialKind::Rephrase,
                                                OfficialKind::SvRewrite, OfficialKind::SvSolve,
                                                OfficialKind::FobarSolve};

std::string_view file_stem(OfficialKind kind) {
  switch (kind) {
    case OfficialKind::Solve:
      return "ansaug_cot";
    case OfficialKind::Rephrase:
      return "rephrase_cot";
    case OfficialKind::SvRewrite:
      return "sv_rewrite_question_prompt";
    case OfficialKind::SvSolve:
      return "sv_cot";
    case OfficialKind::FobarSolve:
      return "fobar_cot";
  }
  return "?";
}

// What every shot of a kind's file must hold besides its "Question:" line: a line starting with
// the answer label, and a phrase that tells the kinds apart ("" = none).
struct ShotRule {
  std::string_view label, phrase, phrase_where;
};

ShotRule shot_rule(OfficialKind kind) {
  switch (kind) {
    case OfficialKind::Solve:
      return {"A:", "", ""};
    case OfficialKind::Rephrase:
      return {"Rephrase the above question:", "", ""};
    case OfficialKind::SvRewrite:
      return {"Result:", "The answer is", "its Question line"};
    case OfficialKind::SvSolve:
    case OfficialKind::FobarSolve:
      return {"A:", "unknown variable", "its question"};
  }
  return {};
}

std::vector<std::string> lines_of(std::string_view s) {
  std::vector<std::string> out = text::split(s, '\n');
  for (auto& l : out)
    if (!l.empty() && l.back() == '\r') l.pop_back();
  return out;
}

// Checks one file's shots against its kind's rule (line numbers are the file's own).
void check_shots(const fs::path& file, const std::string& raw, OfficialKind kind) {
  const ShotRule rule = shot_rule(kind);
  const std::vector<std::string> lines = lines_of(raw);
  std::size_t shots = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (!text::starts_with(lines[i], "Question:")) continue;
    ++shots;
    std::size_t end = i + 1;
    while (end < lines.size() && !text::starts_with(lines[end], "Question:")) ++end;
    bool labelled = false;
    std::string question = lines[i];
    for (std::size_t k = i + 1; k < end; ++k) {
      if (text::starts_with(lines[k], rule.label)) {
        labelled = true;
        break;
      }
      question += "\n" + lines[k];
    }
    if (!labelled)
      fail("{}:{}: shot {} has no line starting with \"{}\" after its question", file.string(),
           i + 1, shots, rule.label);
    std::string_view where =
        kind == OfficialKind::SvRewrite ? std::string_view(lines[i]) : question;
    if (!rule.phrase.empty() && where.find(rule.phrase) == std::string_view::npos)
      fail("{}:{}: shot {} does not hold \"{}\" in {} (is this the {} file?)", file.string(), i + 1,
           shots, rule.phrase, rule.phrase_where, file_stem(kind));
  }
  if (shots == 0)
    fail("{}: no shot: expected lines starting with \"Question:\", each followed by \"{}\"",
         file.string(), rule.label);
}

// A Python string literal starting at s[at] (a quote), unescaped; nullopt when unterminated.
std::optional<std::string> python_string(std::string_view s, std::size_t at) {
  const char quote = s[at];
  std::string out;
  for (std::size_t i = at + 1; i < s.size(); ++i) {
    char c = s[i];
    if (c == quote) return out;
    if (c == '\n') return std::nullopt;
    if (c == '\\' && i + 1 < s.size()) {
      char e = s[++i];
      out.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
      continue;
    }
    out.push_back(c);
  }
  return std::nullopt;
}

// Whether code[at...] reads `'key'` or `"key"`, then spaces, a ':' and spaces; returns the
// position after them, or npos.
std::size_t after_key(std::string_view code, std::size_t at, std::string_view key) {
  if (at >= code.size() || (code[at] != '"' && code[at] != '\'')) return std::string_view::npos;
  const char quote = code[at];
  if (code.substr(at + 1, key.size()) != key || at + key.size() + 1 >= code.size() ||
      code[at + key.size() + 1] != quote)
    return std::string_view::npos;
  std::size_t i = code.find_first_not_of(" \t", at + key.size() + 2);
  if (i == std::string_view::npos || code[i] != ':') return std::string_view::npos;
  return code.find_first_not_of(" \t", i + 1);
}

// The content of the message whose role is "system" in the scripts' chat call
// ({"role": "system", "content": "..."}), or nullopt.
std::optional<std::string> system_from_script(std::string_view code) {
  for (std::size_t at = code.find_first_of("\"'"); at != std::string_view::npos;
       at = code.find_first_of("\"'", at + 1)) {
    std::size_t v = after_key(code, at, "role");
    if (v == std::string_view::npos || (code[v] != '"' && code[v] != '\'') ||
        code.substr(v + 1, 7) != std::string("system") + code[v])
      continue;
    std::size_t c = code.find("content", v);
    if (c == std::string_view::npos || c == 0 || c > v + 100) continue;
    std::size_t text = after_key(code, c - 1, "content");
    if (text == std::string_view::npos || (code[text] != '"' && code[text] != '\'')) continue;
    return python_string(code, text);
  }
  return std::nullopt;
}

void load_system(OfficialPrompts& p) {
  const fs::path own = p.dir / "system.txt";
  if (fs::exists(own)) {
    p.system = std::string(text::trim(read_file(own)));
    p.system_source = own.string();
    return;
  }
  const fs::path script = p.dir.parent_path() / "code" / "utils" / "parallel_utils.py";
  if (fs::exists(script)) {
    if (auto s = system_from_script(read_file(script))) {
      p.system = *s;
      p.system_source = script.string();
      return;
    }
    fail("{}: no \"system\" message found in this script; put the system message in {}",
         script.string(), own.string());
  }
  fail(
      "{}: no system message: put it in {} (an empty file sends none), or point --prompts at the "
      "configs folder of a MetaMath checkout (its code/utils/parallel_utils.py holds it)",
      p.dir.string(), own.string());
}

}  // namespace

std::string official_file_name(OfficialKind kind, answer::Style style) {
  return fmt::format("{}_{}.txt", file_stem(kind), style == answer::Style::Math ? "math" : "gsm8k");
}

const std::vector<std::string>& official_file_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (OfficialKind k : kKinds)
      for (answer::Style s : {answer::Style::Gsm8k, answer::Style::Math})
        v.push_back(official_file_name(k, s));
    return v;
  }();
  return names;
}

std::optional<fs::path> find_official_prompts(const fs::path& dir) {
  for (const fs::path& d : {dir, dir / "configs", dir / "code_for_generating_data" / "configs"})
    for (const std::string& name : official_file_names())
      if (fs::exists(d / name)) return d;
  return std::nullopt;
}

OfficialPrompts load_official_prompts(const fs::path& dir) {
  OfficialPrompts p;
  p.dir = dir;
  for (OfficialKind kind : kKinds) {
    for (answer::Style style : {answer::Style::Gsm8k, answer::Style::Math}) {
      const std::string name = official_file_name(kind, style);
      const fs::path file = dir / name;
      if (!fs::exists(file))
        fail("{}: missing {} (the official prompt folder holds all of: {})", dir.string(), name,
             fmt::join(official_file_names(), ", "));
      std::string raw = read_file(file);
      if (!text::is_valid_utf8(raw)) fail("{}: not valid UTF-8", file.string());
      if (text::trim(raw).empty()) fail("{}: empty", file.string());
      check_shots(file, raw, kind);
      p.files[name] = std::string(text::trim(raw));
    }
  }
  load_system(p);
  return p;
}

std::string_view official_reply_label(OfficialKind kind) { return shot_rule(kind).label; }

std::string official_backward_question(std::string_view record_query, OfficialKind kind,
                                       answer::Style style) {
  const bool math = style == answer::Style::Math;
  const std::string_view ends = math ? "unknown variable X?" : "unknown variable x?";
  std::string q(record_query);
  if (!text::ends_with(q, ends) ||
      (kind != OfficialKind::SvSolve && kind != OfficialKind::FobarSolve))
    fail("not a backward question (expected one ending \"{}\"): {}", ends, q);
  if (!math) return q;  // GSM8K: the scripts' form is MetaMathQA's
  q.replace(q.size() - 2, 1, "$X$");
  if (kind == OfficialKind::FobarSolve) {
    std::size_t at = q.rfind(kFobarSentence);
    if (at == std::string::npos)
      fail("not a FOBAR question (no \"{}\"): {}", text::trim(kFobarSentence), record_query);
    q.insert(at + 1, "### ");
  }
  return q;
}

std::vector<llm::ChatMessage> official_messages(const OfficialPrompts& p, OfficialKind kind,
                                                answer::Style style, std::string_view question,
                                                std::string_view answer) {
  const std::string name = official_file_name(kind, style);
  auto file = p.files.find(name);
  if (file == p.files.end()) fail("{}: the prompt set has no {}", p.dir.string(), name);
  std::string q;
  std::string_view cue = kSolveCue;
  switch (kind) {
    case OfficialKind::Solve:
      q = std::string(question);
      break;
    case OfficialKind::Rephrase:
      q = std::string(question);
      cue = kRephraseCue;
      break;
    case OfficialKind::SvRewrite:
      q = fmt::format("{} The answer is {}.", text::trim(question), answer);
      cue = kRewriteCue;
      break;
    case OfficialKind::SvSolve:
    case OfficialKind::FobarSolve:
      q = official_backward_question(question, kind, style);
      break;
  }
  std::vector<llm::ChatMessage> out;
  if (!p.system.empty()) out.push_back({"system", p.system});
  out.push_back({"user", fmt::format("{}\n\nQuestion: {}{}", file->second, q, cue)});
  return out;
}

json official_prompts_json(const OfficialPrompts& p) {
  return {{"set", "official"},
          {"dir", p.dir.string()},
          {"system", p.system},
          {"system_source", p.system_source},
          {"files", p.files}};
}

OfficialPrompts official_prompts_from_json(const json& j, const std::string& where) {
  auto str = [&](const json& o, const std::string& key, const std::string& path) {
    if (!o.is_object() || !o.contains(key) || !o[key].is_string())
      fail("{}: {}\"{}\" is missing or not a string", where, path, key);
    return o[key].get<std::string>();
  };
  OfficialPrompts p;
  p.dir = str(j, "dir", "");
  p.system = str(j, "system", "");
  p.system_source = str(j, "system_source", "");
  if (!j.contains("files")) fail("{}: \"files\" is missing", where);
  for (const std::string& name : official_file_names())
    p.files[name] = str(j["files"], name, "\"files\".");
  return p;
}

}  // namespace metamath::bootstrap
