// The kernel planner (src/model/plan.h): plan files written by hand are read back under `cached`,
// keys they lack take the fixed rule without running anything, `measure` runs every candidate and
// saves the entry beside other CPUs' lines, forcing wins over the plan, `off` never touches the
// file, and a malformed line is an error naming the file and line. Which candidate wins a
// measurement is not asserted (tests never judge speed).
#include "model/plan.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/atomic_file.h"
#include "core/cpu.h"
#include "test_util.h"

namespace mm = metamath::model;
namespace fs = std::filesystem;

namespace {

// Points the planner at a fresh plan file in `mode` for one test; restores both afterwards.
class Plan : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = metamath::testing::temp_dir("plan") / "sub" / "plan.tsv";
    setenv("METAMATH_PLAN_FILE", file_.c_str(), 1);
    previous_ = mm::set_plan_mode(mm::PlanMode::cached);
    mm::reload_plan();
  }
  void TearDown() override {
    unsetenv("METAMATH_PLAN_FILE");
    mm::set_plan_mode(previous_);
    mm::reload_plan();
  }
  fs::path file_;
  mm::PlanMode previous_ = mm::PlanMode::off;
};

const std::vector<std::string> kNames = {"rule", "fast", "other"};

// A run function that records which candidates ran.
struct Recorder {
  std::vector<int> runs = std::vector<int>(3, 0);
  void operator()(size_t i) { ++runs[i]; }
};

}  // namespace

TEST_F(Plan, CachedReadsTheFileAndOtherwiseTakesTheRuleWithoutRunning) {
  const std::string cpu = metamath::cpu_model_name();
  fs::create_directories(file_.parent_path());
  metamath::write_file_atomic(
      file_, "Some Other CPU\tk1\tother\t\n" + cpu + "\tk1\tfast\trule=30.5,fast=10,other=20\n");
  Recorder rec;
  mm::PlanEntry e = mm::choose_candidate("k1", kNames, std::ref(rec));
  EXPECT_EQ(e.chosen, "fast");
  EXPECT_EQ(e.source, "file");
  ASSERT_EQ(e.timings.size(), 3u);
  EXPECT_DOUBLE_EQ(e.timings[0].seconds, 30.5e-6);
  e = mm::choose_candidate("k2", kNames, std::ref(rec));
  EXPECT_EQ(e.chosen, "rule");
  EXPECT_EQ(e.source, "rule");
  // A planned name the call no longer lists is not used.
  e = mm::choose_candidate("k1", {"rule", "other"}, std::ref(rec));
  EXPECT_EQ(e.chosen, "rule");
  EXPECT_EQ(rec.runs, (std::vector<int>{0, 0, 0}));
}

TEST_F(Plan, MeasureRunsEveryCandidateAndSavesBesideOtherCpus) {
  fs::create_directories(file_.parent_path());
  metamath::write_file_atomic(file_, "Some Other CPU\tk1\tother\tother=1\n");
  mm::set_plan_mode(mm::PlanMode::measure);
  Recorder rec;
  const mm::PlanEntry e = mm::choose_candidate("k1", kNames, std::ref(rec));
  EXPECT_EQ(e.source, "measured");
  ASSERT_EQ(e.timings.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_GE(rec.runs[i], 2) << kNames[i];  // a warm-up and at least one timed round
    EXPECT_EQ(e.timings[i].name, kNames[i]);
  }
  // The second call uses the entry: nothing runs again.
  const std::vector<int> before = rec.runs;
  EXPECT_EQ(mm::choose_candidate("k1", kNames, std::ref(rec)).chosen, e.chosen);
  EXPECT_EQ(rec.runs, before);
  // A fresh process (reload) reads the same choice from the file; the other CPU's line is kept.
  const std::string text = metamath::read_file(file_);
  EXPECT_NE(text.find("Some Other CPU\tk1\tother\tother="), std::string::npos) << text;
  EXPECT_NE(text.find(metamath::cpu_model_name() + "\tk1\t" + e.chosen + "\trule="),
            std::string::npos)
      << text;
  mm::reload_plan();
  mm::set_plan_mode(mm::PlanMode::cached);
  const mm::PlanEntry again = mm::choose_candidate("k1", kNames, std::ref(rec));
  EXPECT_EQ(again.chosen, e.chosen);
  EXPECT_EQ(again.source, "file");
  ASSERT_EQ(mm::plan_entries().size(), 1u);
  EXPECT_EQ(mm::plan_entries()[0].key, "k1");
}

// A file entry whose timings lack a candidate the call now lists (a kernel added since, or a CPU
// feature the process is now granted) is measured again in measure mode, and used as it is in
// cached mode.
TEST_F(Plan, EntryWithoutANewCandidateIsMeasuredAgain) {
  const std::string cpu = metamath::cpu_model_name();
  fs::create_directories(file_.parent_path());
  metamath::write_file_atomic(file_, cpu + "\tk1\tfast\trule=30,fast=10\n");
  Recorder rec;
  EXPECT_EQ(mm::choose_candidate("k1", kNames, std::ref(rec)).source, "file");  // cached
  EXPECT_EQ(rec.runs, (std::vector<int>{0, 0, 0}));
  mm::set_plan_mode(mm::PlanMode::measure);
  const mm::PlanEntry e = mm::choose_candidate("k1", kNames, std::ref(rec));
  EXPECT_EQ(e.source, "measured");
  EXPECT_GE(rec.runs[2], 2);  // "other" ran
  ASSERT_EQ(e.timings.size(), 3u);
  // Measured with every candidate: used from now on without running anything.
  const std::vector<int> before = rec.runs;
  mm::reload_plan();
  EXPECT_EQ(mm::choose_candidate("k1", kNames, std::ref(rec)).source, "file");
  EXPECT_EQ(rec.runs, before);
}

// Every contender is timed in at least three rounds (one disturbed sample must not decide a plan
// kept for good); one far slower than the best after a round is not run again.
TEST_F(Plan, ContendersGetSeveralRoundsAndFarSlowerOnesAreDropped) {
  mm::set_plan_mode(mm::PlanMode::measure);
  Recorder rec;
  auto run = [&](size_t i) {
    rec(i);
    std::this_thread::sleep_for(std::chrono::milliseconds(i == 2 ? 60 : 2));
  };
  const mm::PlanEntry e = mm::choose_candidate("k-slow", kNames, run);
  EXPECT_NE(e.chosen, kNames[2]);
  EXPECT_GE(rec.runs[0], 4);  // warm-up + 3 rounds
  EXPECT_GE(rec.runs[1], 4);
  EXPECT_EQ(rec.runs[2], 3);  // warm-up + the first two rounds, then dropped
}

TEST_F(Plan, ForcedCandidateWinsWhereListed) {
  fs::create_directories(file_.parent_path());
  metamath::write_file_atomic(file_, metamath::cpu_model_name() + "\tk1\tfast\t\n");
  Recorder rec;
  {
    mm::ScopedForcedCandidate force("other");
    EXPECT_EQ(mm::forced_candidate(), "other");
    const mm::PlanEntry e = mm::choose_candidate("k1", kNames, std::ref(rec));
    EXPECT_EQ(e.chosen, "other");
    EXPECT_EQ(e.source, "forced");
    // Not listed for this call: the plan decides.
    EXPECT_EQ(mm::choose_candidate("k1", {"rule", "fast"}, std::ref(rec)).chosen, "fast");
  }
  EXPECT_EQ(mm::choose_candidate("k1", kNames, std::ref(rec)).chosen, "fast");
  EXPECT_EQ(rec.runs, (std::vector<int>{0, 0, 0}));
}

TEST_F(Plan, OffNeverReadsOrWritesTheFile) {
  fs::create_directories(file_.parent_path());
  metamath::write_file_atomic(file_, "not a plan line\n");
  mm::set_plan_mode(mm::PlanMode::off);
  Recorder rec;
  EXPECT_EQ(mm::choose_candidate("k1", kNames, std::ref(rec)).chosen, "rule");
  EXPECT_EQ(rec.runs, (std::vector<int>{0, 0, 0}));
  EXPECT_EQ(metamath::read_file(file_), "not a plan line\n");
}

TEST_F(Plan, MalformedLineNamesFileAndLine) {
  fs::create_directories(file_.parent_path());
  metamath::write_file_atomic(file_, "cpu\tk\tfast\t\ncpu\tk2\tfast\tfast=abc\n");
  Recorder rec;
  const std::string err =
      metamath::testing::error_of([&] { mm::choose_candidate("k1", kNames, std::ref(rec)); });
  EXPECT_NE(err.find(file_.string() + ":2: timing 'fast=abc'"), std::string::npos) << err;
  mm::reload_plan();
  metamath::write_file_atomic(file_, "cpu\tk\tfast\n");
  const std::string err2 =
      metamath::testing::error_of([&] { mm::choose_candidate("k1", kNames, std::ref(rec)); });
  EXPECT_NE(err2.find(file_.string() + ":1: expected 4 tab-separated fields"), std::string::npos)
      << err2;
}

TEST(PlanModes, ParseAndRowClasses) {
  EXPECT_EQ(mm::parse_plan_mode("measure"), mm::PlanMode::measure);
  EXPECT_EQ(mm::parse_plan_mode("cached"), mm::PlanMode::cached);
  EXPECT_EQ(mm::parse_plan_mode("off"), mm::PlanMode::off);
  EXPECT_NE(metamath::testing::error_of([] { mm::parse_plan_mode("fast"); }).find("'fast'"),
            std::string::npos);
  const std::vector<std::pair<int64_t, int64_t>> classes = {
      {1, 1}, {2, 2}, {3, 4}, {32, 32}, {33, 64}, {512, 512}, {513, 512}, {4096, 512}};
  for (auto [rows, cls] : classes) EXPECT_EQ(mm::row_class(rows), cls) << rows;
}

// plan_generation(), under which the fused decode step keeps its tile sets (model/decode.h),
// changes with everything that may change an answer, and not with lookups that change nothing
// (else the step would ask the planner every time).
TEST_F(Plan, GenerationChangesWhenAnAnswerMay) {
  Recorder rec;
  uint64_t g = mm::plan_generation();
  auto changed = [&] {
    const uint64_t now = mm::plan_generation();
    const bool c = now != g;
    g = now;
    return c;
  };
  mm::choose_candidate("k1", kNames, std::ref(rec));  // cached: reads the (absent) file
  changed();
  mm::choose_candidate("k1", kNames, std::ref(rec));
  EXPECT_FALSE(changed()) << "a lookup that changes nothing";
  mm::set_plan_mode(mm::PlanMode::measure);
  EXPECT_TRUE(changed()) << "set_plan_mode";
  mm::choose_candidate("k1", kNames, std::ref(rec));  // measured (or met busy): a new entry
  EXPECT_TRUE(changed()) << "a measured key";
  mm::choose_candidate("k1", kNames, std::ref(rec));
  EXPECT_FALSE(changed()) << "the measured key again";
  {
    mm::ScopedForcedCandidate force("other");
    EXPECT_TRUE(changed()) << "forcing a candidate";
  }
  EXPECT_TRUE(changed()) << "releasing it";
  mm::forget_plan();
  EXPECT_TRUE(changed()) << "forget_plan";
  mm::reload_plan();
  EXPECT_TRUE(changed()) << "reload_plan";
}
