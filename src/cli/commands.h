#pragma once
// Each subcommand lives in its own file and registers itself on the root app through a static
// Registration object, so adding a subcommand never touches main.cpp:
//
//   void register_score(CLI::App& app) { ... }
//   const Registration kScore{10, register_score};
//
// `order` sets the position in --help (lower first).
#include <CLI/CLI.hpp>
#include <functional>

namespace metamath::cli {

using RegisterFn = void (*)(CLI::App&);

struct Registration {
  Registration(int order, RegisterFn fn);
};

// Calls every registered function on app, in order.
void register_all(CLI::App& app);

}  // namespace metamath::cli
