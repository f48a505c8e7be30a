// libFuzzer target for the answer checker: the input is split at the first '\n' into a predicted
// and a gold answer (no newline: the input is compared with itself), then equivalent() runs in both
// styles and normalize_math() on each side; extract() (lenient and strict) and extract_gold() on
// the whole input in both styles, and answer_kind() on the prediction, so every public entry point
// of the checker is under the same budget. Any sanitizer report, escaped exception or a single
// input taking longer than the budget (thread CPU time) twice in a row is a crash.
//
// Environment (optional):
//   METAMATH_FUZZ_BUDGET_MS  budget for one whole input, thread CPU ms (default 100)
//   METAMATH_FUZZ_CALL_MS    Limits::time_ms passed to each library call (default 12; five calls
//                            with a limit per input, so the library's own limits fit inside the
//                            budget)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <string_view>

#include "answer/equiv.h"

namespace {

// The budget is on this thread's CPU time, not wall time: a shared 2-core CI machine can stall a
// process for hundreds of milliseconds, which says nothing about the input.
struct Clock {
  using time_point = double;  // milliseconds of thread CPU time
  static time_point now() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
  }
};
namespace ans = metamath::answer;

double g_budget_ms = 100.0;
ans::Limits g_limits;

double env_ms(const char* name, double def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  return (end && *end == '\0' && d > 0) ? d : def;
}

double ms_since(Clock::time_point t) { return Clock::now() - t; }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_budget_ms = env_ms("METAMATH_FUZZ_BUDGET_MS", 100.0);
  g_limits.time_ms = env_ms("METAMATH_FUZZ_CALL_MS", 12.0);
  // Warm up library statics (GiNaC, tables) so the first input is not charged for them.
  (void)ans::equivalent("\\frac{1}{2}", "0.5", ans::Style::Math, g_limits);
  (void)ans::equivalent("1,000", "1000", ans::Style::Gsm8k, g_limits);
  (void)ans::normalize_math("\\sqrt{2}x+(1,2)", g_limits);
  return 0;
}

namespace {

// Every entry point on one input; the thread CPU ms of each stage into t, the total returned.
// An exception escaping the library is a crash.
double run_all(std::string_view in, double (&t)[5]) {
  std::size_t nl = in.find('\n');
  std::string_view pred = in.substr(0, nl);
  std::string_view gold = nl == std::string_view::npos ? in : in.substr(nl + 1);
  const char* stage = "equivalent(Math)";
  auto start = Clock::now();
  try {
    auto t0 = Clock::now();
    (void)ans::equivalent(pred, gold, ans::Style::Math, g_limits);
    t[0] = ms_since(t0);
    stage = "equivalent(Gsm8k)";
    t0 = Clock::now();
    (void)ans::equivalent(pred, gold, ans::Style::Gsm8k, g_limits);
    t[1] = ms_since(t0);
    stage = "normalize_math(pred)";
    t0 = Clock::now();
    (void)ans::normalize_math(pred, g_limits);
    t[2] = ms_since(t0);
    stage = "normalize_math(gold)";
    t0 = Clock::now();
    (void)ans::normalize_math(gold, g_limits);
    t[3] = ms_since(t0);
    // The other public entry points, on the whole input as a completion or a solution.
    stage = "extract/extract_gold/answer_kind";
    t0 = Clock::now();
    for (ans::Style style : {ans::Style::Math, ans::Style::Gsm8k}) {
      (void)ans::extract(in, style, true);
      (void)ans::extract(in, style, false);
      (void)ans::extract_gold(in, style);
    }
    (void)ans::answer_kind(pred, ans::Style::Math, g_limits);
    t[4] = ms_since(t0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "latex_fuzz: %s threw: %s\n", stage, e.what());
    __builtin_trap();
  } catch (...) {
    std::fprintf(stderr, "latex_fuzz: %s threw a non-std exception\n", stage);
    __builtin_trap();
  }
  return ms_since(start);
}

}  // namespace

// An input over the budget runs once more and is a crash only when it is over again: on a virtual
// machine the time the host takes the CPU away still counts as the thread's CPU time (the guest
// cannot see it), so one slow pass can be the host's (a CI run met 106 ms on an input that takes
// 5-12 ms), while an input that is slow because of what it is stays slow.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  double t[5] = {}, again[5] = {};
  const double first = run_all(in, t);
  if (first <= g_budget_ms) return 0;
  const double second = run_all(in, again);
  if (second <= g_budget_ms) return 0;
  std::fprintf(stderr,
               "latex_fuzz: input took %.1f ms, then %.1f ms > budget %.0f ms (second pass: "
               "equivalent Math %.1f, Gsm8k %.1f, normalize_math pred %.1f, gold %.1f, "
               "extract/kind %.1f; library limit %.0f ms per call)\n",
               first, second, g_budget_ms, again[0], again[1], again[2], again[3], again[4],
               g_limits.time_ms);
  __builtin_trap();
}
