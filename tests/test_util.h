#pragma once
// Shared test helpers: locating the real data and running the CLI.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace metamath::testing {

// True when the CI environment variable is set to anything but "", "0" or "false" (.ci/run sets
// it). Then a missing dependency (real data, tokenizer files, node modules, Debian's python3
// modules) fails the test that needs it instead of skipping it: see METAMATH_REQUIRE.
bool ci_mode();
// ../shared/data (or METAMATH_DATA) when present; nullopt otherwise (tests then skip with a clear
// message, or fail in CI).
std::optional<std::filesystem::path> data_dir();
// ../shared/tokenizers/llama2 (the real LLaMA-2 tokenizer.model) beside the checkout, or nullopt
// (tests then skip with METAMATH_REQUIRE_TOKENIZER()).
std::optional<std::filesystem::path> llama2_tokenizer_dir();
// A fresh empty temporary folder for one test, removed when the test process exits (kept when a
// test failed or METAMATH_KEEP_TEST_DIRS is set).
std::filesystem::path temp_dir(const std::string& name);
// Runs a shell command, returns exit code and captured stdout+stderr.
struct RunResult {
  int code;
  std::string output;
};
RunResult run_command(const std::string& cmd);
// The message of the metamath::Error that f throws, or "(no error)".
std::string error_of(const std::function<void()>& f);
// Path of the built metamath program.
std::string metamath_bin();

}  // namespace metamath::testing

// Use in a test body (or SetUp): when `present` is false the test stops here, skipped with the
// message `what` on a developer's machine, failed with it when ci_mode() (so a CI run can never
// go green with a whole parity suite silently skipped). `what` is streamed: "x " << name works.
#define METAMATH_REQUIRE(present, what)                                         \
  if (present) {                                                                \
  } else if (::metamath::testing::ci_mode())                                    \
    GTEST_FAIL() << "missing in CI (CI is set, so this is an error): " << what; \
  else                                                                          \
    GTEST_SKIP() << what

#define METAMATH_REQUIRE_DATA(var)                                                        \
  auto var##_opt = ::metamath::testing::data_dir();                                       \
  METAMATH_REQUIRE(var##_opt.has_value(),                                                 \
                   "real data not found: set METAMATH_DATA or put ../shared/data beside " \
                   "the checkout");                                                       \
  const std::filesystem::path var = *var##_opt

#define METAMATH_REQUIRE_TOKENIZER()                                        \
  METAMATH_REQUIRE(::metamath::testing::llama2_tokenizer_dir().has_value(), \
                   "../shared/tokenizers/llama2/tokenizer.model not found beside the checkout")
