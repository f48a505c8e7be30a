#pragma once
// The hand-written fixture run (tests/eval/fixtures/run/, see its README.md): copying it into a
// fresh folder and checking rows against their hand-checked verdicts.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/jsonl.h"
#include "test_util.h"

namespace metamath::eval {

inline const std::filesystem::path kFixture =
    std::filesystem::path(METAMATH_SOURCE_DIR) / "tests" / "eval" / "fixtures" / "run";

inline std::filesystem::path copy_fixture(const std::string& name) {
  std::filesystem::path dir = testing::temp_dir(name);
  for (const char* f : {"run.json", "gsm8k.samples.jsonl", "math.samples.jsonl"})
    std::filesystem::copy_file(kFixture / f, dir / f);
  return dir;
}

// Every row's verdict against its hand-checked one.
inline void expect_hand_verdicts(const std::filesystem::path& samples) {
  auto rows = read_jsonl(samples);
  ASSERT_EQ(rows.size(), 20u);
  for (const json& r : rows)
    EXPECT_EQ(r["correct"], r["hand_correct"])
        << r["id"] << " (" << r["hand_note"] << "): pred " << r["pred_answer"] << " gold "
        << r["gold"] << ": " << r["reason"];
}

}  // namespace metamath::eval
