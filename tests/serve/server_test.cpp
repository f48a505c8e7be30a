// `metamath serve` in process over the local backend on a tiny model: the openai backend through
// the server gives exactly what the local backend gives (greedy), streaming matches, bad input
// gets OpenAI-style 4xx errors, and the official `openai` npm client works against it.
#include "serve/server.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "llm/backend.h"
#include "llm/tiny_model.h"
#include "test_util.h"

namespace metamath::serve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

llm::BackendOptions local_options() {
  llm::BackendOptions o;
  o.kind = "local";
  o.model = testing::tiny_chat_model().string();
  o.max_batch = 8;
  o.max_len = 128;
  return o;
}

// One local backend and one server over it for the whole suite (loading costs seconds).
class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::llama2_tokenizer_dir()) return;
    backend_ = llm::make_backend(local_options()).release();
    ServeOptions so;
    so.port = 0;
    so.threads = 64;
    server_ = new Server(*backend_, so);
    port_ = server_->bind();
    thread_ = new std::thread([] { server_->run(); });
  }
  static void TearDownTestSuite() {
    if (!server_) return;
    server_->stop();
    thread_->join();
    delete thread_;
    delete server_;
    delete backend_;
    server_ = nullptr;
  }
  void SetUp() override { METAMATH_REQUIRE_TOKENIZER(); }

  static std::string base_url() { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  static httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    return c;
  }
  static json post(const std::string& path, const std::string& body, int* status = nullptr) {
    auto c = client();
    auto r = c.Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return {};
    if (status) *status = r->status;
    return json::parse(r->body, nullptr, false);
  }

  static std::vector<llm::Result> run_local(const std::vector<llm::Request>& reqs) {
    std::vector<llm::Result> out(reqs.size());
    backend_->generate(reqs, [&](llm::Result r) { out[r.id] = std::move(r); });
    return out;
  }

  static inline llm::Backend* backend_ = nullptr;
  static inline Server* server_ = nullptr;
  static inline std::thread* thread_ = nullptr;
  static inline int port_ = 0;
};

std::vector<llm::Request> sample_requests() {
  std::vector<llm::Request> reqs;
  const char* prompts[] = {"Janet has 16 eggs.", "What is 2 + 3?", "A train leaves at noon",
                           "Solve for x: $x^2 = 4$.", "Natalia sold clips to 48 of her friends"};
  uint64_t id = 0;
  for (const char* p : prompts) {
    llm::Request r;
    r.id = id++;
    r.prompt = p;
    r.sampling.max_tokens = 12 + static_cast<int>(id) * 3;
    reqs.push_back(r);
  }
  llm::Request chat;
  chat.id = id++;
  chat.messages = {{"system", "Be brief."}, {"user", "What is 7 times 6?"}};
  chat.sampling.max_tokens = 10;
  reqs.push_back(chat);
  return reqs;
}

TEST_F(ServerTest, OpenAIBackendThroughServerEqualsLocalBackend) {
  auto reqs = sample_requests();
  const auto local = run_local(reqs);
  // A stop string from inside one of the local texts must cut both paths the same way.
  ASSERT_GT(local[0].choices.at(0).text.size(), 6u);
  llm::Request with_stop = reqs[0];
  with_stop.id = reqs.size();
  with_stop.sampling.stop = {local[0].choices[0].text.substr(3, 3)};
  reqs.push_back(with_stop);
  const auto local_all = run_local(reqs);

  llm::BackendOptions o;
  o.kind = "openai";
  o.base_url = base_url();
  o.model = backend_->model_name();
  auto remote = llm::make_backend(o);
  std::vector<llm::Result> got(reqs.size());
  std::vector<llm::Request> greedy = reqs;
  for (auto& r : greedy) r.sampling.temperature = 0;
  remote->generate(greedy, [&](llm::Result r) { got[r.id] = std::move(r); });
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(local_all[i].ok()) << local_all[i].error;
    ASSERT_TRUE(got[i].ok()) << got[i].error;
    ASSERT_EQ(got[i].choices.size(), 1u);
    EXPECT_EQ(got[i].choices[0].text, local_all[i].choices[0].text);
    EXPECT_EQ(got[i].choices[0].finish_reason, local_all[i].choices[0].finish_reason);
    EXPECT_EQ(got[i].prompt_tokens, local_all[i].prompt_tokens);
    EXPECT_EQ(got[i].completion_tokens, local_all[i].completion_tokens);
  }
  EXPECT_EQ(got.back().choices[0].finish_reason, "stop");
  EXPECT_LT(got.back().choices[0].text.size(), local[0].choices[0].text.size());

  // Embeddings survive the JSON round trip exactly.
  const std::vector<std::string> texts = {"one", "two three four", "Janet has 16 eggs."};
  const auto a = backend_->embed(texts);
  const auto b = remote->embed(texts);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(a[i].size(), 64u);  // tiny model hidden size
    EXPECT_EQ(a[i], b[i]);
  }
}

TEST_F(ServerTest, ConcurrentClientsGetTheirOwnAnswers) {
  auto reqs = sample_requests();
  const auto alone = run_local(reqs);
  // 24 client threads at once, each with one of the requests: batched together by the engine.
  std::vector<std::string> texts(24);
  std::vector<std::thread> threads;
  for (int t = 0; t < 24; ++t) {
    threads.emplace_back([&, t] {
      const auto& r = reqs[static_cast<std::size_t>(t) % reqs.size()];
      json body{{"model", backend_->model_name()},
                {"max_tokens", r.sampling.max_tokens},
                {"temperature", 0}};
      std::string path = "/v1/completions";
      if (r.is_chat()) {
        path = "/v1/chat/completions";
        body["messages"] = json::array();
        for (const auto& m : r.messages)
          body["messages"].push_back({{"role", m.role}, {"content", m.content}});
      } else {
        body["prompt"] = r.prompt;
      }
      json j = post(path, body.dump());
      texts[t] = r.is_chat() ? j["choices"][0]["message"]["content"].get<std::string>()
                             : j["choices"][0]["text"].get<std::string>();
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 24; ++t)
    EXPECT_EQ(texts[t], alone[static_cast<std::size_t>(t) % reqs.size()].choices[0].text) << t;
}

// Reads an SSE body into its JSON events; checks it ends with [DONE].
std::vector<json> sse_events(const std::string& body) {
  std::vector<json> out;
  std::size_t pos = 0;
  bool done = false;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const std::size_t end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    out.push_back(json::parse(data));
  }
  EXPECT_TRUE(done) << "stream did not end with data: [DONE]";
  return out;
}

TEST_F(ServerTest, StreamingMatchesNonStreaming) {
  const std::string model = backend_->model_name();
  for (bool chat : {false, true}) {
    SCOPED_TRACE(chat ? "chat" : "completions");
    json body{{"model", model}, {"max_tokens", 20}, {"temperature", 0}};
    if (chat)
      body["messages"] = {{{"role", "user"}, {"content", "Count to five."}}};
    else
      body["prompt"] = "Count to five.";
    const std::string path = chat ? "/v1/chat/completions" : "/v1/completions";
    json plain = post(path, body.dump());
    const std::string want = chat ? plain["choices"][0]["message"]["content"].get<std::string>()
                                  : plain["choices"][0]["text"].get<std::string>();
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    auto c = client();
    auto r = c.Post(path.c_str(), body.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
    std::string text, finish;
    int with_text = 0;
    json usage;
    for (const json& ev : sse_events(r->body)) {
      if (ev.contains("usage") && ev["usage"].is_object()) usage = ev["usage"];
      if (ev["choices"].empty()) continue;
      const json& ch = ev["choices"][0];
      const std::string piece =
          chat ? ch["delta"].value("content", "") : ch["text"].get<std::string>();
      with_text += !piece.empty();
      text += piece;
      if (ch["finish_reason"].is_string()) finish = ch["finish_reason"];
    }
    EXPECT_EQ(text, want);
    EXPECT_GT(with_text, 2);  // really streamed, not one piece
    EXPECT_EQ(finish, plain["choices"][0]["finish_reason"].get<std::string>());
    EXPECT_EQ(usage, plain["usage"]);
  }
}

TEST_F(ServerTest, BadInputGets4xxErrorObjects) {
  const std::string model = backend_->model_name();
  struct Case {
    std::string path, body;
    int status;
    std::string message_part;
  };
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "eggs and ";
  const std::vector<Case> cases = {
      {"/v1/completions", "{\"prompt\": \"x\",", 400, "not valid JSON"},
      {"/v1/completions", "[1, 2]", 400, "must be a JSON object"},
      {"/v1/completions", R"({"max_tokens": 5})", 400, "'prompt' is required"},
      {"/v1/completions", R"({"prompt": 5})", 400, "'prompt' must be a string"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": "many"})", 400,
       "'max_tokens' must be an integer"},
      {"/v1/completions", R"({"prompt": "x", "temperature": 9})", 400,
       "'temperature' must be between 0 and 2"},
      {"/v1/completions", R"({"prompt": "x", "stop": [1]})", 400, "'stop' must be a string"},
      {"/v1/completions", R"({"prompt": "x", "n": 0})", 400, "'n' must be between 1 and 128"},
      {"/v1/completions", R"({"prompt": "x", "model": "gpt-9"})", 404, "'gpt-9' does not exist"},
      {"/v1/completions", json{{"prompt", long_prompt}, {"max_tokens", 5}}.dump(), 400,
       "the limit is 128"},
      {"/v1/completions", json{{"prompt", long_prompt}, {"stream", true}}.dump(), 400,
       "the limit is 128"},
      {"/v1/chat/completions", R"({"messages": []})", 400, "'messages' must be a non-empty array"},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400,
       "role"},
      {"/v1/embeddings", R"({"input": [1, 2]})", 400, "token arrays are not supported"},
      {"/v1/embeddings", R"({"input": "x", "encoding_format": "hex"})", 400, "encoding_format"},
      {"/v1/nothing", "{}", 404, "no route"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path + " " + c.body.substr(0, 80));
    int status = 0;
    json j = post(c.path, c.body, &status);
    EXPECT_EQ(status, c.status);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << j.dump();
    EXPECT_NE(j["error"]["message"].get<std::string>().find(c.message_part), std::string::npos)
        << j["error"]["message"];
    EXPECT_TRUE(j["error"]["type"].is_string());
  }
  // The server is still healthy afterwards.
  auto c = client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(json::parse(m->body)["data"][0]["id"], model);
}

TEST(ServerAuth, ApiKeyRequiredOnV1) {
  METAMATH_REQUIRE_TOKENIZER();
  auto backend = llm::make_backend(local_options());
  ServeOptions so;
  so.port = 0;
  so.api_key = "sk-local-test";
  Server server(*backend, so);
  const int port = server.bind();
  std::thread th([&] { server.run(); });
  httplib::Client c("127.0.0.1", port);
  const std::string body = R"({"prompt": "hi", "max_tokens": 2})";
  auto r = c.Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "invalid_api_key");
  r = c.Post("/v1/completions", {{"Authorization", "Bearer wrong"}}, body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = c.Post("/v1/completions", {{"Authorization", "Bearer sk-local-test"}}, body,
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  auto h = c.Get("/health");  // health checks need no key
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  server.stop();
  th.join();
}

// The official openai npm package (tests/serve/node, installed by scripts/setup.sh).
TEST_F(ServerTest, OfficialOpenAINodeClient) {
  const fs::path node_dir = fs::path(METAMATH_SOURCE_DIR) / "tests/serve/node";
  METAMATH_REQUIRE(
      fs::exists(node_dir / "node_modules/openai/package.json"),
      "tests/serve/node/node_modules/openai missing: run scripts/install-node-deps.sh");
  METAMATH_REQUIRE(testing::run_command("node --version").code == 0, "node not installed");
  // The npm client talks to a key-protected server, as against OpenAI.
  ServeOptions so;
  so.port = 0;
  so.api_key = "sk-node-test";
  Server keyed(*backend_, so);
  const int port = keyed.bind();
  std::thread th([&] { keyed.run(); });
  const std::string model = backend_->model_name();
  auto run = testing::run_command(
      fmt::format("node {}/client.mjs http://127.0.0.1:{}/v1 {} sk-node-test 2>&1",
                  node_dir.string(), port, model));
  keyed.stop();
  th.join();
  ASSERT_EQ(run.code, 0) << run.output;
  const json out = json::parse(run.output.substr(run.output.find('{')));

  llm::Request comp;
  comp.prompt = "Janet has 16 eggs.";
  comp.sampling.max_tokens = 12;
  llm::Request chat;
  chat.id = 1;
  chat.messages = {{"user", "What is 2 + 3?"}};
  chat.sampling.max_tokens = 12;
  const auto local = run_local({comp, chat});
  EXPECT_EQ(out["completion"]["text"], local[0].choices[0].text);
  EXPECT_EQ(out["completion"]["finish_reason"], local[0].choices[0].finish_reason);
  EXPECT_EQ(out["completion"]["usage"]["prompt_tokens"], local[0].prompt_tokens);
  EXPECT_EQ(out["chat"]["text"], local[1].choices[0].text);
  EXPECT_EQ(out["chat"]["role"], "assistant");
  EXPECT_EQ(out["stream"]["text"], local[1].choices[0].text);
  EXPECT_GT(out["stream"]["chunks"].get<int>(), 2);
  EXPECT_EQ(out["stream"]["finish_reason"], local[1].choices[0].finish_reason);
  const auto emb = backend_->embed({"one", "two three"});
  ASSERT_EQ(out["embeddings"].size(), 2u);
  for (std::size_t i = 0; i < 2; ++i)
    EXPECT_EQ(out["embeddings"][i].get<std::vector<float>>(), emb[i]);
  EXPECT_EQ(out["models"], json::array({model}));
  EXPECT_EQ(out["error"]["status"], 400);
}

}  // namespace
}  // namespace metamath::serve
