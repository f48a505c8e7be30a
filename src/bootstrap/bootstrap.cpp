#include "bootstrap/bootstrap.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <unordered_map>

#include "answer/equiv.h"
#include "bootstrap/mask.h"
#include "bootstrap/metamathqa.h"
#include "bootstrap/store.h"
#include "bootstrap/symbolic.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/text.h"

namespace metamath::bootstrap {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

enum Kind { kSolve = 0, kBackwardSolve = 1, kRephrase = 2, kRewrite = 3, kSymbolic = 4 };
enum State { kPending = 0, kInFlight = 1, kDone = 2, kFailed = 3 };

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

answer::Style style_of(const std::string& s) { return answer::parse_style(s); }

std::string cut_transcript(std::string_view text) {
  std::string_view t = text;
  for (std::string_view stop : {"\nQuestion:", "\n\nQuestion", "\n### Instruction"}) {
    std::size_t p = t.find(stop);
    if (p != std::string_view::npos) t = t.substr(0, p);
  }
  return std::string(text::trim(t));
}

// The first paragraph of a rephrasing or statement, on one line.
std::string first_paragraph(std::string_view text, std::string_view label) {
  std::string t = cut_transcript(text);
  std::size_t p = t.find("\n\n");
  if (p != std::string::npos) t.resize(p);
  std::string_view v = text::trim(t);
  if (text::starts_with(v, label)) v = text::trim(v.substr(label.size()));
  return text::collapse_spaces(v);
}

std::string norm_key(std::string_view s) {
  std::string out;
  for (char c : s)
    if (std::isalnum(static_cast<unsigned char>(c)))
      out.push_back(static_cast<char>(std::tolower(c)));
  return out;
}

const char* error_kind_name(llm::ErrorKind k) {
  switch (k) {
    case llm::ErrorKind::None:
      return "none";
    case llm::ErrorKind::BadRequest:
      return "bad request";
    case llm::ErrorKind::Transient:
      return "transient";
    case llm::ErrorKind::Fatal:
      return "fatal";
  }
  return "?";
}

struct JobRow {
  int64_t jid = 0;
  std::string key;
  int64_t pid = 0;
  Method method = Method::AnsAug;
  Kind kind = kSolve;
  std::string query, gold, answer;
  int64_t aux = 0, attempt = 0, n = 1, max_tokens = 512;
  uint64_t seed = 0;
};

struct ProblemRow {
  std::string id, style, question, answer;
};

// Our six templates, by name.
using TemplateField = std::pair<const char*, const std::string Prompts::*>;
const std::array<TemplateField, 6>& template_fields() {
  static const std::array<TemplateField, 6> fields = {
      TemplateField{"solve_gsm8k", &Prompts::solve_gsm8k},
      TemplateField{"solve_math", &Prompts::solve_math},
      TemplateField{"backward_gsm8k", &Prompts::backward_gsm8k},
      TemplateField{"backward_math", &Prompts::backward_math},
      TemplateField{"rephrase", &Prompts::rephrase},
      TemplateField{"sv_rewrite", &Prompts::sv_rewrite}};
  return fields;
}

const char* prompt_set_name(const Prompts& p) {
  return p.official ? "the official MetaMath prompts" : "our prompt templates";
}

// Why `now` differs from the prompts a store was started with ("" when the same). The official
// set's folder may move; its texts and system message may not change.
std::string prompts_difference(const Prompts& now, const Prompts& then) {
  if (now.official.has_value() != then.official.has_value())
    return fmt::format("this folder was started with {}, not {}", prompt_set_name(then),
                       prompt_set_name(now));
  if (now.official) {
    if (now.official->system != then.official->system)
      return "the system message differs from the one this folder was started with";
    for (const auto& [name, text] : now.official->files)
      if (then.official->files.at(name) != text)
        return fmt::format(
            "official prompt file {} differs from the one this folder was "
            "started with",
            name);
    return "";
  }
  for (const auto& [name, field] : template_fields())
    if (now.*field != then.*field)
      return fmt::format("prompt '{}' differs from the one this folder was started with", name);
  return "";
}

// FNV-1a over every prompt text (and the official system message), as 16 hex digits.
std::string prompts_digest(const Prompts& p) {
  uint64_t h = fnv1a("");
  for (const auto& [name, field] : template_fields()) h = fnv1a(p.*field, fnv1a(name, h));
  if (p.official) {
    h = fnv1a(p.official->system, fnv1a("system", h));
    for (const auto& [name, text] : p.official->files) h = fnv1a(text, fnv1a(name, h));
  }
  return fmt::format("{:016x}", h);
}

}  // namespace

const char* method_name(Method m) {
  switch (m) {
    case Method::AnsAug:
      return "AnsAug";
    case Method::Rephrased:
      return "Rephrased";
    case Method::SV:
      return "SV";
    case Method::FOBAR:
      return "FOBAR";
    case Method::Symbolic:
      return "symbolic";
  }
  return "?";
}

Method parse_method(std::string_view name) {
  std::string n = text::to_lower(name);
  if (n == "ansaug") return Method::AnsAug;
  if (n == "rephrased" || n == "rephrase" || n == "rephrasing") return Method::Rephrased;
  if (n == "sv" || n == "self-verification") return Method::SV;
  if (n == "fobar") return Method::FOBAR;
  if (n == "symbolic") return Method::Symbolic;
  fail("unknown method '{}': expected AnsAug, Rephrased, SV, FOBAR or symbolic", name);
}

std::string record_type(answer::Style style, Method m) {
  return std::string(style == answer::Style::Math ? "MATH_" : "GSM_") + method_name(m);
}

const std::vector<std::string>& prompt_names() {
  static const std::vector<std::string> names = {"solve_gsm8k",   "solve_math", "backward_gsm8k",
                                                 "backward_math", "rephrase",   "sv_rewrite"};
  return names;
}

fs::path default_prompts_dir() {
  if (const char* env = std::getenv("METAMATH_PROMPTS"); env && *env) return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path p :
         {exe.parent_path() / ".." / "prompts", exe.parent_path() / ".." / ".." / "prompts"})
      if (fs::exists(p / "solve_gsm8k.txt")) return fs::weakly_canonical(p);
  }
  return fs::path(METAMATH_SOURCE_DIR) / "prompts";
}

Prompts load_prompts(const fs::path& dir, const std::map<std::string, fs::path>& overrides) {
  if (std::optional<fs::path> configs = find_official_prompts(dir)) {
    if (fs::exists(*configs / "solve_gsm8k.txt"))
      fail(
          "{}: holds both our prompt templates and the official MetaMath prompts; use one folder "
          "per set",
          configs->string());
    if (!overrides.empty())
      fail(
          "--prompt {}=...: replaces one of our templates, but {} holds the official MetaMath "
          "prompts; edit its files instead",
          overrides.begin()->first, configs->string());
    Prompts p;
    p.official = load_official_prompts(*configs);
    return p;
  }
  for (const auto& [name, file] : overrides)
    if (std::find(prompt_names().begin(), prompt_names().end(), name) == prompt_names().end())
      fail("--prompt {}={}: unknown prompt name (expected one of {})", name, file.string(),
           fmt::join(prompt_names(), ", "));
  auto load = [&](const std::string& name) {
    auto it = overrides.find(name);
    fs::path file = it != overrides.end() ? it->second : dir / (name + ".txt");
    std::string t = read_file(file);
    if (t.find("{question}") == std::string::npos)
      fail("{}: prompt template has no {{question}} placeholder", file.string());
    if (name == "sv_rewrite" && t.find("{answer}") == std::string::npos)
      fail("{}: prompt template has no {{answer}} placeholder", file.string());
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return t;
  };
  Prompts p;
  p.solve_gsm8k = load("solve_gsm8k");
  p.solve_math = load("solve_math");
  p.backward_gsm8k = load("backward_gsm8k");
  p.backward_math = load("backward_math");
  p.rephrase = load("rephrase");
  p.sv_rewrite = load("sv_rewrite");
  return p;
}

std::string fill_prompt(std::string_view tmpl, std::string_view question, std::string_view answer) {
  std::string out = text::replace_all(std::string(tmpl), "{question}", question);
  return text::replace_all(std::move(out), "{answer}", answer);
}

uint64_t job_seed(uint64_t run_seed, std::string_view key) {
  return fnv1a(key, fnv1a(std::to_string(run_seed))) & 0x7fffffffffffffffull;
}

json options_json(const Options& o) {
  json m = json::array();
  for (Method x : o.methods) m.push_back(method_name(x));
  return {{"methods", m},
          {"ansaug_samples", o.ansaug_samples},
          {"rephrasings", o.rephrasings},
          {"rephrase_attempts", o.rephrase_attempts},
          {"backward_masks", o.backward_masks},
          {"backward_samples", o.backward_samples},
          {"temperature", o.temperature},
          {"max_tokens_gsm8k", o.max_tokens_gsm8k},
          {"max_tokens_math", o.max_tokens_math},
          {"max_tokens_rewrite", o.max_tokens_rewrite},
          {"seed", o.seed}};
}

Verified verify_solution(std::string_view text, std::string_view gold, answer::Style style) {
  Verified v;
  std::string t = cut_transcript(text);
  answer::Extracted e = answer::extract(t, style, /*allow_last_number=*/false);
  if (!e.found() || e.method == answer::Method::Bare) {
    v.reason = "no final answer";
    return v;
  }
  v.predicted = e.answer;
  answer::Result r = answer::equivalent(e.answer, gold, style);
  if (!r.equal()) {
    v.reason = fmt::format("{}: {}", answer::verdict_name(r.verdict), r.reason);
    return v;
  }
  // Body: everything before the final "The answer is" / "The final answer is" (or a trailing
  // "#### N" line).
  std::string lower = text::to_lower(t);
  std::string body = t;
  if (e.method == answer::Method::AnswerIs || e.method == answer::Method::FinalAnswer) {
    const char* marker =
        e.method == answer::Method::AnswerIs ? "the answer is" : "the final answer is";
    std::size_t p = lower.rfind(marker);
    if (p != std::string::npos) body = t.substr(0, p);
    // Minerva's "Final Answer: The final answer is X" leaves its label behind.
    const std::string_view label = "final answer:";
    std::string_view kept = text::trim(body);
    if (kept.size() >= label.size() &&
        text::to_lower(std::string(kept.substr(kept.size() - label.size()))) == label)
      body = std::string(kept.substr(0, kept.size() - label.size()));
  } else if (e.method == answer::Method::Hashes) {
    std::size_t p = t.rfind("####");
    if (p != std::string::npos) body = t.substr(0, p);
  }
  v.ok = true;
  v.response = metamathqa_response(body, gold, style);
  return v;
}

json Record::to_json() const {
  return {{"query", query},
          {"response", response},
          {"type", type},
          {"original_question", original_question},
          {"id", problem_id},
          {"job", job},
          {"choice", choice},
          {"gold", gold},
          {"provenance", provenance}};
}

MethodStats Stats::total() const {
  MethodStats t;
  for (const auto& [m, s] : methods) {
    t.jobs += s.jobs;
    t.pending += s.pending;
    t.in_flight += s.in_flight;
    t.done += s.done;
    t.failed += s.failed;
    t.samples += s.samples;
    t.kept += s.kept;
    t.prompt_tokens += s.prompt_tokens;
    t.completion_tokens += s.completion_tokens;
    for (const auto& [why, n] : s.rejected) t.rejected[why] += n;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------

struct Bootstrap::Impl {
  Db db;
  Options opts;
  Prompts prompts;
  std::vector<ProblemRow> problems;  // by pid

  explicit Impl(const fs::path& file) : db(file, true) {
    db.exec(
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS problems(pid INTEGER PRIMARY KEY, id TEXT NOT NULL,"
        " style TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,"
        " solution_chars INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS jobs(jid INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
        " pid INTEGER NOT NULL, method INTEGER NOT NULL, kind INTEGER NOT NULL,"
        " state INTEGER NOT NULL DEFAULT 0, query TEXT NOT NULL, gold TEXT NOT NULL,"
        " answer TEXT NOT NULL DEFAULT '', aux INTEGER NOT NULL DEFAULT 0,"
        " attempt INTEGER NOT NULL DEFAULT 0, n INTEGER NOT NULL, max_tokens INTEGER NOT NULL,"
        " temperature REAL NOT NULL, seed INTEGER NOT NULL, sends INTEGER NOT NULL DEFAULT 0,"
        " samples INTEGER NOT NULL DEFAULT 0, kept INTEGER NOT NULL DEFAULT 0,"
        " prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,"
        " attempts INTEGER NOT NULL DEFAULT 0, error TEXT, result TEXT);"
        "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);"
        "CREATE TABLE IF NOT EXISTS records(key TEXT NOT NULL, choice INTEGER NOT NULL,"
        " pid INTEGER NOT NULL, method INTEGER NOT NULL, query TEXT NOT NULL,"
        " response TEXT NOT NULL, gold TEXT NOT NULL, PRIMARY KEY(key, choice));");
    // Stores made before SV rewrites could be rejected lack the column that says why.
    bool has_rejected = false;
    {
      Stmt cols(db, "PRAGMA table_info(jobs)");
      while (cols.step()) has_rejected |= cols.text_at(1) == "rejected";
    }
    if (!has_rejected) db.exec("ALTER TABLE jobs ADD COLUMN rejected TEXT");
  }

  std::optional<std::string> meta(const std::string& key) const {
    Stmt s(const_cast<Db&>(db), "SELECT value FROM meta WHERE key=?");
    s.bind(1, key);
    if (s.step()) return s.text_at(0);
    return std::nullopt;
  }
  void set_meta(const std::string& key, const std::string& value) {
    Stmt s(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
    s.bind(1, key).bind(2, value).run();
  }

  // Names a meta value in errors: "DIR/jobs.sqlite: meta "options"".
  std::string meta_where(const char* key) const {
    return fmt::format("{}: meta \"{}\"", db.path().string(), key);
  }

  void load() {
    auto o = meta("options");
    if (!o) return;
    json j = parse_json(*o, meta_where("options"));
    opts = Options{};
    opts.methods.clear();
    for (const auto& m : j["methods"]) opts.methods.push_back(parse_method(m.get<std::string>()));
    opts.ansaug_samples = j["ansaug_samples"];
    opts.rephrasings = j["rephrasings"];
    opts.rephrase_attempts = j["rephrase_attempts"];
    opts.backward_masks = j["backward_masks"];
    opts.backward_samples = j["backward_samples"];
    opts.temperature = j["temperature"];
    opts.max_tokens_gsm8k = j["max_tokens_gsm8k"];
    opts.max_tokens_math = j["max_tokens_math"];
    opts.max_tokens_rewrite = j["max_tokens_rewrite"];
    opts.seed = j["seed"];
    json p = parse_json(meta("prompts").value_or("{}"), meta_where("prompts"));
    prompts.solve_gsm8k = p.value("solve_gsm8k", "");
    prompts.solve_math = p.value("solve_math", "");
    prompts.backward_gsm8k = p.value("backward_gsm8k", "");
    prompts.backward_math = p.value("backward_math", "");
    prompts.rephrase = p.value("rephrase", "");
    prompts.sv_rewrite = p.value("sv_rewrite", "");
    prompts.official.reset();
    if (p.contains("official"))
      prompts.official = official_prompts_from_json(p["official"], meta_where("prompts"));
    problems.clear();
    Stmt s(db, "SELECT pid, id, style, question, answer FROM problems ORDER BY pid");
    while (s.step()) {
      if (s.int_at(0) != static_cast<int64_t>(problems.size()))
        fail("{}: problems table is not contiguous", db.path().string());
      problems.push_back({s.text_at(1), s.text_at(2), s.text_at(3), s.text_at(4)});
    }
  }

  // Our templates, plus the official set under "official" when it is used (stores made before
  // it have no such key).
  static json prompts_json(const Prompts& p) {
    json j = {{"solve_gsm8k", p.solve_gsm8k},
              {"solve_math", p.solve_math},
              {"backward_gsm8k", p.backward_gsm8k},
              {"backward_math", p.backward_math},
              {"rephrase", p.rephrase},
              {"sv_rewrite", p.sv_rewrite}};
    if (p.official) j["official"] = official_prompts_json(*p.official);
    return j;
  }

  uint64_t job_seed(const std::string& key) const { return bootstrap::job_seed(opts.seed, key); }

  int solve_tokens(const std::string& style) const {
    return style == "math" ? opts.max_tokens_math : opts.max_tokens_gsm8k;
  }

  // Inserts a job unless its key exists; returns true when inserted.
  bool add_job(Stmt& ins, const std::string& key, int64_t pid, Method m, Kind kind,
               const std::string& query, const std::string& gold, const std::string& ans,
               int64_t aux, int64_t attempt, int n, int max_tokens) {
    ins.bind(1, key)
        .bind(2, pid)
        .bind(3, static_cast<int64_t>(m))
        .bind(4, static_cast<int64_t>(kind));
    ins.bind(5, query).bind(6, gold).bind(7, ans).bind(8, aux).bind(9, attempt);
    ins.bind(10, static_cast<int64_t>(n)).bind(11, static_cast<int64_t>(max_tokens));
    ins.bind(12, opts.temperature).bind(13, static_cast<int64_t>(job_seed(key)));
    ins.run();
    return db.changes() > 0;
  }
  static constexpr const char* kInsertJob =
      "INSERT OR IGNORE INTO jobs(key, pid, method, kind, query, gold, answer, aux, attempt, n,"
      " max_tokens, temperature, seed) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)";

  struct Session;  // one run() (defined below)

  std::string prompt_for(const JobRow& j) const {
    bool math = problems[static_cast<std::size_t>(j.pid)].style == "math";
    switch (j.kind) {
      case kSolve:
        return fill_prompt(math ? prompts.solve_math : prompts.solve_gsm8k, j.query);
      case kBackwardSolve:
        return fill_prompt(math ? prompts.backward_math : prompts.backward_gsm8k, j.query);
      case kRephrase:
        return fill_prompt(prompts.rephrase, j.query);
      case kRewrite:  // only the final sentence is rewritten (metamathqa.h)
        return fill_prompt(
            prompts.sv_rewrite,
            sv_split(j.query, style_of(problems[static_cast<std::size_t>(j.pid)].style)).final,
            j.answer);
      case kSymbolic:
        break;
    }
    return {};
  }

  // The official set's request kind for a job.
  static OfficialKind official_kind(const JobRow& j) {
    switch (j.kind) {
      case kSolve:
        return OfficialKind::Solve;
      case kRephrase:
        return OfficialKind::Rephrase;
      case kRewrite:
        return OfficialKind::SvRewrite;
      default:
        return j.method == Method::SV ? OfficialKind::SvSolve : OfficialKind::FobarSolve;
    }
  }

  // A request's text and stop strings: a raw prompt from our templates, or the official set's
  // chat messages (no stop strings, as the official scripts send none).
  void set_content(const JobRow& j, llm::Request& r) const {
    if (!prompts.official) {
      r.prompt = prompt_for(j);
      r.sampling.stop = {"\nQuestion:", "\n\nQuestion", "\n\n\n"};
      if (j.kind == kRephrase || j.kind == kRewrite) r.sampling.stop.push_back("\n\n");
      return;
    }
    const answer::Style st = style_of(problems[static_cast<std::size_t>(j.pid)].style);
    if (j.kind == kRewrite) {  // only the final sentence is rewritten (metamathqa.h)
      r.messages = official_messages(*prompts.official, OfficialKind::SvRewrite, st,
                                     sv_split(j.query, st).final, j.answer);
    } else {
      r.messages = official_messages(*prompts.official, official_kind(j), st, j.query);
    }
  }

  // The label a rephrasing or statement reply may start with.
  std::string_view reply_label(Kind kind) const {
    if (prompts.official)
      return official_reply_label(kind == kRephrase ? OfficialKind::Rephrase
                                                    : OfficialKind::SvRewrite);
    return kind == kRephrase ? "Rephrased:" : "Statement:";
  }

  // Characters of a request's fixed part, for the plan's token estimates (`m` tells SV's
  // backward solves from FOBAR's).
  double prompt_chars(Kind kind, bool math, Method m) const {
    if (prompts.official) {
      JobRow j;
      j.kind = kind;
      j.method = m;
      const std::string name =
          official_file_name(official_kind(j), math ? answer::Style::Math : answer::Style::Gsm8k);
      return static_cast<double>(prompts.official->files.at(name).size() +
                                 prompts.official->system.size());
    }
    switch (kind) {
      case kSolve:
        return static_cast<double>((math ? prompts.solve_math : prompts.solve_gsm8k).size());
      case kBackwardSolve:
        return static_cast<double>((math ? prompts.backward_math : prompts.backward_gsm8k).size());
      case kRephrase:
        return static_cast<double>(prompts.rephrase.size());
      case kRewrite:
        return static_cast<double>(prompts.sv_rewrite.size());
      case kSymbolic:
        break;
    }
    return 0;
  }
};

Bootstrap::Bootstrap(const fs::path& dir) : dir_(dir) {
  fs::create_directories(dir);
  impl_ = std::make_unique<Impl>(dir / "jobs.sqlite");
  impl_->load();
}

Bootstrap::~Bootstrap() = default;

bool Bootstrap::initialized() const { return impl_->meta("options").has_value(); }

void Bootstrap::initialize(const std::vector<data::Problem>& problems, const Options& opts,
                           const Prompts& prompts) {
  if (initialized()) fail("{}: the job store is already initialized", impl_->db.path().string());
  if (problems.empty()) fail("no seed problems to bootstrap from");
  if (opts.ansaug_samples < 1 || opts.rephrasings < 1 || opts.rephrase_attempts < 1 ||
      opts.backward_masks < 1 || opts.backward_samples < 1)
    fail("sample counts must be at least 1");
  Impl& I = *impl_;
  I.opts = opts;
  I.prompts = prompts;
  auto has = [&](Method m) {
    return std::find(opts.methods.begin(), opts.methods.end(), m) != opts.methods.end();
  };
  Transaction tx(I.db);
  I.set_meta("options", options_json(opts).dump());
  I.set_meta("prompts", Impl::prompts_json(prompts).dump());
  Stmt ip(I.db,
          "INSERT INTO problems(pid, id, style, question, answer, solution_chars)"
          " VALUES(?,?,?,?,?,?)");
  Stmt ij(I.db, Impl::kInsertJob);
  I.problems.clear();
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const data::Problem& p = problems[i];
    auto pid = static_cast<int64_t>(i);
    std::string style = p.style == "math" ? "math" : "gsm8k";
    ip.bind(1, pid).bind(2, p.id).bind(3, style).bind(4, p.question).bind(5, p.answer);
    ip.bind(6, static_cast<int64_t>(p.solution.size())).run();
    I.problems.push_back({p.id, style, p.question, p.answer});
    if (p.answer.empty()) continue;  // no gold to verify against
    answer::Style st = style_of(style);
    int max_tok = I.solve_tokens(style);
    std::string ps = std::to_string(pid);
    if (has(Method::AnsAug))
      I.add_job(ij, "A/" + ps, pid, Method::AnsAug, kSolve, p.question, p.answer, "", 0, 0,
                opts.ansaug_samples, max_tok);
    if (has(Method::Rephrased))
      I.add_job(ij, "R/" + ps, pid, Method::Rephrased, kRephrase, p.question, p.answer, "", 0, 0,
                opts.rephrasings, opts.max_tokens_rewrite);
    // Symbolic: GSM8K seeds whose gold solution carries calculator annotations. The solution
    // travels in the job's answer column.
    if (has(Method::Symbolic) && st == answer::Style::Gsm8k &&
        p.solution.find("<<") != std::string::npos)
      I.add_job(ij, "Y/" + ps, pid, Method::Symbolic, kSymbolic, p.question, p.answer, p.solution,
                0, 0, 1, 0);
    auto masks = mask_numbers(p.question, st);
    for (Method m : {Method::SV, Method::FOBAR}) {
      if (!has(m) || masks.empty()) continue;
      std::vector<std::size_t> order(masks.size());
      for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
      std::mt19937_64 rng(fnv1a(fmt::format("{}/{}/{}", opts.seed, method_name(m), p.id)));
      std::shuffle(order.begin(), order.end(), rng);
      std::size_t take =
          std::min<std::size_t>(order.size(), static_cast<std::size_t>(opts.backward_masks));
      for (std::size_t k = 0; k < take; ++k) {
        const Masked& mk = masks[order[k]];
        std::string key = fmt::format("{}/{}/{}", m == Method::SV ? "SW" : "F", pid, order[k]);
        if (m == Method::SV) {
          I.add_job(ij, key, pid, m, kRewrite, mk.question, mk.value, p.answer,
                    static_cast<int64_t>(order[k]), 0, 1, opts.max_tokens_rewrite);
        } else {
          std::string q = fobar_query(mk.question, p.answer, st);
          I.add_job(ij, key, pid, m, kBackwardSolve, q, mk.value, p.answer,
                    static_cast<int64_t>(order[k]), 0, opts.backward_samples, max_tok);
        }
      }
    }
  }
  tx.commit();
}

void Bootstrap::check_same(const Options& opts, const Prompts& prompts) const {
  json now = options_json(opts), then = options_json(impl_->opts);
  for (auto& [k, v] : now.items())
    if (then[k] != v)
      fail(
          "{}: this folder was started with {}={}, not {}; use the same settings to resume or "
          "another --out",
          dir_.string(), k, then[k].dump(), v.dump());
  std::string why = prompts_difference(prompts, impl_->prompts);
  if (!why.empty())
    fail("{}: {}; use the same prompts to resume or another --out", dir_.string(), why);
}

std::vector<PlanRow> Bootstrap::plan() const {
  Impl& I = *impl_;
  std::map<Method, PlanRow> rows;
  for (Method m : I.opts.methods) rows[m].method = m;
  Stmt s(I.db,
         "SELECT j.method, j.kind, j.n, length(j.query), p.solution_chars, length(p.question),"
         " p.style FROM jobs j JOIN problems p ON p.pid = j.pid"
         " WHERE j.attempt = 0");
  auto tok = [](double chars) { return chars / 4.0; };
  while (s.step()) {
    auto m = static_cast<Method>(s.int_at(0));
    auto kind = static_cast<Kind>(s.int_at(1));
    double n = static_cast<double>(s.int_at(2));
    double qlen = static_cast<double>(s.int_at(3));
    double sol = static_cast<double>(s.int_at(4));
    bool math = s.text_at(6) == "math";
    double solve_prompt = I.prompt_chars(kSolve, math, m);
    double back_prompt = I.prompt_chars(kBackwardSolve, math, m);
    // A completion is never longer than its request's limit (--max-tokens-*).
    double solve_limit = I.solve_tokens(math ? "math" : "gsm8k");
    double rewrite_limit = I.opts.max_tokens_rewrite;
    double sol_tokens = std::min(tok(std::max(sol, 200.0)) * 1.2 + 16, solve_limit);
    double back_tokens = std::min(sol_tokens * 1.3, solve_limit);
    double rewrite_tokens = std::min(tok(qlen) * 1.1, rewrite_limit);
    PlanRow& r = rows[m];
    r.method = m;
    if (kind == kSymbolic) continue;  // computed here: no request, no token
    r.first_requests += 1;
    switch (kind) {
      case kSolve:
        r.expected_requests += 1;
        r.max_requests += 1;
        r.prompt_tokens += tok(solve_prompt + qlen);
        r.completion_tokens += n * sol_tokens;
        break;
      case kBackwardSolve:
        r.expected_requests += 1;
        r.max_requests += 1;
        r.prompt_tokens += tok(back_prompt + qlen);
        r.completion_tokens += n * back_tokens;
        break;
      case kRephrase: {
        double R = n, M = I.opts.rephrase_attempts;
        r.expected_requests += 1 + R;  // assumes most rephrasings are solved at the first try
        r.max_requests += 1 + R * M;
        r.prompt_tokens += tok(I.prompt_chars(kRephrase, math, m) + qlen);
        r.completion_tokens += R * rewrite_tokens;
        r.prompt_tokens += R * tok(solve_prompt + qlen * 1.1);
        r.completion_tokens += R * sol_tokens;
        break;
      }
      case kSymbolic:
        break;
      case kRewrite: {
        double B = I.opts.backward_samples;
        r.expected_requests += 2;
        r.max_requests += 2;
        r.prompt_tokens += tok(I.prompt_chars(kRewrite, math, m) + qlen);
        r.completion_tokens += rewrite_tokens;
        r.prompt_tokens += tok(back_prompt + qlen * 1.1);
        r.completion_tokens += B * back_tokens;
        break;
      }
    }
  }
  std::vector<PlanRow> out;
  for (auto& [m, r] : rows) out.push_back(r);
  return out;
}

Stats Bootstrap::stats() const {
  Impl& I = *impl_;
  Stats st;
  st.problems = I.problems.size();
  if (I.prompts.official) {
    st.prompt_set = "official";
    st.prompt_dir = I.prompts.official->dir.string();
  }
  st.prompt_digest = prompts_digest(I.prompts);
  for (Method m : I.opts.methods) st.methods[m];
  Stmt s(I.db,
         "SELECT method, state, count(*), sum(samples), sum(kept), sum(prompt_tokens),"
         " sum(completion_tokens) FROM jobs GROUP BY method, state");
  while (s.step()) {
    MethodStats& ms = st.methods[static_cast<Method>(s.int_at(0))];
    auto count = static_cast<uint64_t>(s.int_at(2));
    ms.jobs += count;
    switch (s.int_at(1)) {
      case kPending:
        ms.pending += count;
        break;
      case kInFlight:
        ms.in_flight += count;
        break;
      case kDone:
        ms.done += count;
        break;
      default:
        ms.failed += count;
        break;
    }
    ms.samples += static_cast<uint64_t>(s.int_at(3));
    ms.kept += static_cast<uint64_t>(s.int_at(4));
    ms.prompt_tokens += static_cast<uint64_t>(s.int_at(5));
    ms.completion_tokens += static_cast<uint64_t>(s.int_at(6));
  }
  Stmt r(I.db,
         "SELECT method, rejected, count(*) FROM jobs WHERE rejected IS NOT NULL"
         " GROUP BY method, rejected");
  while (r.step())
    st.methods[static_cast<Method>(r.int_at(0))].rejected[r.text_at(1)] +=
        static_cast<uint64_t>(r.int_at(2));
  return st;
}

namespace {

std::string progress_postfix(const Stats& st, const llm::Backend& backend) {
  std::string s;
  for (const auto& [m, ms] : st.methods)
    s += fmt::format("{} {} ({:.0f}%) ", method_name(m), ms.kept, 100.0 * ms.yield());
  MethodStats t = st.total();
  double tok = static_cast<double>(t.prompt_tokens + t.completion_tokens);
  s += fmt::format("| yield {:.0f}% | {:.1f}k tok", 100.0 * t.yield(), tok / 1000.0);
  if (backend.price_prompt_per_m > 0 || backend.price_completion_per_m > 0)  // --price: the cost
    s += fmt::format(" ${:.2f}",
                     (static_cast<double>(t.prompt_tokens) * backend.price_prompt_per_m +
                      static_cast<double>(t.completion_tokens) * backend.price_completion_per_m) /
                         1e6);
  if (backend.usage().retries.load() > 0)
    s += fmt::format(" | {} retries", backend.usage().retries.load());
  if (t.failed) s += fmt::format(" | {} failed", t.failed);
  return s;
}

}  // namespace

// One Bootstrap::run: the prepared statements, the progress bar and the counters the result
// handlers share. A batch is the ready jobs (pending, or in flight when a run was killed); each
// result is recorded in one transaction with the records and follow-up jobs it yields.
struct Bootstrap::Impl::Session {
  Session(Impl& impl, llm::Backend& backend, const RunOptions& ro, Stats stats);

  // Up to ro.max_batch ready jobs, marked in flight; empty when none is left.
  std::vector<JobRow> next_batch();
  // Sends the batch and records each result as it comes back.
  void send(const std::vector<JobRow>& jobs);
  void finish() { bar.finish(); }
  const std::string& fatal_error() const { return fatal; }

 private:
  struct Yield {
    int64_t samples = 0, kept = 0;
  };
  llm::Request request_for(const JobRow& j) const;
  void record(const JobRow& j, const llm::Result& r);
  // One handler per job kind: what a successful result yields.
  Yield on_solve(const JobRow& j, const llm::Result& r, const ProblemRow& prob);
  void on_rephrase(const JobRow& j, const llm::Result& r, const ProblemRow& prob);
  // Returns why the statement was rejected ("" when a backward solve was added).
  std::string on_rewrite(const JobRow& j, const llm::Result& r, const ProblemRow& prob);
  void mark_finished(const JobRow& j, const llm::Result& r, const Yield& y, const json& result,
                     const std::string& rejected);
  int64_t count_jobs();
  void count_result(const JobRow& j, const llm::Result& r, const Yield& y, int64_t jobs_now);

  Impl& I;
  llm::Backend& backend;
  const RunOptions& ro;
  Stats st;
  // The bar counts this run's requests only, so that a resumed run's rate and ETA are its own
  // (the postfix shows the folder's cumulative counts).
  const uint64_t finished_before;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> devnull;
  Progress bar;
  uint64_t recorded = 0;
  std::string fatal;
  Stmt sel, mark, done, ins_rec, ins_job;
};

Bootstrap::Impl::Session::Session(Impl& impl, llm::Backend& backend_, const RunOptions& ro_,
                                  Stats stats)
    : I(impl),
      backend(backend_),
      ro(ro_),
      st(std::move(stats)),
      finished_before(st.total().done + st.total().failed),
      devnull(ro.progress ? nullptr : std::fopen("/dev/null", "w"), &std::fclose),
      bar("bootstrap", st.total().jobs - finished_before, devnull.get()),
      sel(I.db,
          "SELECT jid, key, pid, method, kind, query, gold, answer, aux, attempt, n, max_tokens,"
          " seed FROM jobs WHERE state IN (0, 1) AND kind != 4 ORDER BY jid"),
      mark(I.db, "UPDATE jobs SET state=1, sends=sends+1 WHERE jid=?"),
      done(I.db,
           "UPDATE jobs SET state=?, samples=?, kept=?, prompt_tokens=?, completion_tokens=?,"
           " attempts=?, error=?, result=?, rejected=? WHERE jid=? AND state=1"),
      ins_rec(I.db,
              "INSERT OR IGNORE INTO records(key, choice, pid, method, query, response, gold)"
              " VALUES(?,?,?,?,?,?,?)"),
      ins_job(I.db, Impl::kInsertJob) {
  bar.set_postfix(progress_postfix(st, backend));
}

std::vector<JobRow> Bootstrap::Impl::Session::next_batch() {
  std::vector<JobRow> jobs;
  while (sel.step()) {
    JobRow j;
    j.jid = sel.int_at(0);
    j.key = sel.text_at(1);
    j.pid = sel.int_at(2);
    j.method = static_cast<Method>(sel.int_at(3));
    j.kind = static_cast<Kind>(sel.int_at(4));
    j.query = sel.text_at(5);
    j.gold = sel.text_at(6);
    j.answer = sel.text_at(7);
    j.aux = sel.int_at(8);
    j.attempt = sel.int_at(9);
    j.n = sel.int_at(10);
    j.max_tokens = sel.int_at(11);
    j.seed = static_cast<uint64_t>(sel.int_at(12));
    jobs.push_back(std::move(j));
    if (ro.max_batch && jobs.size() >= ro.max_batch) break;
  }
  sel.reset();
  if (jobs.empty()) return jobs;
  Transaction tx(I.db);
  for (const JobRow& j : jobs) mark.bind(1, j.jid).run();
  tx.commit();
  return jobs;
}

llm::Request Bootstrap::Impl::Session::request_for(const JobRow& j) const {
  llm::Request r;
  r.id = static_cast<uint64_t>(j.jid);
  I.set_content(j, r);
  r.sampling.max_tokens = static_cast<int>(j.max_tokens);
  r.sampling.temperature = I.opts.temperature;
  r.sampling.n = static_cast<int>(j.n);
  r.sampling.seed = j.seed;
  return r;
}

void Bootstrap::Impl::Session::send(const std::vector<JobRow>& jobs) {
  std::vector<llm::Request> reqs;
  reqs.reserve(jobs.size());
  std::unordered_map<uint64_t, std::size_t> by_id;
  for (std::size_t k = 0; k < jobs.size(); ++k) {
    reqs.push_back(request_for(jobs[k]));
    by_id[reqs.back().id] = k;
  }
  backend.generate(reqs, [&](llm::Result r) {
    auto it = by_id.find(r.id);
    if (it == by_id.end()) return;  // not ours
    record(jobs[it->second], r);
  });
}

void Bootstrap::Impl::Session::record(const JobRow& j, const llm::Result& r) {
  const ProblemRow& prob = I.problems[static_cast<std::size_t>(j.pid)];
  Transaction tx(I.db);
  Yield y;
  json result = json::array();
  std::string rejected;
  if (r.ok()) {
    for (const auto& c : r.choices)
      result.push_back({{"text", c.text}, {"finish", c.finish_reason}});
    switch (j.kind) {
      case kSolve:
      case kBackwardSolve:
        y = on_solve(j, r, prob);
        break;
      case kRephrase:
        on_rephrase(j, r, prob);
        break;
      case kRewrite:
        rejected = on_rewrite(j, r, prob);
        break;
      case kSymbolic:
        break;
    }
  } else if (r.error_kind == llm::ErrorKind::Fatal && fatal.empty()) {
    fatal = r.error;
  }
  mark_finished(j, r, y, result, rejected);
  const int64_t jobs_now = count_jobs();
  tx.commit();
  count_result(j, r, y, jobs_now);
}

// Solves (forward or backward): keep the choices that reach the gold. A rephrasing is kept once,
// with its first correct solve, and solved again (up to rephrase_attempts) until one is.
Bootstrap::Impl::Session::Yield Bootstrap::Impl::Session::on_solve(const JobRow& j,
                                                                   const llm::Result& r,
                                                                   const ProblemRow& prob) {
  Yield y;
  for (std::size_t c = 0; c < r.choices.size(); ++c) {
    ++y.samples;
    Verified v = verify_solution(r.choices[c].text, j.gold, style_of(prob.style));
    if (!v.ok) continue;
    ins_rec.bind(1, j.key).bind(2, static_cast<int64_t>(c)).bind(3, j.pid);
    ins_rec.bind(4, static_cast<int64_t>(j.method)).bind(5, j.query);
    ins_rec.bind(6, v.response).bind(7, j.gold).run();
    if (I.db.changes() > 0) ++y.kept;
    if (j.method == Method::Rephrased) break;
  }
  if (j.method == Method::Rephrased && y.kept == 0 && j.attempt + 1 < I.opts.rephrase_attempts) {
    std::string key = fmt::format("RS/{}/{}/{}", j.pid, j.aux, j.attempt + 1);
    I.add_job(ins_job, key, j.pid, j.method, kSolve, j.query, j.gold, "", j.aux, j.attempt + 1, 1,
              I.solve_tokens(prob.style));
  }
  return y;
}

// Rephrasings: each new, plausible one becomes a solve job.
void Bootstrap::Impl::Session::on_rephrase(const JobRow& j, const llm::Result& r,
                                           const ProblemRow& prob) {
  std::vector<std::string> seen = {norm_key(prob.question)};
  for (std::size_t c = 0; c < r.choices.size(); ++c) {
    std::string q = first_paragraph(r.choices[c].text, I.reply_label(kRephrase));
    std::string nk = norm_key(q);
    if (nk.empty() || q.size() > 4 * prob.question.size() + 200) continue;
    if (std::find(seen.begin(), seen.end(), nk) != seen.end()) continue;
    seen.push_back(nk);
    // A top-up round's rephrase job carries its round in aux: its rephrasings get their own keys.
    const int64_t aux = (j.aux << 20) + static_cast<int64_t>(c);
    std::string key = fmt::format("RS/{}/{}/0", j.pid, aux);
    I.add_job(ins_job, key, j.pid, j.method, kSolve, q, j.gold, "", aux, 0, 1,
              I.solve_tokens(prob.style));
  }
}

// SV statement rewrites (of the masked question's final sentence): the kept part, the statement
// and the question for x become a backward solve job, unless sv_check rejects the statement.
std::string Bootstrap::Impl::Session::on_rewrite(const JobRow& j, const llm::Result& r,
                                                 const ProblemRow& prob) {
  if (r.choices.empty()) return kSvEmpty;
  answer::Style st = style_of(prob.style);
  SvParts parts = sv_split(j.query, st);
  std::string s = first_paragraph(r.choices[0].text, I.reply_label(kRewrite));
  if (s.size() >= 4 * parts.final.size() + 200) return "too long";
  std::string why = sv_check(parts, s, j.gold, j.answer, st);
  if (!why.empty()) return why;
  std::string q = sv_query(parts, s, st);
  std::string key = fmt::format("SS/{}/{}", j.pid, j.key.substr(j.key.rfind('/') + 1));
  I.add_job(ins_job, key, j.pid, j.method, kBackwardSolve, q, j.gold, j.answer, j.aux, 0,
            I.opts.backward_samples, I.solve_tokens(prob.style));
  return "";
}

void Bootstrap::Impl::Session::mark_finished(const JobRow& j, const llm::Result& r, const Yield& y,
                                             const json& result, const std::string& rejected) {
  done.bind(1, static_cast<int64_t>(r.ok() ? kDone : kFailed)).bind(2, y.samples).bind(3, y.kept);
  done.bind(4, static_cast<int64_t>(r.prompt_tokens));
  done.bind(5, static_cast<int64_t>(r.completion_tokens));
  done.bind(6, static_cast<int64_t>(r.attempts));
  if (r.ok()) {
    done.bind_null(7);
  } else {
    done.bind(7, fmt::format("{}: {}", error_kind_name(r.error_kind), r.error));
  }
  done.bind(8, result.dump());
  if (rejected.empty()) {
    done.bind_null(9);
  } else {
    done.bind(9, rejected);
  }
  done.bind(10, j.jid).run();
}

int64_t Bootstrap::Impl::Session::count_jobs() {
  Stmt c(I.db, "SELECT count(*) FROM jobs");
  c.step();
  return c.int_at(0);
}

// The run's counters, the progress bar and the test hook, after the transaction committed.
void Bootstrap::Impl::Session::count_result(const JobRow& j, const llm::Result& r, const Yield& y,
                                            int64_t jobs_now) {
  MethodStats& ms = st.methods[j.method];
  ms.done += r.ok() ? 1 : 0;
  ms.failed += r.ok() ? 0 : 1;
  ms.samples += static_cast<uint64_t>(y.samples);
  ms.kept += static_cast<uint64_t>(y.kept);
  ms.prompt_tokens += static_cast<uint64_t>(r.prompt_tokens);
  ms.completion_tokens += static_cast<uint64_t>(r.completion_tokens);
  ++recorded;
  bar.set_total(static_cast<uint64_t>(jobs_now) - finished_before);
  bar.set_postfix(progress_postfix(st, backend));
  bar.tick();
  if (ro.after_result) ro.after_result(recorded);
}

bool Bootstrap::llm_jobs_pending() const {
  Stmt c(impl_->db, "SELECT count(*) FROM jobs WHERE state IN (0, 1) AND kind != 4");
  c.step();
  return c.int_at(0) > 0;
}

std::map<std::string, uint64_t> Bootstrap::kept_by_type() const {
  Impl& I = *impl_;
  std::map<std::string, uint64_t> out;
  Stmt s(I.db,
         "SELECT p.style, r.method, count(*) FROM records r JOIN problems p ON p.pid = r.pid"
         " GROUP BY p.style, r.method");
  while (s.step())
    out[record_type(style_of(s.text_at(0)), static_cast<Method>(s.int_at(1)))] +=
        static_cast<uint64_t>(s.int_at(2));
  return out;
}

namespace {

// ceil(target * (1 + margin)), without floating-point noise (50000 * 1.1 is 55000, not 55001).
uint64_t wanted(uint64_t target, double margin) {
  return static_cast<uint64_t>(std::ceil(static_cast<double>(target) * (1.0 + margin) - 1e-6));
}

// The units a type is sampled in, per base (a question, or a backward question for SV/FOBAR):
// what was requested so far, and the row to copy for a new round's job.
struct Base {
  int64_t pid = 0, aux = 0, units = 0;
  std::string query, gold, answer, key;
  int64_t max_tokens = 0;
};

}  // namespace

TopUp Bootstrap::top_up(const Targets& t) {
  Impl& I = *impl_;
  TopUp out;
  out.round = std::stoi(I.meta("round").value_or("0")) + 1;
  const std::map<std::string, uint64_t> kept = kept_by_type();
  std::vector<std::string> short_types;
  for (const auto& [type, target] : t.per_type) {
    auto want = wanted(target, t.margin);
    auto it = kept.find(type);
    if ((it == kept.end() ? 0 : it->second) < want) short_types.push_back(type);
  }
  if (short_types.empty()) return out;
  auto stop_all = [&](const std::string& why) {
    for (const auto& type : short_types) out.stopped[type] = why;
    return out;
  };
  if (out.round > t.max_rounds) return stop_all(fmt::format("{} rounds done", t.max_rounds));
  if (t.budget_tokens || t.budget_usd > 0) {
    MethodStats tot = stats().total();
    if (t.budget_tokens && tot.prompt_tokens + tot.completion_tokens >= t.budget_tokens)
      return stop_all(fmt::format("token budget ({}) spent", t.budget_tokens));
    if (t.budget_usd > 0 && t.price_prompt_per_m <= 0 && t.price_completion_per_m <= 0)
      fail("--budget-usd needs the token prices (--price PROMPT,COMPLETION)");
    double usd = (static_cast<double>(tot.prompt_tokens) * t.price_prompt_per_m +
                  static_cast<double>(tot.completion_tokens) * t.price_completion_per_m) /
                 1e6;
    if (t.budget_usd > 0 && usd >= t.budget_usd)
      return stop_all(fmt::format("cost budget (${:.2f}) spent", t.budget_usd));
  }
  Transaction tx(I.db);
  Stmt ins(I.db, Impl::kInsertJob);
  for (const std::string& type : short_types) {
    const bool math = type.starts_with("MATH_");
    const std::string style = math ? "math" : "gsm8k";
    const Method m = parse_method(type.substr(type.find('_') + 1));
    if (std::find(I.opts.methods.begin(), I.opts.methods.end(), m) == I.opts.methods.end()) {
      out.stopped[type] = "method not selected (--methods)";
      continue;
    }
    // The bases and the units requested on each so far: AnsAug samples and rephrasings per
    // question; backward solves per backward question (FOBAR's masked questions, SV's accepted
    // statements).
    const Kind base_kind = m == Method::AnsAug      ? kSolve
                           : m == Method::Rephrased ? kRephrase
                                                    : kBackwardSolve;
    Stmt b(I.db,
           "SELECT j.pid, min(j.aux), sum(j.n), j.query, j.gold, j.answer, min(j.key),"
           " max(j.max_tokens) FROM jobs j JOIN problems p ON p.pid = j.pid"
           " WHERE j.method = ? AND j.kind = ? AND p.style = ? AND j.attempt = 0"
           " GROUP BY j.pid, CASE WHEN j.kind = 1 THEN j.query ELSE '' END ORDER BY min(j.jid)");
    b.bind(1, static_cast<int64_t>(m)).bind(2, static_cast<int64_t>(base_kind)).bind(3, style);
    std::vector<Base> bases;
    int64_t units = 0;
    while (b.step()) {
      Base x{b.int_at(0),  b.int_at(1),  b.int_at(2),  b.text_at(3),
             b.text_at(4), b.text_at(5), b.text_at(6), b.int_at(7)};
      units += x.units;
      bases.push_back(std::move(x));
    }
    if (bases.empty()) {
      out.stopped[type] =
          m == Method::SV ? "no accepted SV statement to sample" : "no seed question to sample";
      continue;
    }
    // The measured yield: records per unit (a sample, or a rephrasing); a pessimistic guess
    // while nothing was kept yet.
    auto have = kept.count(type) ? kept.at(type) : 0;
    double y =
        units > 0 ? std::max(static_cast<double>(have), 0.5) / static_cast<double>(units) : 0.5;
    auto want = static_cast<double>(wanted(t.per_type.at(type), t.margin));
    double needed = (want - static_cast<double>(have)) / y;
    auto per_base = static_cast<int64_t>(std::ceil(needed / static_cast<double>(bases.size())));
    uint64_t added = 0;
    for (const Base& x : bases) {
      int64_t n = std::min<int64_t>(per_base, t.per_question_cap - x.units);
      if (n <= 0) continue;
      std::string key = fmt::format("{}/r{}", x.key, out.round);
      if (m == Method::Rephrased) {
        I.add_job(ins, key, x.pid, m, kRephrase, x.query, x.gold, "", out.round, 0,
                  static_cast<int>(n), I.opts.max_tokens_rewrite);
      } else {
        I.add_job(ins, key, x.pid, m, base_kind, x.query, x.gold, x.answer, x.aux, 0,
                  static_cast<int>(n), static_cast<int>(x.max_tokens));
      }
      ++added;
    }
    if (added == 0)
      out.stopped[type] = fmt::format("per-question cap ({}) reached", t.per_question_cap);
    out.jobs += added;
  }
  if (out.jobs > 0) I.set_meta("round", std::to_string(out.round));
  tx.commit();
  return out;
}

namespace {

// Assumed records per unit before anything was measured (our guesses for a GPT-3.5-class model,
// not the paper's numbers): GSM8K / MATH.
double prior_yield(Method m, bool math) {
  switch (m) {
    case Method::AnsAug:
      return math ? 0.45 : 0.75;
    case Method::Rephrased:
      return math ? 0.4 : 0.7;
    case Method::SV:
      return math ? 0.25 : 0.45;
    default:
      return math ? 0.35 : 0.6;
  }
}

}  // namespace

std::vector<TargetPlanRow> Bootstrap::target_plan(const Targets& t) const {
  Impl& I = *impl_;
  const std::map<std::string, uint64_t> kept = kept_by_type();
  // Per method: first-round cost (plan()) and first-round units, to price one unit.
  std::map<Method, PlanRow> first;
  for (const PlanRow& r : plan()) first[r.method] = r;
  std::map<Method, double> first_units;
  {
    Stmt u(I.db,
           "SELECT method, sum(CASE WHEN kind = 3 THEN ? ELSE n END) FROM jobs"
           " WHERE attempt = 0 AND kind IN (0, 1, 2, 3) AND key NOT LIKE 'SS/%'"
           " AND key NOT LIKE 'RS/%' AND key NOT LIKE '%/r%' GROUP BY method");
    u.bind(1, static_cast<int64_t>(I.opts.backward_samples));
    while (u.step()) first_units[static_cast<Method>(u.int_at(0))] = u.double_at(1);
  }
  std::vector<TargetPlanRow> rows;
  for (const auto& [type, target] : t.per_type) {
    TargetPlanRow r;
    r.type = type;
    r.target = target;
    r.want = wanted(target, t.margin);
    r.kept = kept.count(type) ? kept.at(type) : 0;
    const bool math = type.starts_with("MATH_");
    const Method m = parse_method(type.substr(type.find('_') + 1));
    // Bases: seed questions with a gold answer, or masked questions for SV/FOBAR.
    Stmt b(I.db,
           "SELECT count(DISTINCT j.key), sum(j.samples), sum(j.kept) FROM jobs j"
           " JOIN problems p ON p.pid = j.pid WHERE j.method = ? AND p.style = ?"
           " AND j.attempt = 0 AND j.key NOT LIKE '%/r%' AND j.kind = ?");
    const Kind base_kind = m == Method::AnsAug      ? kSolve
                           : m == Method::Rephrased ? kRephrase
                           : m == Method::SV        ? kRewrite
                                                    : kBackwardSolve;
    b.bind(1, static_cast<int64_t>(m)).bind(2, math ? "math" : "gsm8k");
    b.bind(3, static_cast<int64_t>(base_kind));
    b.step();
    r.bases = static_cast<uint64_t>(b.int_at(0));
    MethodStats ms;
    {
      Stmt y(I.db,
             "SELECT sum(j.samples), sum(j.kept) FROM jobs j JOIN problems p ON p.pid = j.pid"
             " WHERE j.method = ? AND p.style = ?");
      y.bind(1, static_cast<int64_t>(m)).bind(2, math ? "math" : "gsm8k");
      y.step();
      ms.samples = static_cast<uint64_t>(y.int_at(0));
      ms.kept = static_cast<uint64_t>(y.int_at(1));
    }
    r.measured = ms.samples > 0 && ms.kept > 0 && m != Method::Rephrased;
    r.yield = r.measured ? ms.yield() : prior_yield(m, math);
    double missing = r.want > r.kept ? static_cast<double>(r.want - r.kept) : 0.0;
    r.units = missing / r.yield;
    r.reachable = static_cast<double>(t.per_question_cap) * static_cast<double>(r.bases) * r.yield;
    auto f = first.find(m);
    auto fu = first_units.find(m);
    if (f != first.end() && fu != first_units.end() && fu->second > 0) {
      double scale = r.units / fu->second;
      r.requests = scale * static_cast<double>(f->second.expected_requests);
      r.prompt_tokens = scale * f->second.prompt_tokens;
      r.completion_tokens = scale * f->second.completion_tokens;
    }
    rows.push_back(r);
  }
  return rows;
}

std::string format_target_plan(const std::vector<TargetPlanRow>& rows, const Targets& t) {
  std::string out = fmt::format(
      "target-driven sampling: margin {:.0f}%, per-question cap {}, at most {} rounds{} (the "
      "estimates cover every round, the first one above included)\n\n"
      "| type | target | + margin | kept | questions | yield (%) | units needed | cap allows |"
      " requests (est.) | prompt tokens (est.) | completion tokens (est.) |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
      100.0 * t.margin, t.per_question_cap, t.max_rounds,
      t.budget_tokens ? fmt::format(", token budget {}", t.budget_tokens) : "");
  TargetPlanRow tot;
  for (const TargetPlanRow& r : rows) {
    out += fmt::format(
        "| {} | {} | {} | {} | {} | {:.0f}{} | {:.0f} | {} | {:.0f} | {:.0f} | {:.0f} |\n", r.type,
        r.target, r.want, r.kept, r.bases, 100.0 * r.yield, r.measured ? "" : " (assumed)", r.units,
        r.reachable >= static_cast<double>(r.want) ? "yes" : "**no**", r.requests, r.prompt_tokens,
        r.completion_tokens);
    tot.requests += r.requests;
    tot.prompt_tokens += r.prompt_tokens;
    tot.completion_tokens += r.completion_tokens;
  }
  out += fmt::format("| **total** | | | | | | | | {:.0f} | {:.0f} | {:.0f} |\n", tot.requests,
                     tot.prompt_tokens, tot.completion_tokens);
  if (t.price_prompt_per_m > 0 || t.price_completion_per_m > 0)
    out += fmt::format("\nestimated cost: ${:.0f} at ${}/M prompt and ${}/M completion tokens\n",
                       (tot.prompt_tokens * t.price_prompt_per_m +
                        tot.completion_tokens * t.price_completion_per_m) /
                           1e6,
                       t.price_prompt_per_m, t.price_completion_per_m);
  return out;
}

Stats Bootstrap::run_to_targets(llm::Backend& backend, const RunOptions& ro,
                                const Targets& targets) {
  Targets t = targets;
  if (t.price_prompt_per_m <= 0 && t.price_completion_per_m <= 0) {
    t.price_prompt_per_m = backend.price_prompt_per_m;
    t.price_completion_per_m = backend.price_completion_per_m;
  }
  Stats st = run(backend, ro);
  for (;;) {
    TopUp u = top_up(t);
    for (const auto& [type, why] : u.stopped) log::warn("{}: no more samples: {}", type, why);
    if (u.jobs == 0) break;
    log::info("round {}: {} more requests for the types short of their targets", u.round, u.jobs);
    st = run(backend, ro);
  }
  return st;
}

Stats Bootstrap::run_local(const RunOptions& ro) {
  Impl& I = *impl_;
  if (!initialized()) fail("{}: the job store is not initialized", dir_.string());
  std::vector<JobRow> jobs;
  {
    Stmt sel(
        I.db,
        "SELECT jid, key, pid, query, gold, answer FROM jobs WHERE state IN (0, 1) AND kind = 4"
        " ORDER BY jid");
    while (sel.step()) {
      JobRow j;
      j.jid = sel.int_at(0);
      j.key = sel.text_at(1);
      j.pid = sel.int_at(2);
      j.query = sel.text_at(3);
      j.gold = sel.text_at(4);
      j.answer = sel.text_at(5);
      jobs.push_back(std::move(j));
    }
  }
  if (jobs.empty()) return stats();
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> devnull(
      ro.progress ? nullptr : std::fopen("/dev/null", "w"), &std::fclose);
  Progress bar("symbolic", jobs.size(), devnull.get());
  Stmt ins(I.db,
           "INSERT OR IGNORE INTO records(key, choice, pid, method, query, response, gold)"
           " VALUES(?,?,?,?,?,?,?)");
  Stmt done(I.db,
            "UPDATE jobs SET state=2, samples=?, kept=?, attempts=attempts+1, result=?"
            " WHERE jid=?");
  uint64_t recorded = 0, kept_total = 0;
  for (const JobRow& j : jobs) {
    SymbolicResult r = symbolic_backward(j.query, j.answer, j.gold);
    Transaction tx(I.db);
    int64_t kept = 0;
    for (std::size_t c = 0; c < r.records.size(); ++c) {
      const SymbolicRecord& rec = r.records[c];
      Method m = rec.type == "SV" ? Method::SV : Method::FOBAR;
      ins.bind(1, j.key).bind(2, static_cast<int64_t>(c)).bind(3, j.pid);
      ins.bind(4, static_cast<int64_t>(m)).bind(5, rec.query).bind(6, rec.response);
      ins.bind(7, rec.x).run();
      if (I.db.changes() > 0) ++kept;
    }
    json summary = {{"linked", r.linked()}, {"failure", r.failure}, {"masks", json::array()}};
    for (const SymbolicMask& m : r.masks)
      summary["masks"].push_back({{"written", m.written}, {"x", m.x}, {"cause", m.cause}});
    done.bind(1, static_cast<int64_t>(r.masks.size())).bind(2, kept);
    done.bind(3, summary.dump()).bind(4, j.jid).run();
    tx.commit();
    kept_total += static_cast<uint64_t>(kept);
    ++recorded;
    bar.set_postfix(fmt::format("{} records", kept_total));
    bar.tick();
    if (ro.after_result) ro.after_result(recorded);
  }
  bar.finish();
  return stats();
}

Stats Bootstrap::run(llm::Backend& backend, const RunOptions& ro) {
  Impl& I = *impl_;
  if (!initialized()) fail("{}: the job store is not initialized", dir_.string());
  run_local(ro);
  if (ro.retry_failed) I.db.exec("UPDATE jobs SET state=0, error=NULL WHERE state=3");
  Impl::Session session(I, backend, ro, stats());
  for (std::vector<JobRow> jobs = session.next_batch(); !jobs.empty();
       jobs = session.next_batch()) {
    session.send(jobs);
    if (!session.fatal_error().empty())
      fail("the backend failed: {} (resume later with the same --out)", session.fatal_error());
  }
  session.finish();
  return stats();
}

std::vector<Record> Bootstrap::records() const {
  Impl& I = *impl_;
  std::vector<Record> out;
  Stmt s(I.db,
         "SELECT key, choice, pid, method, query, response, gold FROM records"
         " ORDER BY pid, method, key, choice");
  while (s.step()) {
    Record r;
    r.job = s.text_at(0);
    r.choice = static_cast<int>(s.int_at(1));
    const ProblemRow& p = I.problems.at(static_cast<std::size_t>(s.int_at(2)));
    r.type = record_type(style_of(p.style), static_cast<Method>(s.int_at(3)));
    r.query = s.text_at(4);
    r.response = s.text_at(5);
    r.gold = s.text_at(6);
    r.original_question = p.question;
    r.problem_id = p.id;
    if (r.job.starts_with("Y/")) r.provenance = "symbolic";
    out.push_back(std::move(r));
  }
  return out;
}

std::size_t Bootstrap::export_records(const fs::path& file) const {
  JsonlWriter w(file);
  std::size_t n = 0;
  for (const Record& r : records()) {
    w.write(r.to_json());
    ++n;
  }
  w.commit();
  return n;
}

void Bootstrap::export_stats(const fs::path& file) const {
  write_file_atomic(file, stats_json(stats()).dump(2) + "\n");
}

json stats_json(const Stats& s) {
  json j = {{"problems", s.problems},
            {"prompts", {{"set", s.prompt_set}, {"digest", s.prompt_digest}}},
            {"methods", json::object()}};
  if (!s.prompt_dir.empty()) j["prompts"]["dir"] = s.prompt_dir;
  for (const auto& [m, ms] : s.methods)
    j["methods"][method_name(m)] = {{"jobs", ms.jobs},
                                    {"pending", ms.pending},
                                    {"in_flight", ms.in_flight},
                                    {"done", ms.done},
                                    {"failed", ms.failed},
                                    {"samples", ms.samples},
                                    {"kept", ms.kept},
                                    {"yield", ms.yield()},
                                    {"prompt_tokens", ms.prompt_tokens},
                                    {"completion_tokens", ms.completion_tokens},
                                    {"rejected", ms.rejected}};
  return j;
}

std::string format_stats(const Stats& s) {
  std::string out = fmt::format("{} seed problems\n", s.problems);
  out += s.prompt_set == "official"
             ? fmt::format("prompts: the official MetaMath prompts from {}\n\n", s.prompt_dir)
             : "prompts: metamath (our templates)\n\n";
  out +=
      "| method | requests | done | pending | in flight | failed | samples | kept | yield (%) | "
      "tokens |\n";
  out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  auto row = [&](const std::string& name, const MethodStats& m) {
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {:.1f} | {} |\n", name, m.jobs,
                       m.done, m.pending, m.in_flight, m.failed, m.samples, m.kept,
                       100.0 * m.yield(), m.prompt_tokens + m.completion_tokens);
  };
  for (const auto& [m, ms] : s.methods) row(method_name(m), ms);
  row("**total**", s.total());
  for (const auto& [m, ms] : s.methods) {
    if (ms.rejected.empty()) continue;
    uint64_t n = 0;
    std::vector<std::string> parts;
    for (const auto& [why, k] : ms.rejected) {
      n += k;
      parts.push_back(fmt::format("{} {}", why, k));
    }
    out +=
        fmt::format("\n{} rewrites rejected: {} ({})\n", method_name(m), n, fmt::join(parts, ", "));
  }
  return out;
}

std::string format_plan(const std::vector<PlanRow>& rows) {
  std::string out =
      "| method | first requests | expected requests | at most | prompt tokens (est.) | "
      "completion tokens (est.) |\n|---|---:|---:|---:|---:|---:|\n";
  PlanRow t{Method::AnsAug};
  for (const PlanRow& r : rows) {
    out += fmt::format("| {} | {} | {} | {} | {:.0f} | {:.0f} |\n", method_name(r.method),
                       r.first_requests, r.expected_requests, r.max_requests, r.prompt_tokens,
                       r.completion_tokens);
    t.first_requests += r.first_requests;
    t.expected_requests += r.expected_requests;
    t.max_requests += r.max_requests;
    t.prompt_tokens += r.prompt_tokens;
    t.completion_tokens += r.completion_tokens;
  }
  out += fmt::format("| **total** | {} | {} | {} | {:.0f} | {:.0f} |\n", t.first_requests,
                     t.expected_requests, t.max_requests, t.prompt_tokens, t.completion_tokens);
  return out;
}

}  // namespace metamath::bootstrap
