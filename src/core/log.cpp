#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace metamath::log {

void init(const char* level) {
  static bool done = false;
  if (!done) {
    auto logger = spdlog::stderr_color_mt("metamath");
    logger->set_pattern("%^[%l]%$ %v");
    spdlog::set_default_logger(logger);
    done = true;
  }
  const char* lv = level ? level : std::getenv("METAMATH_LOG");
  spdlog::set_level(lv ? spdlog::level::from_str(lv) : spdlog::level::info);
}

}  // namespace metamath::log
