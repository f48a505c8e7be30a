#pragma once
// Each subcommand lives in its own file and registers itself on the root app.
#include <CLI/CLI.hpp>

namespace metamath::cli {

void register_score(CLI::App& app);
void register_init_model(CLI::App& app);
void register_generate(CLI::App& app);

}  // namespace metamath::cli
