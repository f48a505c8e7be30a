// The test helpers' own rules: CI detection and METAMATH_REQUIRE failing (not skipping) in CI.
#include "test_util.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

namespace {

// Sets CI for one scope and puts the previous value back.
class ScopedCi {
 public:
  explicit ScopedCi(const char* value) {
    if (const char* old = std::getenv("CI")) old_ = old;
    if (value)
      ::setenv("CI", value, 1);
    else
      ::unsetenv("CI");
  }
  ~ScopedCi() {
    if (old_)
      ::setenv("CI", old_->c_str(), 1);
    else
      ::unsetenv("CI");
  }

 private:
  std::optional<std::string> old_;
};

void require_something_missing() { METAMATH_REQUIRE(false, "the frobnicator " << 42); }

TEST(TestUtil, CiModeFollowsTheCiVariable) {
  {
    ScopedCi ci(nullptr);
    EXPECT_FALSE(metamath::testing::ci_mode());
  }
  for (const char* off : {"", "0", "false"}) {
    ScopedCi ci(off);
    EXPECT_FALSE(metamath::testing::ci_mode()) << "CI='" << off << "'";
  }
  for (const char* on : {"1", "true", "yes"}) {
    ScopedCi ci(on);
    EXPECT_TRUE(metamath::testing::ci_mode()) << "CI='" << on << "'";
  }
}

TEST(TestUtil, MissingDependencyFailsInCiNamingIt) {
  ScopedCi ci("1");
  EXPECT_FATAL_FAILURE(require_something_missing(),
                       "missing in CI (CI is set, so this is an error): the frobnicator 42");
}

}  // namespace
