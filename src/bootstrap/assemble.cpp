#include "bootstrap/assemble.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/jsonl.h"
#include "data/problem.h"

namespace metamath::bootstrap {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

const std::vector<std::string>& type_names() {
  static const std::vector<std::string> t = {"GSM_AnsAug", "GSM_Rephrased", "GSM_SV",
                                             "GSM_FOBAR",  "MATH_AnsAug",   "MATH_Rephrased",
                                             "MATH_SV",    "MATH_FOBAR"};
  return t;
}

struct Entry {
  uint64_t offset;
  uint64_t exact, near, group, order;
  uint32_t file, query_chars, response_chars;
  uint8_t type;
  bool symbolic;
};

}  // namespace

std::map<std::string, uint64_t> default_targets(double scale) {
  const uint64_t paper[] = {80000, 80000, 40000, 40000, 75000, 50000, 15000, 15000};
  std::map<std::string, uint64_t> t;
  for (std::size_t i = 0; i < 8; ++i)
    t[type_names()[i]] = static_cast<uint64_t>(std::llround(static_cast<double>(paper[i]) * scale));
  return t;
}

std::map<std::string, uint64_t> parse_targets(double scale,
                                              const std::vector<std::string>& overrides) {
  std::map<std::string, uint64_t> targets = default_targets(scale);
  for (const auto& t : overrides) {
    std::size_t eq = t.find('=');
    if (eq == std::string::npos || !targets.count(t.substr(0, eq)))
      fail("--target '{}': expected TYPE=N with TYPE one of GSM_AnsAug ... MATH_FOBAR", t);
    try {
      targets[t.substr(0, eq)] = std::stoull(t.substr(eq + 1));
    } catch (const std::exception&) {
      fail("--target '{}': N is not a number", t);
    }
  }
  return targets;
}

void add_test_sets(AssembleOptions& opts, const fs::path& gsm8k, const fs::path& math) {
  fs::path g = gsm8k.empty() ? data::default_path("gsm8k", "test") : gsm8k;
  fs::path m = math.empty() ? data::default_path("math", "test") : math;
  for (const auto& [p, list] : {std::pair{g, &opts.test_gsm8k}, std::pair{m, &opts.test_math}}) {
    if (!fs::exists(p))
      fail(
          "{}: test set not found for the contamination check (give --test-gsm8k/--test-math or "
          "--no-contamination-check)",
          p.string());
    list->push_back(p);
  }
}

std::string normalized_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (std::isalnum(static_cast<unsigned char>(c)))
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return out;
}

TypeReport AssembleReport::total() const {
  TypeReport t;
  double q = 0, r = 0;
  for (const auto& [k, v] : types) {
    t.read += v.read;
    t.exact_dups += v.exact_dups;
    t.near_dups += v.near_dups;
    t.contaminated += v.contaminated;
    t.target += v.target;
    t.kept += v.kept;
    t.samples += v.samples;
    t.accepted += v.accepted;
    t.symbolic_read += v.symbolic_read;
    t.symbolic_kept += v.symbolic_kept;
    q += v.query_chars * static_cast<double>(v.kept);
    r += v.response_chars * static_cast<double>(v.kept);
  }
  if (t.kept) {
    t.query_chars = q / static_cast<double>(t.kept);
    t.response_chars = r / static_cast<double>(t.kept);
  }
  return t;
}

namespace {

// The report's rows for the requested targets; unknown types are an error.
AssembleReport start_report(const AssembleOptions& opts) {
  AssembleReport rep;
  for (const auto& [t, n] : opts.targets) {
    if (std::find(type_names().begin(), type_names().end(), t) == type_names().end())
      fail("assemble: unknown record type '{}' in targets", t);
    rep.types[t].target = n;
  }
  return rep;
}

// Test questions: hashes of their normalised text.
std::unordered_set<uint64_t> test_question_keys(const AssembleOptions& opts) {
  std::unordered_set<uint64_t> test;
  for (const auto& f : opts.test_gsm8k)
    for (const auto& p : data::load_gsm8k(f)) test.insert(fnv1a(normalized_text(p.question)));
  for (const auto& f : opts.test_math)
    for (const auto& p : data::load_math(f)) test.insert(fnv1a(normalized_text(p.question)));
  return test;
}

// Input files and yields: a folder gives its records.jsonl, and its stats.json's per-method
// samples/kept go to "?<method>" rows (the shard's style is not in stats.json; attribute_yields
// assigns them from the record types).
std::vector<fs::path> input_files(const AssembleOptions& opts, AssembleReport& rep) {
  std::vector<fs::path> files;
  for (const auto& in : opts.inputs) {
    if (fs::is_directory(in)) {
      files.push_back(in / "records.jsonl");
      fs::path st = in / "stats.json";
      if (fs::exists(st)) {
        json j = read_json_file(st);
        for (auto& [m, v] : j["methods"].items()) {
          if (m == "symbolic") continue;  // not sampled: its records are exact, no yield
          rep.types["?" + m].samples += v.value("samples", uint64_t{0});
          rep.types["?" + m].accepted += v.value("kept", uint64_t{0});
        }
      }
    } else {
      files.push_back(in);
    }
    if (!fs::exists(files.back()))
      fail("{}: no such file (is this a bootstrap --out folder?)", files.back().string());
  }
  return files;
}

// Pass 1's state: hashes seen so far and which styles each method's records came in.
struct Scan {
  std::vector<Entry> entries;
  std::unordered_set<uint64_t> seen_exact, seen_near;
  std::map<std::string, std::pair<bool, bool>> styles_per_method;  // method -> (gsm, math) seen
};

// One record of pass 1: counted in its type's row, then dropped as an exact or near duplicate or
// as test-set overlap, or kept as an Entry.
void scan_record(const json& r, const std::string& where, uint32_t file, uint64_t offset,
                 const AssembleOptions& opts, const std::unordered_set<uint64_t>& test,
                 AssembleReport& rep, Scan& scan) {
  std::string type = require_string(r, "type", where);
  auto ti = std::find(type_names().begin(), type_names().end(), type);
  if (ti == type_names().end()) fail("{}: field 'type': unknown record type '{}'", where, type);
  std::string query = require_string(r, "query", where);
  std::string response = require_string(r, "response", where);
  std::string orig =
      r.contains("original_question") ? require_string(r, "original_question", where) : query;
  TypeReport& tr = rep.types[type];
  ++tr.read;
  const bool symbolic = r.contains("provenance") && r["provenance"].is_string() &&
                        r["provenance"].get<std::string>() == "symbolic";
  if (symbolic) {
    ++tr.symbolic_read;
    if (opts.no_symbolic) return;
  }
  std::string method = type.substr(type.find('_') + 1);
  (type[0] == 'G' ? scan.styles_per_method[method].first : scan.styles_per_method[method].second) =
      true;
  uint64_t exact = fnv1a(response, fnv1a(query + "\x1f"));
  if (!scan.seen_exact.insert(exact).second) {
    ++tr.exact_dups;
    return;
  }
  uint64_t near = fnv1a(normalized_text(response), fnv1a(normalized_text(query) + "\x1f"));
  if (opts.near_dedup && !scan.seen_near.insert(near).second) {
    ++tr.near_dups;
    return;
  }
  uint64_t nq = fnv1a(normalized_text(query)), no = fnv1a(normalized_text(orig));
  if (test.count(nq) || test.count(no)) {
    ++tr.contaminated;
    return;
  }
  Entry e;
  e.offset = offset;
  e.exact = exact;
  e.near = near;
  e.group = no;
  e.order = mix(exact ^ mix(opts.seed));
  e.file = file;
  e.query_chars = static_cast<uint32_t>(query.size());
  e.response_chars = static_cast<uint32_t>(response.size());
  e.type = static_cast<uint8_t>(ti - type_names().begin());
  e.symbolic = symbolic;
  scan.entries.push_back(e);
}

// Pass 1: every line of every file, keeping only a few hashes per record.
Scan scan_files(const std::vector<fs::path>& files, const AssembleOptions& opts,
                const std::unordered_set<uint64_t>& test, AssembleReport& rep) {
  Scan scan;
  for (uint32_t fi = 0; fi < files.size(); ++fi) {
    std::ifstream in(files[fi], std::ios::binary);
    if (!in) fail("{}: cannot open", files[fi].string());
    std::string line;
    uint64_t offset = 0;
    std::size_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      uint64_t here = offset;
      offset += line.size() + 1;
      if (line.empty()) continue;
      std::string where = fmt::format("{}:{}", files[fi].string(), lineno);
      scan_record(parse_json(line, where), where, fi, here, opts, test, rep, scan);
    }
  }
  return scan;
}

// Yields: a method's samples belong to the style(s) whose records used it.
void attribute_yields(AssembleReport& rep,
                      const std::map<std::string, std::pair<bool, bool>>& styles_per_method) {
  for (auto it = rep.types.begin(); it != rep.types.end();) {
    if (it->first[0] != '?') {
      ++it;
      continue;
    }
    std::string method = it->first.substr(1);
    auto found = styles_per_method.find(method);
    auto [gsm, math] = found == styles_per_method.end() ? std::pair{false, false} : found->second;
    const auto samples = it->second.samples, accepted = it->second.accepted;
    auto add = [&](const std::string& type, uint64_t s, uint64_t a) {
      rep.types[type].samples += s;
      rep.types[type].accepted += a;
    };
    if (gsm && !math) {
      add("GSM_" + method, samples, accepted);
    } else if (math && !gsm) {
      add("MATH_" + method, samples, accepted);
    } else {
      // Mixed shards: split by records read.
      double g = static_cast<double>(rep.types["GSM_" + method].read);
      double m = static_cast<double>(rep.types["MATH_" + method].read);
      double share = g + m > 0 ? g / (g + m) : 0.5;
      auto s = static_cast<double>(samples), a = static_cast<double>(accepted);
      add("GSM_" + method, static_cast<uint64_t>(std::llround(s * share)),
          static_cast<uint64_t>(std::llround(a * share)));
      add("MATH_" + method, static_cast<uint64_t>(std::llround(s * (1 - share))),
          static_cast<uint64_t>(std::llround(a * (1 - share))));
    }
    it = rep.types.erase(it);
  }
}

// Selection: per type, round-robin over seed questions in a seeded order, up to the target.
// Fills the kept counts and mean lengths of the report.
std::vector<Entry> select_entries(std::vector<Entry> entries, const AssembleOptions& opts,
                                  AssembleReport& rep) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.type, a.group, a.order) < std::tie(b.type, b.group, b.order);
  });
  std::vector<uint32_t> rank(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i)
    rank[i] = (i > 0 && entries[i].type == entries[i - 1].type &&
               entries[i].group == entries[i - 1].group)
                  ? rank[i - 1] + 1
                  : 0;
  std::vector<std::size_t> idx(entries.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    const Entry &x = entries[a], &y = entries[b];
    return std::make_tuple(x.type, rank[a], mix(x.group ^ opts.seed), x.order) <
           std::make_tuple(y.type, rank[b], mix(y.group ^ opts.seed), y.order);
  });
  std::vector<Entry> picked;
  std::vector<uint64_t> taken(type_names().size(), 0);
  // With a symbolic share: per type and pool (LLM 0, symbolic 1) a quota, then the rest of the
  // target from whatever is left.
  std::vector<std::array<uint64_t, 2>> pool_taken(type_names().size(), {0, 0});
  auto target_of = [&](uint8_t type) {
    auto tg = opts.targets.find(type_names()[type]);
    return tg == opts.targets.end() ? uint64_t{0} : tg->second;
  };
  auto quota = [&](uint8_t type, bool symbolic) {
    uint64_t target = target_of(type);
    auto sym =
        static_cast<uint64_t>(std::llround(opts.symbolic_share * static_cast<double>(target)));
    return symbolic ? sym : target - sym;
  };
  std::vector<bool> used(entries.size(), false);
  auto take = [&](std::size_t i) {
    const Entry& e = entries[i];
    used[i] = true;
    ++taken[e.type];
    ++pool_taken[e.type][e.symbolic ? 1 : 0];
    TypeReport& tr = rep.types[type_names()[e.type]];
    ++tr.kept;
    if (e.symbolic) ++tr.symbolic_kept;
    tr.query_chars += e.query_chars;
    tr.response_chars += e.response_chars;
    picked.push_back(e);
  };
  const bool shares = opts.symbolic_share >= 0;
  for (std::size_t i : idx) {
    const Entry& e = entries[i];
    if (taken[e.type] >= target_of(e.type)) continue;
    if (shares && pool_taken[e.type][e.symbolic ? 1 : 0] >= quota(e.type, e.symbolic)) continue;
    take(i);
  }
  if (shares)
    for (std::size_t i : idx)
      if (!used[i] && taken[entries[i].type] < target_of(entries[i].type)) take(i);
  for (auto& [t, tr] : rep.types)
    if (tr.kept) {
      tr.query_chars /= static_cast<double>(tr.kept);
      tr.response_chars /= static_cast<double>(tr.kept);
    }
  return picked;
}

// Pass 2: stream the picked records into `out` in input order (MetaMathQA fields only).
void write_picked(const std::vector<fs::path>& files, std::vector<Entry> picked,
                  const fs::path& out) {
  std::sort(picked.begin(), picked.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.file, a.offset) < std::tie(b.file, b.offset);
  });
  JsonlWriter w(out);
  std::size_t k = 0;
  for (uint32_t fi = 0; fi < files.size() && k < picked.size(); ++fi) {
    std::ifstream in(files[fi], std::ios::binary);
    std::string line;
    uint64_t offset = 0;
    std::size_t lineno = 0;
    while (k < picked.size() && picked[k].file == fi && std::getline(in, line)) {
      ++lineno;
      uint64_t here = offset;
      offset += line.size() + 1;
      if (here != picked[k].offset) continue;
      json r = parse_json(line, fmt::format("{}:{}", files[fi].string(), lineno));
      json o = {{"query", r["query"]},
                {"response", r["response"]},
                {"type", r["type"]},
                {"original_question",
                 r.contains("original_question") ? r["original_question"] : r["query"]}};
      w.write(o);
      ++k;
    }
  }
  if (k != picked.size()) fail("assemble: an input file changed while it was being read");
  w.commit();
}

}  // namespace

AssembleReport assemble(const AssembleOptions& opts) {
  if (opts.inputs.empty()) fail("assemble: no inputs");
  AssembleReport rep = start_report(opts);
  const std::unordered_set<uint64_t> test = test_question_keys(opts);
  rep.test_questions = test.size();
  const std::vector<fs::path> files = input_files(opts, rep);
  Scan scan = scan_files(files, opts, test, rep);
  attribute_yields(rep, scan.styles_per_method);
  std::vector<Entry> picked = select_entries(std::move(scan.entries), opts, rep);
  write_picked(files, std::move(picked), opts.out);
  return rep;
}

std::string format_report(const AssembleReport& r) {
  std::string out =
      "| type | read | exact dups | near dups | test overlap | target | kept | yield (%) | "
      "query chars | response chars |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  auto row = [&](const std::string& name, const TypeReport& t) {
    std::string y = t.samples ? fmt::format("{:.1f}", 100.0 * static_cast<double>(t.accepted) /
                                                          static_cast<double>(t.samples))
                              : "-";
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {:.0f} | {:.0f} |\n", name,
                       t.read, t.exact_dups, t.near_dups, t.contaminated, t.target, t.kept, y,
                       t.query_chars, t.response_chars);
  };
  for (const auto& [name, t] : r.types) row(name, t);
  row("**total**", r.total());
  std::string sym;
  for (const auto& [name, t] : r.types)
    if (t.symbolic_read)
      sym += fmt::format("{}{} {} of {} read", sym.empty() ? "" : ", ", name, t.symbolic_kept,
                         t.symbolic_read);
  if (!sym.empty()) out += "\nsymbolic records kept: " + sym + "\n";
  std::vector<std::string> short_of = shortfalls(r);
  if (!short_of.empty()) out += "\ntargets not met:\n";
  for (const std::string& line : short_of) out += "- " + line + "\n";
  return out;
}

std::vector<std::string> shortfalls(const AssembleReport& r) {
  std::vector<std::string> out;
  for (const auto& [name, t] : r.types) {
    if (t.kept >= t.target) continue;
    // Which bootstrap setting yields more records of this type.
    std::string more = "more seed questions";
    if (name.ends_with("_AnsAug")) more = "more samples per question (bootstrap -k)";
    if (name.ends_with("_Rephrased")) more = "more rephrasings per question (--rephrasings)";
    if (name.ends_with("_SV") || name.ends_with("_FOBAR"))
      more = "more masks or backward samples per question (--masks, --backward-samples)";
    if (t.read == 0) {
      out.push_back(fmt::format(
          "{}: kept 0 of the {} target: no record of this type was read (was the method run on "
          "these seed problems?)",
          name, t.target));
      continue;
    }
    out.push_back(fmt::format(
        "{}: kept {} of the {} target ({:.1f}%): not enough kept samples of this type: {} were "
        "read, of which {} exact duplicates, {} near duplicates and {} test-set questions were "
        "removed; bootstrap {}",
        name, t.kept, t.target, 100.0 * static_cast<double>(t.kept) / static_cast<double>(t.target),
        t.read, t.exact_dups, t.near_dups, t.contaminated, more));
  }
  return out;
}

}  // namespace metamath::bootstrap
