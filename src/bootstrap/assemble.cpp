#include "bootstrap/assemble.h"

#include <fmt/format.h>

#include <algorithm>
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
  static const std::vector<std::string> t = {"GSM_AnsAug",  "GSM_Rephrased",  "GSM_SV",
                                             "GSM_FOBAR",   "MATH_AnsAug",    "MATH_Rephrased",
                                             "MATH_SV",     "MATH_FOBAR"};
  return t;
}

struct Entry {
  uint64_t offset;
  uint64_t exact, near, group, order;
  uint32_t file, query_chars, response_chars;
  uint8_t type;
};

}  // namespace

std::map<std::string, uint64_t> default_targets(double scale) {
  const uint64_t paper[] = {80000, 80000, 40000, 40000, 75000, 50000, 15000, 15000};
  std::map<std::string, uint64_t> t;
  for (std::size_t i = 0; i < 8; ++i)
    t[type_names()[i]] = static_cast<uint64_t>(std::llround(static_cast<double>(paper[i]) * scale));
  return t;
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
    q += v.query_chars * static_cast<double>(v.kept);
    r += v.response_chars * static_cast<double>(v.kept);
  }
  if (t.kept) {
    t.query_chars = q / static_cast<double>(t.kept);
    t.response_chars = r / static_cast<double>(t.kept);
  }
  return t;
}

AssembleReport assemble(const AssembleOptions& opts) {
  if (opts.inputs.empty()) fail("assemble: no inputs");
  AssembleReport rep;
  for (const auto& [t, n] : opts.targets) {
    if (std::find(type_names().begin(), type_names().end(), t) == type_names().end())
      fail("assemble: unknown record type '{}' in targets", t);
    rep.types[t].target = n;
  }

  // Test questions.
  std::unordered_set<uint64_t> test;
  for (const auto& f : opts.test_gsm8k)
    for (const auto& p : data::load_gsm8k(f)) test.insert(fnv1a(normalized_text(p.question)));
  for (const auto& f : opts.test_math)
    for (const auto& p : data::load_math(f)) test.insert(fnv1a(normalized_text(p.question)));
  rep.test_questions = test.size();

  // Input files and yields.
  std::vector<fs::path> files;
  for (const auto& in : opts.inputs) {
    if (fs::is_directory(in)) {
      files.push_back(in / "records.jsonl");
      fs::path st = in / "stats.json";
      if (fs::exists(st)) {
        json j;
        try {
          j = json::parse(std::ifstream(st));
        } catch (const std::exception& e) {
          fail("{}: not valid JSON: {}", st.string(), e.what());
        }
        // The shard's style is not in stats.json; attribute yields via the record types below.
        for (auto& [m, v] : j["methods"].items()) {
          rep.types["?" + m].samples += v.value("samples", uint64_t{0});
          rep.types["?" + m].accepted += v.value("kept", uint64_t{0});
        }
      }
    } else {
      files.push_back(in);
    }
    if (!fs::exists(files.back())) fail("{}: no such file (is this a bootstrap --out folder?)",
                                        files.back().string());
  }

  // Pass 1.
  std::vector<Entry> entries;
  std::unordered_set<uint64_t> seen_exact, seen_near;
  std::map<std::string, std::pair<bool, bool>> styles_per_method;  // method -> (gsm, math) seen
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
      json r;
      try {
        r = json::parse(line);
      } catch (const std::exception& e) {
        fail("{}:{}: not valid JSON: {}", files[fi].string(), lineno, e.what());
      }
      std::string where = fmt::format("{}:{}", files[fi].string(), lineno);
      std::string type = require_string(r, "type", where);
      auto ti = std::find(type_names().begin(), type_names().end(), type);
      if (ti == type_names().end()) fail("{}: field 'type': unknown record type '{}'", where, type);
      std::string query = require_string(r, "query", where);
      std::string response = require_string(r, "response", where);
      std::string orig = r.contains("original_question") ? require_string(r, "original_question", where) : query;
      TypeReport& tr = rep.types[type];
      ++tr.read;
      std::string method = type.substr(type.find('_') + 1);
      (type[0] == 'G' ? styles_per_method[method].first : styles_per_method[method].second) = true;
      uint64_t exact = fnv1a(response, fnv1a(query + "\x1f"));
      if (!seen_exact.insert(exact).second) {
        ++tr.exact_dups;
        continue;
      }
      uint64_t near = fnv1a(normalized_text(response), fnv1a(normalized_text(query) + "\x1f"));
      if (opts.near_dedup && !seen_near.insert(near).second) {
        ++tr.near_dups;
        continue;
      }
      uint64_t nq = fnv1a(normalized_text(query)), no = fnv1a(normalized_text(orig));
      if (test.count(nq) || test.count(no)) {
        ++tr.contaminated;
        continue;
      }
      Entry e;
      e.offset = here;
      e.exact = exact;
      e.near = near;
      e.group = no;
      e.order = mix(exact ^ mix(opts.seed));
      e.file = fi;
      e.query_chars = static_cast<uint32_t>(query.size());
      e.response_chars = static_cast<uint32_t>(response.size());
      e.type = static_cast<uint8_t>(ti - type_names().begin());
      entries.push_back(e);
    }
  }
  // Yields: a method's samples belong to the style(s) whose records used it.
  for (auto it = rep.types.begin(); it != rep.types.end();) {
    if (it->first[0] != '?') {
      ++it;
      continue;
    }
    std::string method = it->first.substr(1);
    auto [gsm, math] = styles_per_method[method];
    if (gsm && !math) {
      rep.types["GSM_" + method].samples += it->second.samples;
      rep.types["GSM_" + method].accepted += it->second.accepted;
    } else if (math && !gsm) {
      rep.types["MATH_" + method].samples += it->second.samples;
      rep.types["MATH_" + method].accepted += it->second.accepted;
    } else {
      // Mixed shards: split by records read.
      double g = static_cast<double>(rep.types["GSM_" + method].read);
      double m = static_cast<double>(rep.types["MATH_" + method].read);
      double share = g + m > 0 ? g / (g + m) : 0.5;
      auto s = static_cast<double>(it->second.samples), a = static_cast<double>(it->second.accepted);
      rep.types["GSM_" + method].samples += static_cast<uint64_t>(std::llround(s * share));
      rep.types["GSM_" + method].accepted += static_cast<uint64_t>(std::llround(a * share));
      rep.types["MATH_" + method].samples += static_cast<uint64_t>(std::llround(s * (1 - share)));
      rep.types["MATH_" + method].accepted += static_cast<uint64_t>(std::llround(a * (1 - share)));
    }
    it = rep.types.erase(it);
  }

  // Selection: per type, round-robin over seed questions in a seeded order.
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
  for (std::size_t i : idx) {
    const Entry& e = entries[i];
    const std::string& t = type_names()[e.type];
    auto tg = opts.targets.find(t);
    uint64_t target = tg == opts.targets.end() ? 0 : tg->second;
    if (taken[e.type] >= target) continue;
    ++taken[e.type];
    TypeReport& tr = rep.types[t];
    ++tr.kept;
    tr.query_chars += e.query_chars;
    tr.response_chars += e.response_chars;
    picked.push_back(e);
  }
  for (auto& [t, tr] : rep.types)
    if (tr.kept) {
      tr.query_chars /= static_cast<double>(tr.kept);
      tr.response_chars /= static_cast<double>(tr.kept);
    }
  entries.clear();
  entries.shrink_to_fit();

  // Pass 2: stream the picked records in input order.
  std::sort(picked.begin(), picked.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.file, a.offset) < std::tie(b.file, b.offset);
  });
  JsonlWriter w(opts.out);
  std::size_t k = 0;
  for (uint32_t fi = 0; fi < files.size() && k < picked.size(); ++fi) {
    std::ifstream in(files[fi], std::ios::binary);
    std::string line;
    uint64_t offset = 0;
    while (k < picked.size() && picked[k].file == fi && std::getline(in, line)) {
      uint64_t here = offset;
      offset += line.size() + 1;
      if (here != picked[k].offset) continue;
      json r = json::parse(line);
      json o = {{"query", r["query"]},
                {"response", r["response"]},
                {"type", r["type"]},
                {"original_question", r.contains("original_question") ? r["original_question"]
                                                                      : r["query"]}};
      w.write(o);
      ++k;
    }
  }
  if (k != picked.size()) fail("assemble: an input file changed while it was being read");
  w.commit();
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
  return out;
}

}  // namespace metamath::bootstrap
