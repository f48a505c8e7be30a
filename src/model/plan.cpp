#include "model/plan.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>

#include "core/atomic_file.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/log.h"

namespace metamath::model {

namespace fs = std::filesystem;

namespace {

// Measuring: one warm-up run per candidate, then interleaved rounds (every contender once per
// round, so a burst of load on the shared machine hits all of them alike), the best wall time of
// each kept. At least kMinRounds rounds and at most kRounds, stopping after kMinRounds once a
// round has taken more than kRoundBudget seconds; from the second round on, a candidate more
// than kDropFactor times slower than the best so far stops being timed (it cannot win). A plan is
// kept for good, so one sample per candidate is not enough: a single disturbed round once
// planned libtorch for a 768 x 768 bf16 product measured at 2.5 ms against 6.4 ms for kernels
// that take 0.07 ms.
constexpr int kRounds = 7;
constexpr int kMinRounds = 3;
constexpr double kRoundBudget = 0.02;
constexpr double kDropFactor = 4.0;
// A measurement is only kept when the machine is quiet enough to mean something: an empty
// parallel region over the threads (a few microseconds on an idle machine) must take less than
// kBusyRegion seconds, best of kBusyProbes, before and after. On a machine whose cores are taken
// by other work a thread waits a scheduler slice at every region, and every multi-threaded
// candidate then measures ~5-7 ms whatever its size (seen: 7 ms for a 128 x 64 x 64 product),
// a plan that would be kept for good. A busy key takes the fixed rule in this process only.
constexpr double kBusyRegion = 250e-6;
constexpr int kBusyProbes = 5;
// The fixed rule (candidate 0) is kept unless another candidate is faster by more than this
// factor: timings on a shared machine are noisy, and on 2 Sapphire Rapids cores libtorch's f32
// GEMM won 32-row timings by ~7% yet decoded at batch 32 slower than the rule's tiles.
constexpr double kRuleMargin = 1.10;

struct State {
  std::mutex mu;
  bool loaded = false;
  std::map<std::string, PlanEntry> entries;  // this CPU's, by key
  std::map<std::string, PlanEntry> busy;     // keys met on a busy machine: the rule, not saved
  std::string forced;
  bool forced_read = false;
};

State& state() {
  static State s;
  return s;
}

std::atomic<int> mode_value{-1};  // -1: not read from the environment yet

// plan_generation(): bumped after each change it covers (so a reader that saw the old number
// before the change asks again).
std::atomic<uint64_t> generation{0};
void changed() { generation.fetch_add(1); }

PlanMode env_mode() {
  const char* env = std::getenv("METAMATH_PLAN");
  if (!env || !*env) return PlanMode::measure;
  try {
    return parse_plan_mode(env);
  } catch (const Error&) {
    fail("METAMATH_PLAN={}: expected measure, cached or off", env);
  }
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) parts.push_back(part);
  if (!s.empty() && s.back() == sep) parts.emplace_back();
  return parts;
}

// "name=12.5,name=40" (microseconds) -> timings.
std::vector<CandidateTiming> parse_timings(const std::string& field, const fs::path& file,
                                           size_t line_no) {
  std::vector<CandidateTiming> out;
  if (field.empty()) return out;
  for (const std::string& item : split(field, ',')) {
    const size_t eq = item.find('=');
    char* end = nullptr;
    const double us = eq == std::string::npos ? 0 : std::strtod(item.c_str() + eq + 1, &end);
    if (eq == std::string::npos || eq == 0 || end == item.c_str() + eq + 1 || *end != '\0')
      fail("{}:{}: timing '{}': expected candidate=microseconds", file.string(), line_no, item);
    out.push_back({item.substr(0, eq), us * 1e-6});
  }
  return out;
}

std::string format_timings(const std::vector<CandidateTiming>& timings) {
  std::string s;
  for (const CandidateTiming& t : timings) {
    if (!s.empty()) s += ',';
    s += t.name + '=' + std::to_string(t.seconds * 1e6);
  }
  return s;
}

// Every line of the plan file as (cpu, entry); a missing file is empty.
std::vector<std::pair<std::string, PlanEntry>> read_plan_file(const fs::path& file) {
  std::vector<std::pair<std::string, PlanEntry>> lines;
  if (!fs::exists(file)) return lines;
  std::istringstream in(read_file(file));
  std::string line;
  for (size_t no = 1; std::getline(in, line); ++no) {
    if (line.empty()) continue;
    const std::vector<std::string> f = split(line, '\t');
    if (f.size() != 4 || f[0].empty() || f[1].empty() || f[2].empty())
      fail("{}:{}: expected 4 tab-separated fields (cpu, key, chosen, timings), got {}",
           file.string(), no, f.size());
    lines.push_back({f[0], PlanEntry{f[1], f[2], parse_timings(f[3], file, no), "file"}});
  }
  return lines;
}

void load_locked(State& s) {
  if (s.loaded) return;
  s.loaded = true;
  const std::string cpu = cpu_model_name();
  for (auto& [line_cpu, entry] : read_plan_file(plan_file()))
    if (line_cpu == cpu) s.entries[entry.key] = entry;
  changed();
}

// Rewrites the file: other CPUs' lines as they were, then this CPU's entries (the file's own for
// keys not in memory, else the memory's).
void save_locked(const State& s) {
  const fs::path file = plan_file();
  const std::string cpu = cpu_model_name();
  std::map<std::string, PlanEntry> mine;
  std::string out;
  for (auto& [line_cpu, entry] : read_plan_file(file)) {
    if (line_cpu == cpu)
      mine[entry.key] = entry;
    else
      out += line_cpu + '\t' + entry.key + '\t' + entry.chosen + '\t' +
             format_timings(entry.timings) + '\n';
  }
  for (const auto& [key, entry] : s.entries) mine[key] = entry;
  for (const auto& [key, entry] : mine)
    out += cpu + '\t' + key + '\t' + entry.chosen + '\t' + format_timings(entry.timings) + '\n';
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  if (ec) fail("{}: cannot create the plan folder: {}", file.parent_path().string(), ec.message());
  write_file_atomic(file, out);
}

// Whether the threads answer a parallel region promptly (see kBusyRegion).
bool machine_quiet() {
  using Clock = std::chrono::steady_clock;
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < kBusyProbes; ++i) {
    const auto t0 = Clock::now();
    at::parallel_for(0, at::get_num_threads(), 1, [](int64_t, int64_t) {});
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best < kBusyRegion;
}

PlanEntry measure(const std::string& key, const std::vector<std::string>& names,
                  const std::function<void(size_t)>& run, const std::function<void()>& prepare) {
  using Clock = std::chrono::steady_clock;
  std::vector<double> best(names.size(), std::numeric_limits<double>::infinity());
  for (size_t i = 0; i < names.size(); ++i) {  // warm-up: first touches, packing
    if (prepare) prepare();
    run(i);
  }
  std::vector<bool> contender(names.size(), true);
  for (int r = 0; r < kRounds; ++r) {
    const auto round_start = Clock::now();
    for (size_t i = 0; i < names.size(); ++i) {
      if (!contender[i]) continue;
      if (prepare) prepare();
      const auto t0 = Clock::now();
      run(i);
      best[i] = std::min(best[i], std::chrono::duration<double>(Clock::now() - t0).count());
    }
    const double fastest = *std::min_element(best.begin(), best.end());
    for (size_t i = 0; r >= 1 && i < names.size(); ++i)  // from two samples: one may be disturbed
      contender[i] = contender[i] && best[i] <= kDropFactor * fastest;
    if (r + 1 >= kMinRounds &&
        std::chrono::duration<double>(Clock::now() - round_start).count() > kRoundBudget)
      break;
  }
  PlanEntry e{key, names[0], {}, "measured"};
  size_t win = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    e.timings.push_back({names[i], best[i]});
    if (best[i] < best[win]) win = i;
  }
  if (best[0] <= best[win] * kRuleMargin) win = 0;
  e.chosen = names[win];
  return e;
}

bool listed(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Whether e's timings name every one of names.
bool measured_every(const PlanEntry& e, const std::vector<std::string>& names) {
  return std::all_of(names.begin(), names.end(), [&](const std::string& n) {
    return std::any_of(e.timings.begin(), e.timings.end(),
                       [&](const CandidateTiming& t) { return t.name == n; });
  });
}

}  // namespace

PlanMode plan_mode() {
  int m = mode_value.load(std::memory_order_relaxed);
  if (m < 0) {
    int expected = -1;
    mode_value.compare_exchange_strong(expected, static_cast<int>(env_mode()));
    m = mode_value.load(std::memory_order_relaxed);
  }
  return static_cast<PlanMode>(m);
}

PlanMode set_plan_mode(PlanMode mode) {
  plan_mode();
  const auto previous = static_cast<PlanMode>(mode_value.exchange(static_cast<int>(mode)));
  changed();
  return previous;
}

const char* plan_mode_name(PlanMode mode) {
  switch (mode) {
    case PlanMode::measure:
      return "measure";
    case PlanMode::cached:
      return "cached";
    case PlanMode::off:
      return "off";
  }
  return "?";
}

PlanMode parse_plan_mode(const std::string& name) {
  for (PlanMode m : {PlanMode::measure, PlanMode::cached, PlanMode::off})
    if (name == plan_mode_name(m)) return m;
  fail("unknown plan mode '{}': expected measure, cached or off", name);
}

fs::path plan_file() {
  if (const char* env = std::getenv("METAMATH_PLAN_FILE"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return fs::path(xdg) / "metamath" / "plan.tsv";
  if (const char* home = std::getenv("HOME"); home && *home)
    return fs::path(home) / ".cache" / "metamath" / "plan.tsv";
  return fs::path(".cache") / "metamath" / "plan.tsv";
}

int64_t row_class(int64_t rows) {
  int64_t c = 1;
  while (c < rows && c < 512) c *= 2;
  return c;
}

std::string forced_candidate() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.forced_read) {
    s.forced_read = true;
    if (const char* env = std::getenv("METAMATH_KERNEL"); env && *env && s.forced.empty())
      s.forced = env;
  }
  return s.forced;
}

ScopedForcedCandidate::ScopedForcedCandidate(std::string name) {
  previous_ = forced_candidate();
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.forced = std::move(name);
  changed();
}

ScopedForcedCandidate::~ScopedForcedCandidate() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.forced = previous_;
  changed();
}

PlanEntry choose_candidate(const std::string& key, const std::vector<std::string>& names,
                           const std::function<void(size_t)>& run,
                           const std::function<void()>& prepare) {
  if (names.empty()) fail("choose_candidate({}): no candidates", key);
  if (const std::string f = forced_candidate(); !f.empty() && listed(names, f))
    return {key, f, {}, "forced"};
  const PlanMode mode = plan_mode();
  if (mode == PlanMode::off || names.size() == 1) return {key, names[0], {}, "rule"};
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  load_locked(s);
  const auto it = s.entries.find(key);
  const bool planned = it != s.entries.end() && listed(names, it->second.chosen);
  // An entry is re-measured when a listed candidate is missing from its timings: one added since
  // it was measured (a new kernel, or a CPU feature now granted) would otherwise never be tried.
  if (planned && (mode == PlanMode::cached || measured_every(it->second, names))) return it->second;
  if (mode == PlanMode::cached || at::in_parallel_region())
    return planned ? it->second : PlanEntry{key, names[0], {}, "rule"};
  if (auto it = s.busy.find(key); it != s.busy.end() && listed(names, it->second.chosen))
    return it->second;
  PlanEntry e;
  if (!machine_quiet() || (e = measure(key, names, run, prepare), !machine_quiet())) {
    log::debug("plan: {}: the machine is busy; the fixed rule in this process", key);
    s.busy[key] = PlanEntry{key, names[0], {}, "busy"};
    changed();
    return s.busy[key];
  }
  log::debug("plan: {} -> {} ({})", key, e.chosen, format_timings(e.timings));
  s.entries[key] = e;
  changed();
  try {
    save_locked(s);
  } catch (const Error& err) {
    // An unwritable cache folder costs the next process a re-measure, not this run.
    log::warn("plan: not saved: {}", err.what());
  }
  return e;
}

std::vector<PlanEntry> plan_entries() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (plan_mode() != PlanMode::off) load_locked(s);
  std::map<std::string, PlanEntry> all = s.busy;
  for (const auto& [key, e] : s.entries) all[key] = e;
  std::vector<PlanEntry> out;
  for (const auto& [key, e] : all) out.push_back(e);
  return out;
}

void forget_plan() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.loaded = true;
  s.entries.clear();
  s.busy.clear();
  changed();
}

void reload_plan() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.loaded = false;
  s.entries.clear();
  s.busy.clear();
  changed();
}

uint64_t plan_generation() { return generation.load(); }

}  // namespace metamath::model
