// metamath: the command-line program. Every subcommand is a thin file over a library call.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"

namespace metamath::cli {
namespace {
std::vector<std::pair<int, RegisterFn>>& registry() {
  static std::vector<std::pair<int, RegisterFn>> r;  // function-local: safe from init order
  return r;
}
}  // namespace
Registration::Registration(int order, RegisterFn fn) { registry().emplace_back(order, fn); }
void register_all(CLI::App& app) {
  auto r = registry();
  std::stable_sort(r.begin(), r.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [order, fn] : r) fn(app);
}
}  // namespace metamath::cli

int main(int argc, char** argv) {
  metamath::keep_freed_memory();  // tensors reuse freed pages instead of faulting in new ones
  CLI::App app{
      "metamath: bootstrap math training data (MetaMath: AnsAug, Rephrasing, Self-Verification, "
      "FOBAR), fine-tune, evaluate and serve LLaMA-family models.\n"
      "Data defaults to $METAMATH_DATA (or ../shared/data). Log level: $METAMATH_LOG or "
      "--log-level."};
  app.footer(
      "Threads: every command computes on all physical cores of its CPU affinity mask; set "
      "$METAMATH_THREADS to use fewer or more. On a machine other busy processes share, set "
      "OMP_WAIT_POLICY=passive too (OpenMP's threads otherwise spin at each barrier). Model "
      "weights and KV caches go on transparent huge pages (faster decoding; loading copies the "
      "weights); METAMATH_HUGE_PAGES=off maps the checkpoint without a copy instead.");
  app.require_subcommand(1);
  std::string log_level;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off (default info)");
  app.set_version_flag("--version", "metamath 0.1.0");
  metamath::cli::register_all(app);
  try {
    at::set_num_threads(metamath::default_threads());
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const metamath::Error& e) {
    std::fprintf(stderr, "metamath: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "metamath: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
