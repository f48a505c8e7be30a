#include "eval/score.h"

#include <fmt/format.h>

#include <fstream>

#include "answer/official.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/text.h"

namespace metamath::eval {
namespace fs = std::filesystem;

const std::vector<std::string>& default_pred_fields() {
  static const std::vector<std::string> v = {"completion", "filtered_resps", "resps",
                                             "response",   "output",         "prediction",
                                             "pred",       "generated_text", "model_output"};
  return v;
}

const std::vector<std::string>& default_gold_fields() {
  static const std::vector<std::string> v = {"gold",         "gold_answer", "answer",
                                             "target",       "solution",    "doc.answer",
                                             "doc.solution", "reference"};
  return v;
}

const json* lookup(const json& rec, std::string_view path) {
  const json* cur = &rec;
  for (const std::string& part : text::split(path, '.')) {
    if (cur->is_object()) {
      auto it = cur->find(part);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (cur->is_array()) {
      char* end = nullptr;
      unsigned long idx = std::strtoul(part.c_str(), &end, 10);
      if (part.empty() || *end != '\0' || idx >= cur->size()) return nullptr;
      cur = &(*cur)[idx];
    } else {
      return nullptr;
    }
  }
  return cur;
}

std::string field_text(const json& v) {
  const json* cur = &v;
  while (cur->is_array() && !cur->empty()) cur = &(*cur)[0];
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_null() || (cur->is_array() && cur->empty())) return {};
  return cur->dump();
}

namespace {

// Resolves "auto" to the first candidate present in the record.
std::string resolve_field(const json& rec, const std::string& requested,
                          const std::vector<std::string>& candidates) {
  if (requested != kAuto) return requested;
  for (const auto& c : candidates)
    if (lookup(rec, c)) return c;
  return {};
}

std::size_t count_lines(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::size_t n = 0;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) n += buf[i] == '\n';
    if (!in) break;
  }
  return n;
}

void add(Tally& t, bool correct, bool unparsable) {
  ++t.total;
  t.correct += correct;
  t.unparsable += unparsable;
}

}  // namespace

RowVerdict score_one(const std::string& pred_text, const std::string& gold_text,
                     answer::Style style, const answer::Limits& limits) {
  RowVerdict v;
  answer::Extracted gold = answer::extract_gold(gold_text, style);
  answer::Extracted pred = answer::extract(pred_text, style);
  v.gold_answer = gold.answer;
  v.pred_answer = pred.answer;
  v.pred_method = pred.method;
  if (!gold.found()) {
    v.verdict = answer::Verdict::Unparsable;
    v.reason = "no gold answer found";
    return v;
  }
  if (!pred.found()) {
    v.verdict = answer::Verdict::NotEqual;
    v.reason = "no answer found in prediction";
    return v;
  }
  answer::Result r = answer::equivalent(pred.answer, gold.answer, style, limits);
  v.verdict = r.verdict;
  v.correct = r.equal();
  v.reason = r.reason;
  if (pred.method == answer::Method::LastNumber) v.reason += " (prediction: last number in text)";
  return v;
}

Scoring parse_scoring(std::string_view name) {
  if (name == "ours") return Scoring::Ours;
  if (name == "official") return Scoring::Official;
  if (name == "both") return Scoring::Both;
  fail("unknown scoring \"{}\" (expected ours, official or both)", name);
}

const char* scoring_name(Scoring s) {
  return s == Scoring::Ours ? "ours" : s == Scoring::Official ? "official" : "both";
}

namespace {

// Adds one row's verdict to the overall, subject and level tallies of one scoring.
void add_all(Tally& overall, std::map<std::string, Tally>& by_subject,
             std::map<std::string, Tally>& by_level, const std::string& subject,
             const std::string& level, bool correct, bool unparsable) {
  add(overall, correct, unparsable);
  if (!subject.empty()) add(by_subject[subject], correct, unparsable);
  if (!level.empty()) add(by_level[level], correct, unparsable);
}

json verdict_row(const json& id, const RowVerdict& v, const answer::official::Verdict* off,
                 Scoring scoring) {
  json row;
  row["id"] = id;
  if (scoring == Scoring::Official) {
    row["correct"] = off->correct;
    row["pred_answer"] = off->pred;
    row["gold_answer"] = off->gold;
    row["scoring"] = "official";
    return row;
  }
  row["correct"] = v.correct;
  row["pred_answer"] = v.pred_answer;
  row["gold_answer"] = v.gold_answer;
  row["verdict"] = answer::verdict_name(v.verdict);
  row["pred_method"] = answer::method_name(v.pred_method);
  row["reason"] = v.reason;
  if (off) {
    row["official_correct"] = off->correct;
    row["official_pred"] = off->pred;
    row["official_gold"] = off->gold;
  }
  return row;
}

}  // namespace

ScoreSummary score_file(const fs::path& input, const fs::path& out, const ScoreOptions& opts) {
  ScoreSummary s;
  s.scoring = opts.scoring;
  JsonlReader reader(input, opts.jsonl);
  std::unique_ptr<JsonlWriter> writer;
  if (!out.empty()) writer = std::make_unique<JsonlWriter>(out, JsonlWriter::Mode::Atomic);
  std::unique_ptr<Progress> bar;
  if (opts.progress) bar = std::make_unique<Progress>("score", count_lines(input));

  json rec;
  std::size_t index = 0;
  std::string subject_field, level_field;
  while (reader.next(rec)) {
    if (s.pred_field.empty()) {
      s.pred_field = resolve_field(rec, opts.pred_field, default_pred_fields());
      s.gold_field = resolve_field(rec, opts.gold_field, default_gold_fields());
      if (s.pred_field.empty())
        fail("{}: no prediction field found (tried {}); name it with --pred-field", reader.where(),
             fmt::join(default_pred_fields(), ", "));
      if (s.gold_field.empty())
        fail("{}: no gold field found (tried {}); name it with --gold-field", reader.where(),
             fmt::join(default_gold_fields(), ", "));
      subject_field =
          resolve_field(rec, opts.subject_field, {"subject", "type", "doc.type", "doc.subject"});
      level_field = resolve_field(rec, opts.level_field, {"level", "doc.level"});
    }
    const json* pred = lookup(rec, s.pred_field);
    const json* gold = lookup(rec, s.gold_field);
    if (!pred) fail("{}: missing prediction field \"{}\"", reader.where(), s.pred_field);
    if (!gold) fail("{}: missing gold field \"{}\"", reader.where(), s.gold_field);

    std::string subject, level;
    if (opts.style == answer::Style::Math) {
      if (const json* sub = subject_field.empty() ? nullptr : lookup(rec, subject_field))
        subject = field_text(*sub);
      if (const json* lv = level_field.empty() ? nullptr : lookup(rec, level_field))
        level = lv->is_number() ? "Level " + field_text(*lv) : field_text(*lv);
    }
    RowVerdict v;
    if (opts.scoring != Scoring::Official) {
      v = score_one(field_text(*pred), field_text(*gold), opts.style, opts.limits);
      add_all(s.overall, s.by_subject, s.by_level, subject, level, v.correct,
              v.verdict == answer::Verdict::Unparsable);
      ++s.pred_methods[answer::method_name(v.pred_method)];
    }
    std::optional<answer::official::Verdict> off;
    if (opts.scoring != Scoring::Ours) {
      off = answer::official::score(field_text(*pred), field_text(*gold), opts.style);
      if (opts.scoring == Scoring::Official)
        add_all(s.overall, s.by_subject, s.by_level, subject, level, off->correct, false);
      else
        add_all(s.official, s.official_by_subject, s.official_by_level, subject, level,
                off->correct, false);
    }
    if (writer) {
      const json* id = lookup(rec, opts.id_field);
      writer->write(verdict_row(id ? *id : json(index), v, off ? &*off : nullptr, opts.scoring));
    }
    ++index;
    if (bar) {
      bar->set_postfix(fmt::format("acc {:.2f}%", 100.0 * s.overall.accuracy()));
      bar->tick();
    }
  }
  if (bar) bar->finish();
  s.bad_lines = reader.bad_lines();
  if (index == 0) fail("{}: no records to score", input.string());
  if (writer) writer->commit();
  return s;
}

namespace {
// One table row; with an official tally beside ours (Scoring::Both), its columns too.
std::string table_row(const std::string& name, const Tally& t, const Tally* off) {
  std::string row =
      fmt::format("| {} | {} | {} | {:.2f} |", name, t.total, t.correct, 100.0 * t.accuracy());
  if (off)
    row += fmt::format(" {} | {:.2f} | {:+.2f} |", off->correct, 100.0 * off->accuracy(),
                       100.0 * (t.accuracy() - off->accuracy()));
  return row + "\n";
}

void table_rows(std::string& md, const std::map<std::string, Tally>& m,
                const std::map<std::string, Tally>* off) {
  for (const auto& [k, t] : m) {
    const Tally* o = nullptr;
    if (off && off->count(k)) o = &off->at(k);
    md += table_row(k, t, off ? o : nullptr);
  }
}
}  // namespace

std::string format_summary(const ScoreSummary& s) {
  bool both = s.scoring == Scoring::Both;
  std::string md;
  if (s.scoring == Scoring::Official)
    md += "Scored as MetaMath's official eval scripts do (--scoring official).\n\n";
  if (both) {
    md +=
        "| split | n | correct | accuracy (%) | official correct | official accuracy (%) | "
        "difference (points) |\n|---|---:|---:|---:|---:|---:|---:|\n";
  } else {
    md += "| split | n | correct | accuracy (%) |\n|---|---:|---:|---:|\n";
  }
  md += table_row("**overall**", s.overall, both ? &s.official : nullptr);
  table_rows(md, s.by_subject, both ? &s.official_by_subject : nullptr);
  table_rows(md, s.by_level, both ? &s.official_by_level : nullptr);
  if (s.overall.unparsable)
    md += fmt::format("\n{} rows could not be parsed (counted wrong).\n", s.overall.unparsable);
  if (s.bad_lines) md += fmt::format("{} malformed lines skipped.\n", s.bad_lines);
  return md;
}

json summary_json(const ScoreSummary& s) {
  auto tj = [](const Tally& t) {
    return json{{"n", t.total},
                {"correct", t.correct},
                {"unparsable", t.unparsable},
                {"accuracy", t.accuracy()}};
  };
  json j{{"scoring", scoring_name(s.scoring)}, {"overall", tj(s.overall)},
         {"pred_field", s.pred_field},         {"gold_field", s.gold_field},
         {"bad_lines", s.bad_lines},           {"pred_methods", s.pred_methods}};
  for (const auto& [k, t] : s.by_subject) j["by_subject"][k] = tj(t);
  for (const auto& [k, t] : s.by_level) j["by_level"][k] = tj(t);
  if (s.scoring == Scoring::Both) {
    j["official"]["overall"] = tj(s.official);
    for (const auto& [k, t] : s.official_by_subject) j["official"]["by_subject"][k] = tj(t);
    for (const auto& [k, t] : s.official_by_level) j["official"]["by_level"][k] = tj(t);
  }
  return j;
}

}  // namespace metamath::eval
