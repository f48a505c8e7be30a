#include "core/jsonl.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "test_util.h"

namespace metamath {
namespace {

std::filesystem::path write(const std::filesystem::path& dir, const std::string& name,
                            const std::string& body) {
  auto p = dir / name;
  std::ofstream(p) << body;
  return p;
}

TEST(Jsonl, ReadsRecordsAndSkipsBlankLines) {
  auto dir = testing::temp_dir("jsonl_read");
  auto p = write(dir, "a.jsonl", "{\"a\": 1}\n\n  \n{\"a\": 2}\r\n{\"a\": 3}");
  auto recs = read_jsonl(p);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0]["a"], 1);
  EXPECT_EQ(recs[2]["a"], 3);  // last line without trailing newline
}

TEST(Jsonl, MalformedLineNamesFileAndLine) {
  auto dir = testing::temp_dir("jsonl_bad");
  auto p = write(dir, "bad.jsonl", "{\"a\": 1}\n{\"a\": 2\n{\"a\": 3}\n");
  try {
    read_jsonl(p);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("bad.jsonl:2:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("malformed JSON"), std::string::npos) << msg;
  }
}

TEST(Jsonl, NonObjectLineIsAnError) {
  auto dir = testing::temp_dir("jsonl_nonobj");
  auto p = write(dir, "x.jsonl", "{\"a\": 1}\n[1,2]\n");
  EXPECT_THROW(read_jsonl(p), Error);
}

TEST(Jsonl, SkipBadCountsMalformedLines) {
  auto dir = testing::temp_dir("jsonl_skip");
  auto p = write(dir, "s.jsonl", "{\"a\": 1}\nnot json\n{\"a\": 3}\n{\"a\":\n");
  JsonlReader r(p, JsonlOptions{.skip_bad = true});
  json rec;
  std::vector<int> seen;
  while (r.next(rec)) seen.push_back(rec["a"].get<int>());
  EXPECT_EQ(seen, (std::vector<int>{1, 3}));
  EXPECT_EQ(r.bad_lines(), 2u);
  EXPECT_EQ(r.records(), 2u);
}

TEST(Jsonl, MissingFileIsAClearError) {
  try {
    JsonlReader r("/nonexistent/nope.jsonl");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/nope.jsonl: no such file"),
              std::string::npos);
  }
}

TEST(Jsonl, RequireFieldNamesWhereAndField) {
  json rec = {{"question", "q"}, {"n", 5}, {"arr", json::array()}};
  EXPECT_EQ(require_string(rec, "question", "f.jsonl:3"), "q");
  EXPECT_EQ(require_string(rec, "n", "f.jsonl:3"), "5");
  try {
    require_string(rec, "answer", "f.jsonl:3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "f.jsonl:3: missing field \"answer\"");
  }
  EXPECT_THROW(require_string(rec, "arr", "f.jsonl:3"), Error);
}

TEST(Jsonl, AtomicWriterLeavesNothingUntilCommit) {
  auto dir = testing::temp_dir("jsonl_atomic");
  auto p = dir / "out.jsonl";
  {
    JsonlWriter w(p);
    w.write({{"x", 1}});
    EXPECT_FALSE(std::filesystem::exists(p));
    // destroyed without commit: like a crash, no partial file appears
  }
  EXPECT_FALSE(std::filesystem::exists(p));
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) (void)e, ++files;
  EXPECT_EQ(files, 0u) << "temp file left behind";
  {
    JsonlWriter w(p);
    w.write({{"x", 1}});
    w.write({{"x", "é\n"}});
    w.commit();
  }
  auto recs = read_jsonl(p);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1]["x"], "é\n");
}

TEST(Jsonl, AppendWriterJournalsWholeLines) {
  auto dir = testing::temp_dir("jsonl_append");
  auto p = dir / "j.jsonl";
  {
    JsonlWriter w(p, JsonlWriter::Mode::Append);
    w.write({{"i", 0}});
  }
  {
    JsonlWriter w(p, JsonlWriter::Mode::Append);
    w.write({{"i", 1}});
    w.commit();
  }
  // A torn last line (crash mid-write) is dropped by a skip_bad reader.
  std::ofstream(p, std::ios::app) << "{\"i\": 2";
  JsonlReader r(p, JsonlOptions{.skip_bad = true});
  json rec;
  int n = 0;
  while (r.next(rec)) EXPECT_EQ(rec["i"], n++);
  EXPECT_EQ(n, 2);
  EXPECT_EQ(r.bad_lines(), 1u);
}

}  // namespace
}  // namespace metamath
