// core/jsonl.h's read_json_file and parse_json: whole JSON documents, errors that name the source.
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "test_util.h"

namespace metamath {
namespace {

TEST(JsonFile, ReadsAnyJsonValue) {
  auto dir = testing::temp_dir("json_file_read");
  write_file_atomic(dir / "a.json", "{\n  \"a\": [1, 2]\n}\n");
  write_file_atomic(dir / "n.json", "42");
  EXPECT_EQ(read_json_file(dir / "a.json")["a"][1], 2);
  EXPECT_EQ(read_json_file(dir / "n.json"), 42);
}

TEST(JsonFile, MalformedFileNamesFileAndLine) {
  auto dir = testing::temp_dir("json_file_bad");
  write_file_atomic(dir / "bad.json", "{\n  \"a\": 1,\n  \"b\": nope\n}\n");
  std::string err = testing::error_of([&] { read_json_file(dir / "bad.json"); });
  // The line nlohmann reports inside the parentheses is the one named before them.
  EXPECT_EQ(err.rfind((dir / "bad.json").string() + ":3: malformed JSON (parse error at line 3, "
                                                    "column ",
                      0),
            0u)
      << err;
  write_file_atomic(dir / "empty.json", "");
  err = testing::error_of([&] { read_json_file(dir / "empty.json"); });
  EXPECT_EQ(err.rfind((dir / "empty.json").string() + ":1: malformed JSON (parse error", 0), 0u)
      << err;
  err = testing::error_of([&] { read_json_file(dir / "missing.json"); });
  EXPECT_NE(err.find("missing.json"), std::string::npos) << err;
}

TEST(JsonFile, ParseJsonNamesItsSource) {
  EXPECT_EQ(parse_json("[1]", "x")[0], 1);
  std::string err =
      testing::error_of([] { parse_json("{\"a\":", "jobs.sqlite: meta \"options\""); });
  EXPECT_EQ(err.rfind("jobs.sqlite: meta \"options\": malformed JSON (parse error at line 1, ", 0),
            0u)
      << err;
}

}  // namespace
}  // namespace metamath
