// The embedding cache under a real kill: `metamath diversity` against a scripted OpenAI endpoint
// (/v1/embeddings, deterministic trigram vectors, a few ms per request, every text it embeds
// counted), SIGKILLed mid-run, then rerun. What the killed run had cached is never requested
// again, and the outputs equal those of an uninterrupted run.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "analysis/embedding.h"
#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "test_util.h"
#include "trigram_embedding.h"

extern char** environ;

namespace fs = std::filesystem;
namespace ma = metamath::analysis;
using metamath::json;

namespace {

// The stand-in embedding model, 32 dims.
std::vector<float> trigram_vector(const std::string& s) {
  return metamath::testing::trigram_vector(s, 32);
}

// A scripted OpenAI embeddings endpoint that records every text it was asked to embed.
class EmbeddingServer {
 public:
  explicit EmbeddingServer(int delay_ms) {
    server_.Post(
        "/v1/embeddings", [this, delay_ms](const httplib::Request& req, httplib::Response& res) {
          ++active_;
          std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
          const json body = json::parse(req.body);
          json data = json::array();
          int index = 0;
          for (const auto& t : body["input"]) {
            data.push_back({{"object", "embedding"},
                            {"index", index++},
                            {"embedding", trigram_vector(t.get<std::string>())}});
            std::lock_guard<std::mutex> lock(mutex_);
            requested_.push_back(t.get<std::string>());
          }
          ++requests_;
          --active_;
          res.set_content(json{{"object", "list"}, {"data", data}, {"model", body["model"]}}.dump(),
                          "application/json");
        });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~EmbeddingServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int requests() const { return requests_.load(); }
  // Waits until no request is being answered: a request the killed client left in flight is
  // still recorded, and must count as asked before the kill, not as asked by the rerun.
  void wait_idle() const {
    while (active_.load() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<std::string> take_requested() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(requested_, {});
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> requests_{0}, active_{0};
  std::mutex mutex_;
  std::vector<std::string> requested_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(DiversityKill, KilledRunKeepsItsEmbeddingsAndTheRerunEqualsAnUninterruptedRun) {
  METAMATH_REQUIRE_DATA(data);
  const fs::path dir = metamath::testing::temp_dir("div_kill");
  // Base: 60 GSM8K train questions; new: 40 GSM8K test questions typed by parity (distinct
  // texts: the cache counts are then exact).
  auto take = [&](const fs::path& from, std::size_t n, const fs::path& to) {
    std::string body;
    const auto rows = metamath::read_jsonl(from);
    for (std::size_t i = 0; i < n; ++i)
      body +=
          json{{"question", rows[i]["question"]}, {"type", i % 2 ? "odd" : "even"}}.dump() + "\n";
    metamath::write_file_atomic(to, body);
  };
  take(data / "gsm8k/train.jsonl", 60, dir / "base.jsonl");
  take(data / "gsm8k/test.jsonl", 40, dir / "new.jsonl");
  const int unique = 100;

  EmbeddingServer server(40);  // 25 requests of 4 texts: ~1 s, long enough to be killed
  auto cmd = [&](const std::string& name) {
    return metamath::testing::metamath_bin() + " diversity -q --backend openai --base-url " +
           server.url() + " --model scripted --api-key unused --concurrency 1 --embed-batch 4" +
           " --base " + (dir / "base.jsonl").string() + " --new " + (dir / "new.jsonl").string() +
           " --out " + (dir / name).string() + " --cache-dir " + (dir / (name + "-cache")).string();
  };

  // Uninterrupted: every text requested once.
  const auto whole = metamath::testing::run_command(cmd("whole") + " 2>&1");
  ASSERT_EQ(whole.code, 0) << whole.output;
  EXPECT_EQ(server.take_requested().size(), std::size_t(unique));

  // Killed once the endpoint has answered 6 requests (of 25).
  const int before = server.requests();
  pid_t pid = 0;
  const std::string full = "exec " + cmd("killed") + " >/dev/null 2>&1";
  const char* argv[] = {"/bin/sh", "-c", full.c_str(), nullptr};
  ASSERT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  for (int i = 0; i < 12000 && server.requests() - before < 6; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the run ended by itself";
  EXPECT_FALSE(fs::exists(dir / "killed" / "diversity.json"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a request sent before the kill
  server.wait_idle();                                           // has started, and is answered
  const std::vector<std::string> asked_before = server.take_requested();

  // What the killed run kept: read straight from the cache file.
  std::set<std::string> cached;
  {
    ma::EmbeddingCache cache(dir / "killed-cache", "openai " + server.url() + " scripted");
    std::vector<std::string> all;
    for (const char* f : {"base.jsonl", "new.jsonl"})
      for (const json& row : metamath::read_jsonl(dir / f))
        all.push_back(row["question"].get<std::string>());
    for (const auto& t : all) {
      if (!cache.contains(ma::text_hash(t))) continue;
      cached.insert(t);
      std::vector<float> v(32);
      cache.read(ma::text_hash(t), v.data());
      EXPECT_EQ(v, trigram_vector(t)) << "a cached vector is not the endpoint's";
    }
    EXPECT_EQ(cache.size(), static_cast<int64_t>(cached.size()));
  }
  EXPECT_GE(cached.size(), 4u * 5) << "at least the batches answered before the last one";
  EXPECT_LT(cached.size(), std::size_t(unique)) << "the kill came after the end";
  EXPECT_LE(cached.size(), asked_before.size());

  // The rerun asks only for what the cache lacks, and ends as the uninterrupted run did.
  const auto rerun = metamath::testing::run_command(cmd("killed") + " 2>&1");
  ASSERT_EQ(rerun.code, 0) << rerun.output;
  const std::vector<std::string> asked_after = server.take_requested();
  EXPECT_EQ(asked_after.size(), unique - cached.size());
  for (const auto& t : asked_after) EXPECT_EQ(cached.count(t), 0u) << "embedded again: " << t;
  const json a = metamath::read_json_file(dir / "whole" / "diversity.json");
  const json b = metamath::read_json_file(dir / "killed" / "diversity.json");
  EXPECT_EQ(
      b["cache"]["base"]["cached"].get<int64_t>() + b["cache"]["new"]["cached"].get<int64_t>(),
      static_cast<int64_t>(cached.size()));
  EXPECT_EQ(
      b["cache"]["base"]["embedded"].get<int64_t>() + b["cache"]["new"]["embedded"].get<int64_t>(),
      static_cast<int64_t>(asked_after.size()));
  for (const char* k : {"gain", "items", "by_type", "curve", "base_rows"})
    EXPECT_EQ(a[k], b[k]) << k;
  for (const char* f : {"nearest.jsonl", "by_type.csv", "curve.csv"})
    EXPECT_EQ(read_file(dir / "whole" / f), read_file(dir / "killed" / f)) << f;
  EXPECT_GT(a["gain"].get<double>(), 0.0);
}

}  // namespace
