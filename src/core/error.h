#pragma once
// Errors a user can act on: every failure that reaches the CLI is a metamath::Error whose message
// names the file, line and field involved and what was expected.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace metamath {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace metamath
