#pragma once
// Logging to stderr through spdlog. Level from init() or the METAMATH_LOG environment variable
// (trace, debug, info, warn, error, off).
#include <spdlog/spdlog.h>

namespace metamath::log {

void init(const char* level = nullptr);  // nullptr: METAMATH_LOG or "info"

template <typename... Args>
void info(spdlog::format_string_t<Args...> f, Args&&... args) {
  spdlog::info(f, std::forward<Args>(args)...);
}
template <typename... Args>
void warn(spdlog::format_string_t<Args...> f, Args&&... args) {
  spdlog::warn(f, std::forward<Args>(args)...);
}
template <typename... Args>
void debug(spdlog::format_string_t<Args...> f, Args&&... args) {
  spdlog::debug(f, std::forward<Args>(args)...);
}
template <typename... Args>
void error(spdlog::format_string_t<Args...> f, Args&&... args) {
  spdlog::error(f, std::forward<Args>(args)...);
}

}  // namespace metamath::log
