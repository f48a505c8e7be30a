#include "test_util.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <vector>

#include "core/error.h"

namespace metamath::testing {
namespace fs = std::filesystem;

namespace {
// Tests never time anything: the kernel planner (src/model/plan.h) takes its fixed rule in every
// test process and the metamath processes they start, unless a test or the ctest entry
// (METAMATH_PLAN / METAMATH_KERNEL) says otherwise.
const bool kPlanOff = [] { return setenv("METAMATH_PLAN", "off", 0) == 0; }();
}  // namespace

bool ci_mode() {
  const char* env = std::getenv("CI");
  if (!env) return false;
  const std::string v = env;
  return !v.empty() && v != "0" && v != "false";
}

std::optional<fs::path> data_dir() {
  if (const char* env = std::getenv("METAMATH_DATA"); env && *env) {
    if (fs::exists(fs::path(env) / "gsm8k")) return fs::path(env);
  }
  for (fs::path p :
       {fs::path(METAMATH_SOURCE_DIR) / ".." / "shared" / "data", fs::path("../shared/data")}) {
    if (fs::exists(p / "gsm8k")) return fs::canonical(p);
  }
  return std::nullopt;
}

std::optional<fs::path> llama2_tokenizer_dir() {
  const fs::path p = fs::path(METAMATH_SOURCE_DIR) / ".." / "shared" / "tokenizers" / "llama2";
  if (fs::exists(p / "tokenizer.model")) return p;
  return std::nullopt;
}

namespace {

std::mutex temp_mu;
std::vector<fs::path>& temp_dirs() {
  static auto* dirs = new std::vector<fs::path>();  // never destroyed: used from atexit
  return *dirs;
}

// At exit: the test's folders go, unless a test failed (kept for a look, and named on stderr) or
// METAMATH_KEEP_TEST_DIRS is set.
void remove_temp_dirs() {
  std::lock_guard lock(temp_mu);
  const char* keep = std::getenv("METAMATH_KEEP_TEST_DIRS");
  const bool failed = ::testing::UnitTest::GetInstance()->Failed();
  for (const auto& p : temp_dirs()) {
    if ((keep && *keep) || failed) {
      if (failed) std::fprintf(stderr, "kept test folder %s\n", p.c_str());
      continue;
    }
    std::error_code ec;
    fs::remove_all(p, ec);
  }
}

}  // namespace

fs::path temp_dir(const std::string& name) {
  std::random_device rd;
  fs::path p = fs::temp_directory_path() / ("metamath_test_" + name + "_" + std::to_string(rd()));
  fs::remove_all(p);
  fs::create_directories(p);
  std::lock_guard lock(temp_mu);
  if (temp_dirs().empty()) std::atexit(remove_temp_dirs);
  temp_dirs().push_back(p);
  return p;
}

RunResult run_command(const std::string& cmd) {
  std::string full = cmd + " 2>&1";
  FILE* pipe = ::popen(full.c_str(), "r");
  RunResult r{-1, ""};
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string metamath_bin() { return METAMATH_BIN; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const metamath::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace metamath::testing
