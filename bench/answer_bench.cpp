// answer_bench: throughput of the MATH answer checker against a Python reference grader.
//
// Loads the `answer` field of every MATH test record, pairs each answer with a shuffled copy (fixed
// seed, mostly unequal pairs) and with itself (equal pairs), interleaved so that any prefix holds
// both kinds, and times metamath::answer::equivalent(..., Style::Math) over all pairs. Then it
// writes the pairs to a temporary JSONL file, runs bench/reference/math_grader_reference.py on the
// same list (a string normaliser and a sympy simplify(a - b) == 0 grader) and prints both rates,
// the ratios and how often the verdicts agree.
//
//   answer_bench [--data PATH] [--seed N] [--reps N] [--sympy-pairs N] [--python EXE]
//                [--reference SCRIPT] [--no-reference] [--keep-pairs FILE] [--show-mismatches N]
//
// --data is the MATH test.jsonl itself or a data folder holding math/test.jsonl (default:
// $METAMATH_DATA, else ../shared/data next to the source tree).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "answer/equiv.h"
#include "core/jsonl.h"

namespace fs = std::filesystem;
using metamath::json;
using metamath::answer::Verdict;

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string data;
  std::uint64_t seed = 20230919;
  int reps = 3;
  long sympy_pairs = 0;  // 0: all pairs
  std::string python = "/usr/bin/python3";
  std::string reference;
  bool run_reference = true;
  std::string keep_pairs;
  int show_mismatches = 5;
};

[[noreturn]] void usage(const char* msg) {
  std::cerr << "answer_bench: " << msg << "\n"
            << "usage: answer_bench [--data PATH] [--seed N] [--reps N] [--sympy-pairs N]\n"
            << "                    [--python EXE] [--reference SCRIPT] [--no-reference]\n"
            << "                    [--keep-pairs FILE] [--show-mismatches N]\n";
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  o.reference = std::string(METAMATH_SOURCE_DIR) + "/bench/reference/math_grader_reference.py";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      auto eq = a.find('=');
      if (eq != std::string::npos) return a.substr(eq + 1);
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    auto name = a.substr(0, a.find('='));
    try {
      if (name == "--data")
        o.data = value();
      else if (name == "--seed")
        o.seed = std::stoull(value());
      else if (name == "--reps")
        o.reps = std::max(1, std::stoi(value()));
      else if (name == "--sympy-pairs")
        o.sympy_pairs = std::max(0L, std::stol(value()));
      else if (name == "--python")
        o.python = value();
      else if (name == "--reference")
        o.reference = value();
      else if (name == "--no-reference")
        o.run_reference = false;
      else if (name == "--keep-pairs")
        o.keep_pairs = value();
      else if (name == "--show-mismatches")
        o.show_mismatches = std::stoi(value());
      else if (name == "--help" || name == "-h")
        usage("help");
      else
        usage(("unknown flag " + a).c_str());
    } catch (const std::invalid_argument&) {
      usage(("bad number in " + a).c_str());
    }
  }
  return o;
}

fs::path resolve_data(const std::string& flag) {
  fs::path p;
  if (!flag.empty()) {
    p = flag;
  } else if (const char* env = std::getenv("METAMATH_DATA"); env && *env) {
    p = env;
  } else {
    p = fs::path(METAMATH_SOURCE_DIR) / ".." / "shared" / "data";
  }
  if (fs::is_directory(p)) p = p / "math" / "test.jsonl";
  if (!fs::exists(p)) {
    throw std::runtime_error("MATH test set not found at " + p.string() +
                             " (pass --data FILE|DIR or set METAMATH_DATA)");
  }
  return p;
}

// Fisher-Yates with the raw engine output, so the order is the same with every standard library
// (std::shuffle's use of uniform_int_distribution is implementation-defined).
template <typename T>
void shuffle_fixed(std::vector<T>& v, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t i = v.size(); i > 1; --i) {
    std::size_t j = static_cast<std::size_t>(rng() % i);
    std::swap(v[i - 1], v[j]);
  }
}

struct Pair {
  std::string a, b;
  bool self;  // b is a itself
};

struct Pass {
  double seconds = 0;               // wall time of the whole pass
  std::vector<double> per_pair_us;  // per pair
  std::vector<Verdict> verdicts;
};

Pass run_pass(const std::vector<Pair>& pairs) {
  Pass p;
  p.per_pair_us.resize(pairs.size());
  p.verdicts.resize(pairs.size());
  auto start = Clock::now();
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    auto t0 = Clock::now();
    auto r = metamath::answer::equivalent(pairs[i].a, pairs[i].b, metamath::answer::Style::Math);
    auto t1 = Clock::now();
    p.verdicts[i] = r.verdict;
    p.per_pair_us[i] = std::chrono::duration<double, std::micro>(t1 - t0).count();
  }
  p.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return p;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::size_t k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

double sum_range(const std::vector<double>& v, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n && i < v.size(); ++i) s += v[i];
  return s;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string fmt_rate(double r) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", r);
  return buf;
}

std::string fmt_x(double r) {
  char buf[64];
  std::snprintf(buf, sizeof buf, r >= 100 ? "%.0f" : "%.1f", r);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse_args(argc, argv);
  try {
    fs::path data = resolve_data(opt.data);

    std::vector<std::string> answers;
    {
      metamath::JsonlReader rd(data);
      json rec;
      while (rd.next(rec)) answers.push_back(metamath::require_string(rec, "answer", rd.where()));
    }
    if (answers.empty()) throw std::runtime_error("no records in " + data.string());
    std::vector<std::string> shuffled = answers;
    shuffle_fixed(shuffled, opt.seed);

    std::vector<Pair> pairs;
    pairs.reserve(2 * answers.size());
    for (std::size_t i = 0; i < answers.size(); ++i) {
      pairs.push_back({answers[i], shuffled[i], false});
      pairs.push_back({answers[i], answers[i], true});
    }
    const std::size_t n = pairs.size();
    const std::size_t n_sym =
        opt.sympy_pairs == 0 ? n
                             : std::min<std::size_t>(n, static_cast<std::size_t>(opt.sympy_pairs));

    std::printf("answer_bench: %zu MATH test answers from %s\n", answers.size(), data.c_str());
    {
      // Timings on a shared 2-core box are only meaningful when it is otherwise idle.
      std::ifstream la("/proc/loadavg");
      std::string l1;
      if (la >> l1)
        std::printf("load average before the run: %s (should be well under 1)\n", l1.c_str());
    }
    std::printf(
        "pairs: %zu (%zu answer vs shuffled copy, seed %llu; %zu answer vs itself), "
        "interleaved\n",
        n, answers.size(), static_cast<unsigned long long>(opt.seed), answers.size());

    // ---- metamath -------------------------------------------------------------------------
    // One untimed warm-up call (library statics, GiNaC initialisation), then `reps` full passes;
    // the pass with the median total is reported. Verdicts come from the first pass (they are
    // deterministic; a difference between passes is reported).
    (void)metamath::answer::equivalent("1", "1", metamath::answer::Style::Math);
    std::vector<Pass> passes;
    for (int r = 0; r < opt.reps; ++r) passes.push_back(run_pass(pairs));
    std::size_t unstable = 0;
    for (std::size_t r = 1; r < passes.size(); ++r)
      for (std::size_t i = 0; i < n; ++i)
        unstable += passes[r].verdicts[i] != passes[0].verdicts[i];
    std::vector<std::size_t> order(passes.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](auto x, auto y) { return passes[x].seconds < passes[y].seconds; });
    const Pass& med = passes[order[order.size() / 2]];
    const auto& verdicts = passes[0].verdicts;

    // Rates use the sum of the per-call times (the same measure for all pairs, for a subset and for
    // the equal/shuffled split); the pass's wall time is printed alongside.
    double ours_all = static_cast<double>(n) / (sum_range(med.per_pair_us, n) * 1e-6);
    double ours_sub = static_cast<double>(n_sym) / (sum_range(med.per_pair_us, n_sym) * 1e-6);
    std::vector<double> t_self, t_other;
    for (std::size_t i = 0; i < n; ++i)
      (pairs[i].self ? t_self : t_other).push_back(med.per_pair_us[i]);

    std::size_t cnt[2][3] = {};  // [self][verdict]
    for (std::size_t i = 0; i < n; ++i) ++cnt[pairs[i].self ? 1 : 0][static_cast<int>(verdicts[i])];
    auto vrow = [&](int self) {
      return std::to_string(cnt[self][0]) + " Equal, " + std::to_string(cnt[self][1]) +
             " NotEqual, " + std::to_string(cnt[self][2]) + " Unparsable";
    };

    std::printf("\nmetamath::answer::equivalent(Style::Math), %d pass(es), median pass:\n",
                opt.reps);
    std::printf("  all pairs        %10s checks/s  (%zu pairs, %.3f s in calls, %.3f s wall)\n",
                fmt_rate(ours_all).c_str(), n, sum_range(med.per_pair_us, n) * 1e-6, med.seconds);
    std::printf(
        "  equal pairs      %10s checks/s  (answer vs itself)\n",
        fmt_rate(static_cast<double>(t_self.size()) / (sum_range(t_self, t_self.size()) * 1e-6))
            .c_str());
    std::printf(
        "  shuffled pairs   %10s checks/s  (answer vs shuffled copy)\n",
        fmt_rate(static_cast<double>(t_other.size()) / (sum_range(t_other, t_other.size()) * 1e-6))
            .c_str());
    std::vector<double> all_us = med.per_pair_us;
    std::printf("  latency per pair p50 %.1f us, p99 %.1f us, max %.1f us\n",
                percentile(all_us, 0.5), percentile(all_us, 0.99),
                *std::max_element(all_us.begin(), all_us.end()));
    std::printf("  verdicts, answer vs itself:      %s\n", vrow(1).c_str());
    std::printf("  verdicts, answer vs shuffled:    %s\n", vrow(0).c_str());
    if (unstable) std::printf("  WARNING: %zu verdicts differ between passes\n", unstable);
    if (cnt[1][0] != answers.size()) {
      int shown = 0;
      std::printf("  answers not equal to themselves (first %d):\n", opt.show_mismatches);
      for (std::size_t i = 0; i < n && shown < opt.show_mismatches; ++i) {
        if (!pairs[i].self || verdicts[i] == Verdict::Equal) continue;
        auto r =
            metamath::answer::equivalent(pairs[i].a, pairs[i].b, metamath::answer::Style::Math);
        std::printf("    %-40s -> %s (%s)\n", json(pairs[i].a).dump().c_str(),
                    metamath::answer::verdict_name(r.verdict), r.reason.c_str());
        ++shown;
      }
    }

    if (!opt.run_reference) return 0;

    // ---- reference -----------------------------------------------------------------------
    fs::path tmpdir = fs::temp_directory_path() /
                      ("answer_bench." + std::to_string(static_cast<long long>(::getpid())));
    fs::create_directories(tmpdir);
    fs::path pairs_file =
        opt.keep_pairs.empty() ? tmpdir / "pairs.jsonl" : fs::path(opt.keep_pairs);
    fs::path ref_out = tmpdir / "reference.json";
    {
      std::ofstream f(pairs_file, std::ios::binary);
      if (!f) throw std::runtime_error("cannot write " + pairs_file.string());
      for (const auto& p : pairs) f << json{{"a", p.a}, {"b", p.b}}.dump() << '\n';
      if (!f) throw std::runtime_error("write failed: " + pairs_file.string());
    }
    std::string cmd = shell_quote(opt.python) + " " + shell_quote(opt.reference) + " --pairs " +
                      shell_quote(pairs_file.string()) + " --sympy-limit " +
                      std::to_string(n_sym == n ? 0 : n_sym) + " --out " +
                      shell_quote(ref_out.string());
    std::printf("\nrunning the Python reference on the same pairs:\n  %s\n", cmd.c_str());
    std::fflush(stdout);
    int rc = std::system(cmd.c_str());
    if (rc != 0) {
      fs::remove_all(tmpdir);
      throw std::runtime_error("reference grader failed (exit status " + std::to_string(rc) +
                               "); is sympy installed for " + opt.python + "?");
    }
    json ref;
    {
      std::ifstream f(ref_out);
      ref = json::parse(f);
    }
    fs::remove_all(tmpdir);

    const auto& js = ref.at("string");
    const auto& jy = ref.at("sympy");
    double str_rate = js.at("checks_per_s").get<double>();
    double sym_rate = jy.at("checks_per_s").get<double>();
    std::size_t sym_n = jy.at("pairs").get<std::size_t>();
    if (sym_n != n_sym) throw std::runtime_error("reference timed a different number of pairs");
    std::string sv = js.at("verdicts").get<std::string>();
    std::string yv = jy.at("verdicts").get<std::string>();

    auto agree = [&](const std::string& v, std::size_t m, std::size_t* ours_only,
                     std::size_t* ref_only) {
      std::size_t same = 0;
      for (std::size_t i = 0; i < m; ++i) {
        bool ours = verdicts[i] == Verdict::Equal;
        bool theirs = v[i] == '1';
        if (ours == theirs)
          ++same;
        else if (ours)
          ++*ours_only;
        else
          ++*ref_only;
      }
      return 100.0 * static_cast<double>(same) / static_cast<double>(m);
    };

    std::string subset_note =
        n_sym == n ? "all " + std::to_string(n) + " pairs"
                   : "first " + std::to_string(n_sym) + " of " + std::to_string(n) + " pairs";
    std::printf("\nreference (Python %s, sympy %s):\n", ref.value("python", "?").c_str(),
                ref.value("sympy_version", "?").c_str());
    std::printf("  string normaliser  %10s checks/s  (all %zu pairs, %zu equal)\n",
                fmt_rate(str_rate).c_str(), n, js.at("equal").get<std::size_t>());
    std::printf("  sympy simplify     %10s checks/s  (%s, %zu equal, decided by %s)\n",
                fmt_rate(sym_rate).c_str(), subset_note.c_str(), jy.at("equal").get<std::size_t>(),
                jy.at("decided_by").dump().c_str());

    std::size_t so = 0, sr = 0, yo = 0, yr = 0;
    double agree_str = agree(sv, n, &so, &sr);
    double agree_sym = agree(yv, n_sym, &yo, &yr);
    double ratio_sym = ours_sub / sym_rate;
    double ratio_str = ours_all / str_rate;

    std::printf("\nsummary:\n");
    std::printf("  metamath %s checks/s vs sympy-reference %s checks/s on %s\n",
                fmt_rate(ours_sub).c_str(), fmt_rate(sym_rate).c_str(), subset_note.c_str());
    std::printf("  metamath / sympy-reference = %s×   (goal ≥50×: %s)\n", fmt_x(ratio_sym).c_str(),
                ratio_sym >= 50 ? "met" : "NOT met");
    std::printf("  metamath / string-normaliser = %s×   (all %zu pairs)\n",
                fmt_x(ratio_str).c_str(), n);
    // Like for like by pair kind: identical strings are cheap for any checker with a fast path,
    // so the ratio on the pairs whose strings differ is the harder, more telling one.
    if (jy.contains("by_kind")) {
      for (const char* kind : {"different", "identical"}) {
        const auto& k = jy.at("by_kind").at(kind);
        std::size_t m = 0;
        double us = 0;
        for (std::size_t i = 0; i < n_sym; ++i) {
          if ((pairs[i].a == pairs[i].b) != (std::string_view(kind) == "identical")) continue;
          ++m;
          us += med.per_pair_us[i];
        }
        if (m == 0 || k.at("checks_per_s").is_null()) continue;
        double ours = static_cast<double>(m) / (us * 1e-6);
        double theirs = k.at("checks_per_s").get<double>();
        std::printf("    %-9s strings (%5zu pairs): metamath %10s/s, sympy %8s/s = %s×\n", kind, m,
                    fmt_rate(ours).c_str(), fmt_rate(theirs).c_str(), fmt_x(ours / theirs).c_str());
      }
    }
    std::printf(
        "  agreement with sympy reference: %.2f%% (%zu equal only for metamath, %zu only "
        "for the reference)\n",
        agree_sym, yo, yr);
    std::printf(
        "  agreement with string normaliser: %.2f%% (%zu equal only for metamath, %zu only "
        "for the normaliser)\n",
        agree_str, so, sr);
    if (opt.show_mismatches > 0 && (yo + yr) > 0) {
      std::printf("  disagreements with the sympy reference (first %d):\n", opt.show_mismatches);
      int shown = 0;
      for (std::size_t i = 0; i < n_sym && shown < opt.show_mismatches; ++i) {
        bool ours = verdicts[i] == Verdict::Equal;
        if (ours == (yv[i] == '1')) continue;
        std::printf("    %s vs %s: metamath %s, sympy %s\n", json(pairs[i].a).dump().c_str(),
                    json(pairs[i].b).dump().c_str(), metamath::answer::verdict_name(verdicts[i]),
                    yv[i] == '1' ? "Equal" : "NotEqual");
        ++shown;
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "answer_bench: " << e.what() << "\n";
    return 1;
  }
}
