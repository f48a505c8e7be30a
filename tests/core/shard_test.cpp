// core/shard.h: the one set of rules for --shard I/N and torchrun's RANK/WORLD_SIZE/LOCAL_RANK.
#include "core/shard.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "test_util.h"

namespace metamath {
namespace {

// Sets the torchrun variables for one test (nullptr = unset) and restores them afterwards.
class TorchrunVars {
 public:
  TorchrunVars(const char* world, const char* rank, const char* local_rank = nullptr) {
    for (const char* name : kNames) {
      const char* v = std::getenv(name);
      if (v) saved_[name] = v;
    }
    set("WORLD_SIZE", world);
    set("RANK", rank);
    set("LOCAL_RANK", local_rank);
  }
  ~TorchrunVars() {
    for (const char* name : kNames) {
      auto it = saved_.find(name);
      set(name, it == saved_.end() ? nullptr : it->second.c_str());
    }
  }

 private:
  static void set(const char* name, const char* v) {
    if (v)
      ::setenv(name, v, 1);
    else
      ::unsetenv(name);
  }
  static constexpr const char* kNames[] = {"WORLD_SIZE", "RANK", "LOCAL_RANK"};
  std::map<std::string, std::string> saved_;
};

TEST(Shard, ParsesTheFlag) {
  Shard s = parse_shard("2/8");
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 8);
  EXPECT_TRUE(parse_shard("0/1").whole());
  EXPECT_FALSE(parse_shard("1/4").whole());
  EXPECT_EQ(parse_shard(" 3 / 4 ").index, 3);  // spaces around the numbers are allowed
  for (const char* bad :
       {"8/8", "a/2", "1", "-1/2", "+1/2", "1/0", "", "1/4x", "1.5/4", "/4", "1/", "0/1234567"}) {
    std::string err = testing::error_of([&] { parse_shard(bad); });
    EXPECT_EQ(err, "--shard \"" + std::string(bad) + "\": expected I/N with 0 <= I < N, e.g. 0/4")
        << bad;
  }
}

TEST(Shard, OwnsEveryNthItem) {
  Shard s{1, 3};
  EXPECT_FALSE(s.owns(0));
  EXPECT_TRUE(s.owns(1));
  EXPECT_FALSE(s.owns(2));
  EXPECT_TRUE(s.owns(4));
  EXPECT_TRUE(Shard{}.owns(7));
}

TEST(Shard, TorchrunEnvironment) {
  {
    TorchrunVars v(nullptr, "3");  // RANK without WORLD_SIZE: not launched by torchrun
    EXPECT_FALSE(torchrun_env().has_value());
    EXPECT_TRUE(shard_from_env().whole());
  }
  {
    TorchrunVars v("", "3");  // empty counts as unset
    EXPECT_FALSE(torchrun_env().has_value());
  }
  {
    TorchrunVars v("4", "3", "1");
    auto e = torchrun_env();
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->rank, 3);
    EXPECT_EQ(e->world_size, 4);
    EXPECT_EQ(e->local_rank, 1);
    Shard s = shard_from_env();
    EXPECT_EQ(s.index, 3);
    EXPECT_EQ(s.count, 4);
  }
  {
    TorchrunVars v("4", "0");
    EXPECT_EQ(torchrun_env()->local_rank, 0);  // LOCAL_RANK defaults to 0
  }
}

TEST(Shard, TorchrunEnvironmentErrorsNameTheVariable) {
  {
    TorchrunVars v("4", "4");
    EXPECT_EQ(testing::error_of([] { torchrun_env(); }),
              "RANK=4 WORLD_SIZE=4: expected 0 <= RANK < WORLD_SIZE (torchrun's environment)");
    // shard_from_env adds the flag that overrides the environment.
    EXPECT_EQ(testing::error_of([] { shard_from_env(); }),
              "RANK=4 WORLD_SIZE=4: expected 0 <= RANK < WORLD_SIZE (torchrun's environment), or "
              "pass --shard I/N");
  }
  {
    TorchrunVars v("2", nullptr);  // WORLD_SIZE without RANK
    EXPECT_EQ(
        testing::error_of([] { torchrun_env(); }),
        "RANK=(unset) WORLD_SIZE=2: expected 0 <= RANK < WORLD_SIZE (torchrun's environment)");
  }
  {
    TorchrunVars v("0", "0");
    EXPECT_EQ(testing::error_of([] { torchrun_env(); }),
              "RANK=0 WORLD_SIZE=0: expected 0 <= RANK < WORLD_SIZE (torchrun's environment)");
  }
  for (const char* bad : {"-1", "+1", "x", "1x", " 1", "1234567"}) {
    TorchrunVars v("4", bad);
    EXPECT_EQ(testing::error_of([] { torchrun_env(); }),
              "environment variable RANK='" + std::string(bad) + "' is not a non-negative integer")
        << bad;
  }
  {
    TorchrunVars v("two", "0");
    EXPECT_EQ(testing::error_of([] { torchrun_env(); }),
              "environment variable WORLD_SIZE='two' is not a non-negative integer");
  }
  {
    TorchrunVars v("2", "0", "a");
    EXPECT_EQ(testing::error_of([] { torchrun_env(); }),
              "environment variable LOCAL_RANK='a' is not a non-negative integer");
  }
}

TEST(Shard, FlagWinsOverEnvironment) {
  TorchrunVars v("4", "3");
  Shard s = resolve_shard("1/2");
  EXPECT_EQ(s.index, 1);
  EXPECT_EQ(s.count, 2);
  s = resolve_shard("");
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.count, 4);
  TorchrunVars broken("4", "9");
  EXPECT_EQ(resolve_shard("0/1").count, 1);  // a broken environment is not read at all
  EXPECT_NE(testing::error_of([] { resolve_shard(""); }).find("RANK=9 WORLD_SIZE=4"),
            std::string::npos);
}

TEST(Shard, NonNegativeIntEnv) {
  ::setenv("METAMATH_SHARD_TEST_INT", "29500", 1);
  EXPECT_EQ(nonnegative_int_env("METAMATH_SHARD_TEST_INT"), 29500);
  ::setenv("METAMATH_SHARD_TEST_INT", "", 1);
  EXPECT_FALSE(nonnegative_int_env("METAMATH_SHARD_TEST_INT").has_value());
  ::unsetenv("METAMATH_SHARD_TEST_INT");
  EXPECT_FALSE(nonnegative_int_env("METAMATH_SHARD_TEST_INT").has_value());
}

}  // namespace
}  // namespace metamath
