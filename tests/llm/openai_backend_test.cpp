// The openai backend against a fault-injecting endpoint: nothing lost, nothing duplicated, every
// request either completed or failed with a reason, retries spaced by backoff and Retry-After.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <set>

#include "core/error.h"
#include "llm/backend.h"
#include "llm/fault_server.h"
#include "test_util.h"

namespace metamath::llm {
namespace {

using testing::Fault;
using testing::FaultServer;

BackendOptions options_for(const FaultServer& s) {
  BackendOptions o;
  o.kind = "openai";
  o.base_url = s.base_url();
  o.model = "test-model";
  o.concurrency = 32;
  o.timeout_s = 0.5;
  o.max_attempts = 8;
  o.backoff_base_s = 0.02;
  o.backoff_max_s = 0.4;
  return o;
}

TEST(OpenAIBackend, ThousandRequestsThroughFaultsNoneLostNoneDuplicated) {
  FaultServer server(/*fault_rate=*/0.2, /*hang_s=*/0.8, /*retry_after_s=*/1, /*seed=*/42);
  BackendOptions o = options_for(server);
  auto backend = make_backend(o);

  std::vector<Request> reqs;
  for (int i = 0; i < 1000; ++i) {
    Request r;
    r.id = static_cast<uint64_t>(i);
    // 980 ordinary prompts, 10 the server always refuses (400), 10 it never serves (503).
    r.prompt = i % 100 == 7   ? "bad " + std::to_string(i)
               : i % 100 == 8 ? "down " + std::to_string(i)
                              : "req " + std::to_string(i);
    r.sampling.max_tokens = 8;
    reqs.push_back(r);
  }
  std::map<uint64_t, Result> got;
  int duplicates = 0;
  backend->generate(reqs, [&](Result r) {
    if (!got.emplace(r.id, r).second) ++duplicates;
  });
  EXPECT_EQ(duplicates, 0);
  ASSERT_EQ(got.size(), reqs.size());  // none lost

  int completed = 0, refused = 0, gave_up = 0;
  for (const auto& r : reqs) {
    const Result& res = got.at(r.id);
    if (r.prompt.rfind("req ", 0) == 0) {
      ASSERT_TRUE(res.ok()) << r.prompt << ": " << res.error;
      ASSERT_EQ(res.choices.size(), 1u);
      EXPECT_EQ(res.choices[0].text, "echo: " + r.prompt);
      EXPECT_EQ(res.choices[0].finish_reason, "stop");
      ++completed;
    } else if (r.prompt.rfind("bad ", 0) == 0) {
      EXPECT_EQ(res.error_kind, ErrorKind::BadRequest);
      EXPECT_NE(res.error.find("this prompt is refused"), std::string::npos) << res.error;
      ++refused;
    } else {
      EXPECT_EQ(res.error_kind, ErrorKind::Transient);
      EXPECT_EQ(res.attempts, o.max_attempts);
      EXPECT_NE(res.error.find("gave up after 8 attempts"), std::string::npos) << res.error;
      EXPECT_NE(res.error.find("HTTP 503"), std::string::npos) << res.error;
      ++gave_up;
    }
  }
  EXPECT_EQ(completed, 980);
  EXPECT_EQ(refused, 10);
  EXPECT_EQ(gave_up, 10);

  // Server side: every fault kind happened, each completed prompt was served exactly once, and
  // consecutive attempts of a prompt are spaced at least by the backoff's lower bound (half the
  // exponential delay) and, after a 429, by Retry-After.
  std::map<std::string, std::vector<FaultServer::Attempt>> by_prompt;
  std::map<Fault, int> kinds;
  for (const auto& a : server.attempts()) {
    by_prompt[a.prompt].push_back(a);
    ++kinds[a.fault];
  }
  for (Fault f : {Fault::TooMany, Fault::E500, Fault::E503, Fault::Hang, Fault::Drop,
                  Fault::Truncated, Fault::NotJson})
    EXPECT_GT(kinds[f], 0) << "fault " << testing::fault_name(f) << " never drawn";
  int retried_prompts = 0;
  for (auto& [prompt, attempts] : by_prompt) {
    std::sort(attempts.begin(), attempts.end(),
              [](const auto& a, const auto& b) { return a.at < b.at; });
    int served = 0;
    for (const auto& a : attempts) served += a.fault == Fault::None;
    if (prompt.rfind("req ", 0) == 0) {
      EXPECT_EQ(served, 1) << prompt;
      EXPECT_EQ(attempts.back().fault, Fault::None) << prompt << ": attempts after success";
    }
    if (prompt.rfind("bad ", 0) == 0) {
      EXPECT_EQ(attempts.size(), 1u) << prompt << ": a 400 was retried";
    }
    if (attempts.size() > 1) ++retried_prompts;
    for (std::size_t k = 1; k < attempts.size(); ++k) {
      const double gap = std::chrono::duration<double>(attempts[k].at - attempts[k - 1].at).count();
      const double backoff =
          std::min(o.backoff_max_s, o.backoff_base_s * std::pow(2.0, static_cast<double>(k) - 1));
      double lower = backoff / 2;
      if (attempts[k - 1].fault == Fault::TooMany) lower = std::max(lower, 1.0);
      EXPECT_GE(gap, lower - 0.005) << prompt << " attempt " << k + 1 << " after "
                                    << testing::fault_name(attempts[k - 1].fault);
    }
  }
  EXPECT_GT(retried_prompts, 100);
  EXPECT_GT(backend->usage().retries.load(), 100u);
  EXPECT_EQ(backend->usage().failed.load(), 20u);
  EXPECT_EQ(backend->usage().completion_tokens.load(), 980u * 4);
}

TEST(OpenAIBackend, UnreachableServerFailsWithReason) {
  BackendOptions o;
  o.kind = "openai";
  o.base_url = "http://127.0.0.1:1/v1";  // nothing listens on port 1
  o.model = "m";
  o.max_attempts = 2;
  o.backoff_base_s = 0.01;
  auto backend = make_backend(o);
  Request r;
  r.prompt = "x";
  std::vector<Result> got;
  backend->generate({r}, [&](Result x) { got.push_back(x); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].error_kind, ErrorKind::Transient);
  EXPECT_NE(got[0].error.find("connection error"), std::string::npos) << got[0].error;
  EXPECT_EQ(got[0].attempts, 2);
}

TEST(OpenAIBackend, ApiKeyNeverAppearsInErrors) {
  FaultServer server(0, 0, 0);
  BackendOptions o = options_for(server);
  o.api_key = "sk-secret-123";
  o.max_attempts = 1;
  auto backend = make_backend(o);
  Request r;
  r.prompt = "bad 1";
  std::string error;
  backend->generate({r}, [&](Result x) { error = x.error; });
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(error.find("sk-secret"), std::string::npos);
}

TEST(OpenAIBackend, BadOptionsAreClearErrors) {
  BackendOptions o;
  o.kind = "openai";
  o.base_url = "localhost:8000";
  o.model = "m";
  EXPECT_NE(testing::error_of([&] { make_backend(o); }).find("must start with http://"),
            std::string::npos);
  o.base_url = "http://x/v1";
  o.model = "";
  EXPECT_NE(testing::error_of([&] { make_backend(o); }).find("needs --model"), std::string::npos);
  o.model = "m";
  o.price = "1.5";
  EXPECT_NE(testing::error_of([&] { make_backend(o); }).find("PROMPT,COMPLETION"),
            std::string::npos);
  o.kind = "vllm";
  EXPECT_NE(testing::error_of([&] { make_backend(o); }).find("unknown backend 'vllm'"),
            std::string::npos);
}

TEST(OpenAIBackend, PriceTableGivesCost) {
  FaultServer server(0, 0, 0);
  BackendOptions o = options_for(server);
  o.price = "2,10";  // $2 per M prompt tokens, $10 per M completion tokens
  auto backend = make_backend(o);
  std::vector<Request> reqs(5);
  for (int i = 0; i < 5; ++i) reqs[i].prompt = "req " + std::to_string(i);
  backend->generate(reqs, [](Result) {});
  // 5 x (3 prompt, 4 completion) tokens: (15 * 2 + 20 * 10) / 1e6 dollars.
  EXPECT_DOUBLE_EQ(backend->cost(), (15 * 2.0 + 20 * 10.0) / 1e6);
  EXPECT_NE(usage_summary(*backend).find("35 tok"), std::string::npos) << usage_summary(*backend);
}

}  // namespace
}  // namespace metamath::llm

namespace metamath::llm {
namespace {

// Requests-per-minute: a bucket of one second's worth (10 at 600/min), refilled at 10/s, so 30
// requests cannot all arrive within 2 s; the arrivals are what the server saw.
TEST(OpenAIBackend, RequestsPerMinuteLimitSpacesArrivals) {
  FaultServer server(0, 0, 0);
  BackendOptions o = options_for(server);
  o.requests_per_minute = 600;
  auto backend = make_backend(o);
  std::vector<Request> reqs(30);
  for (int i = 0; i < 30; ++i) reqs[i].prompt = "req " + std::to_string(i);
  int ok = 0;
  backend->generate(reqs, [&](Result r) { ok += r.ok(); });
  EXPECT_EQ(ok, 30);
  auto a = server.attempts();
  ASSERT_EQ(a.size(), 30u);
  std::sort(a.begin(), a.end(), [](const auto& x, const auto& y) { return x.at < y.at; });
  const double span = std::chrono::duration<double>(a.back().at - a.front().at).count();
  EXPECT_GE(span, (30 - 10) / 10.0 - 0.05);
  // In any 1 s window at most 10 + 10 (bucket + refill) arrivals.
  for (std::size_t i = 0; i < a.size(); ++i) {
    std::size_t j = i;
    while (j < a.size() && std::chrono::duration<double>(a[j].at - a[i].at).count() < 1.0) ++j;
    EXPECT_LE(j - i, 20u);
  }
}

}  // namespace
}  // namespace metamath::llm
