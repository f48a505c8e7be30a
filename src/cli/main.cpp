// metamath: the command-line program. Every subcommand is a thin file over a library call.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"

int main(int argc, char** argv) {
  CLI::App app{
      "metamath: bootstrap math training data (MetaMath: AnsAug, Rephrasing, Self-Verification, "
      "FOBAR), fine-tune, evaluate and serve LLaMA-family models.\n"
      "Data defaults to $METAMATH_DATA (or ../shared/data). Log level: $METAMATH_LOG or --log-level."};
  app.require_subcommand(1);
  std::string log_level;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off (default info)");
  app.set_version_flag("--version", "metamath 0.1.0");
  metamath::cli::register_score(app);
  metamath::cli::register_init_model(app);
  metamath::cli::register_generate(app);
  try {
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
