#pragma once
// The kernel planner: which implementation runs each product, chosen by measuring on the machine at
// hand (FFTW's planner, for our few shapes).
//
// Why: the fastest path depends on the CPU met at run time (an AVX2-only Zen 3 has no fast bf16
// GEMM in libtorch; a Zen 4 or Sapphire Rapids has oneDNN's AVX-512 bf16 and vdpbf16ps), so a rule
// fixed at compile time loses somewhere. An *operation* (model::linear, ...) lists its *candidates*
// for a call (named implementations, e.g. "avx512", "avx512-bf16dot", "torch"), and asks the
// planner for one under a *key*: operation, dtype, shape class (rows rounded up to a power of two,
// the weight's K and N), thread count and kernel_isa() cap, e.g.
//   "linear bf16 m1 k768 n2048 t2 avx512".
// A plan *entry* is the key's chosen candidate and every candidate's time.
//
// Modes (METAMATH_PLAN, read at first use; set_plan_mode() for programs and tests):
//   measure (default)  use the on-disk plan; a key it lacks is measured at first use (every
//                      candidate run on that call's own inputs, in interleaved rounds, the best
//                      wall time of each kept: a few milliseconds per key; the fixed rule
//                      stays unless beaten by more than 10%), added and saved; on a busy
//                      machine (the threads slow to answer an empty parallel region, before
//                      or after) nothing is kept: the key takes the fixed rule in this
//                      process (source "busy") and is measured again by the next one;
//   cached             use the on-disk plan; a key it lacks takes the operation's fixed rule
//                      (candidate 0), so nothing is ever timed;
//   off                the fixed rule everywhere; the file is neither read nor written.
// Forcing: METAMATH_KERNEL=<candidate> (or ScopedForcedCandidate) makes every call that lists that
// candidate use it; calls without it plan as usual. The tests run the model parity suites forced
// onto each candidate, and the kernel tests call each candidate directly.
//
// File: $METAMATH_PLAN_FILE, else $XDG_CACHE_HOME/metamath/plan.tsv, else
// ~/.cache/metamath/plan.tsv. One line per entry, tab-separated:
//   cpu model (core/cpu.h cpu_model_name()) | key | chosen | name=microseconds,name=...
// Lines of other CPUs are kept as they are; the file is rewritten atomically after each
// measurement. A line that does not parse is an error naming the file and line.
//
// Thread safety: one mutex; a call inside an at::parallel_for region never measures (it takes the
// fixed rule unless the plan has its key).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace metamath::model {

enum class PlanMode { measure, cached, off };

PlanMode plan_mode();
// Sets the mode for this process; returns the previous one.
PlanMode set_plan_mode(PlanMode mode);
const char* plan_mode_name(PlanMode mode);
// "measure", "cached" or "off"; throws metamath::Error otherwise.
PlanMode parse_plan_mode(const std::string& name);

struct CandidateTiming {
  std::string name;
  double seconds = 0;  // best of the measured runs; 0 when not measured
};

struct PlanEntry {
  std::string key;
  std::string chosen;
  std::vector<CandidateTiming> timings;  // empty unless measured (now or in the file)
  std::string source;                    // "measured", "file", "rule", "forced" or "busy"
};

// Picks one of `names` (names[0] is the operation's fixed rule) for `key`; `run(i)` runs candidate
// i once on the call's inputs (used only when measuring), after `prepare()` (untimed, when given:
// e.g. evicting the weight from the caches, as a decode step meets it). Returns the entry;
// entry.chosen is one of names (a planned name no longer listed falls back to measuring, or to
// the rule).
PlanEntry choose_candidate(const std::string& key, const std::vector<std::string>& names,
                           const std::function<void(size_t)>& run,
                           const std::function<void()>& prepare = {});

// The shape class of a call with `rows` rows: rows rounded up to a power of two, at most 512.
int64_t row_class(int64_t rows);

// The entries this process knows for this CPU (read from the file, measured, or met on a busy
// machine), sorted by key.
std::vector<PlanEntry> plan_entries();
// Forgets this CPU's entries (in memory; the file keeps them until the next save replaces the
// keys measured again), so every key is measured afresh at its next use (`metamath plan`).
void forget_plan();
// Drops what this process knows, so the next use reads the file again (tests; after
// METAMATH_PLAN_FILE changes).
void reload_plan();
std::filesystem::path plan_file();

// A number that changes whenever an answer of choose_candidate() for a given key and candidate
// list may change: the mode set, a candidate forced or released, an entry measured, read, met on
// a busy machine, forgotten or reloaded. A caller that keeps choices (the fused decode step's
// tile sets, model/decode.h) keeps them with the generation they were chosen under and asks again
// when it differs. The kernel level (kernel_isa()) and the thread count are part of the key, not
// of this number.
uint64_t plan_generation();

// The candidate named by METAMATH_KERNEL or the innermost ScopedForcedCandidate ("" if none).
std::string forced_candidate();
class ScopedForcedCandidate {
 public:
  explicit ScopedForcedCandidate(std::string name);
  ~ScopedForcedCandidate();
  ScopedForcedCandidate(const ScopedForcedCandidate&) = delete;
  ScopedForcedCandidate& operator=(const ScopedForcedCandidate&) = delete;

 private:
  std::string previous_;
};

}  // namespace metamath::model
