// Symbolic backward questions (issue 18): verified backward questions per second over the whole
// GSM8K train set, with graph building, replay, exact solving and solution writing included.
//
//   symbolic_bench [train.jsonl]    (default: $METAMATH_DATA/gsm8k/train.jsonl)
//
// Prints problems/s, verified masks/s and records/s, and where the time goes (the graphs alone,
// then everything), by wall clock and by this process's CPU time (on a shared, loaded machine the
// CPU time is the number to compare).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "bootstrap/symbolic.h"
#include "bootstrap/symbolic_graph.h"
#include "data/problem.h"

using namespace metamath;

int main(int argc, char** argv) {
  std::filesystem::path file =
      argc > 1 ? std::filesystem::path(argv[1]) : data::default_path("gsm8k", "train");
  auto problems = data::load_gsm8k(file);
  using clock = std::chrono::steady_clock;
  auto cpu = [] { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; };
  double c0 = cpu();
  auto t0 = clock::now();
  std::size_t linked = 0;
  for (const auto& p : problems)
    if (bootstrap::symbolic::parse_graph(p.question, p.solution, p.answer).linked()) ++linked;
  double graph_s = std::chrono::duration<double>(clock::now() - t0).count();
  double graph_cpu = cpu() - c0;
  c0 = cpu();
  t0 = clock::now();
  std::size_t verified = 0, records = 0;
  for (const auto& p : problems) {
    auto r = bootstrap::symbolic_backward(p.question, p.solution, p.answer);
    verified += r.verified();
    records += r.records.size();
  }
  double all_s = std::chrono::duration<double>(clock::now() - t0).count();
  double all_cpu = cpu() - c0;
  std::printf("%s: %zu problems, %zu graphs link fully\n", file.string().c_str(), problems.size(),
              linked);
  std::printf("graphs only: %.2f s (%.0f problems/s); CPU %.2f s (%.0f problems/s)\n", graph_s,
              problems.size() / graph_s, graph_cpu, problems.size() / graph_cpu);
  std::printf(
      "everything: %.2f s: %.0f problems/s, %.0f verified backward questions/s (%zu), %.0f "
      "records/s (%zu, FOBAR and SV with solutions)\n",
      all_s, problems.size() / all_s, verified / all_s, verified, records / all_s, records);
  std::printf("everything, CPU: %.2f s: %.0f problems/s, %.0f verified backward questions/s\n",
              all_cpu, problems.size() / all_cpu, verified / all_cpu);
  return 0;
}
