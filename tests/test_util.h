#pragma once
// Shared test helpers: locating the real data and running the CLI.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace metamath::testing {

// ../shared/data (or METAMATH_DATA) when present; nullopt otherwise (tests then GTEST_SKIP with
// a clear message).
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

#define METAMATH_REQUIRE_DATA(var)                                                          \
  auto var##_opt = ::metamath::testing::data_dir();                                         \
  if (!var##_opt) GTEST_SKIP() << "real data not found: set METAMATH_DATA or put ../shared/data " \
                                  "beside the checkout";                                    \
  const std::filesystem::path var = *var##_opt

#define METAMATH_REQUIRE_TOKENIZER()                \
  if (!::metamath::testing::llama2_tokenizer_dir()) \
  GTEST_SKIP() << "../shared/tokenizers/llama2/tokenizer.model not found beside the checkout"
