// `metamath serve` as a process: it prints where it listens, and SIGTERM during a streamed
// request lets that request finish completely before the process exits 0.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "llm/tiny_model.h"
#include "test_util.h"

extern char** environ;

namespace metamath::serve {
namespace {

using nlohmann::json;

struct Child {
  pid_t pid = -1;
  FILE* err = nullptr;  // the child's stderr
};

Child spawn_serve(const std::string& model_dir) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::string bin = testing::metamath_bin();
  std::vector<std::string> args = {bin, "serve",     "--model", model_dir,     "--port",
                                   "0", "--max-len", "256",     "--max-batch", "4"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Child c;
  EXPECT_EQ(posix_spawn(&c.pid, bin.c_str(), &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  c.err = fdopen(fds[0], "r");
  return c;
}

// Reads the child's stderr until the "listening on" line; returns the port (or -1).
int wait_listening(Child& c, std::string& seen) {
  char line[4096];
  while (std::fgets(line, sizeof line, c.err)) {
    seen += line;
    const std::string s = line;
    const auto at = s.find("listening on http://127.0.0.1:");
    if (at != std::string::npos) return std::stoi(s.substr(at + 30));
  }
  return -1;
}

struct StreamState {
  std::string body;
  pid_t pid = -1;
  bool signalled = false;
};

size_t on_data(char* p, size_t size, size_t n, void* user) {
  auto* st = static_cast<StreamState*>(user);
  st->body.append(p, size * n);
  if (!st->signalled && st->body.find("data: ") != std::string::npos) {
    kill(st->pid, SIGTERM);  // the request is in flight: ask the server to stop now
    st->signalled = true;
  }
  return size * n;
}

TEST(ServeCli, SigtermFinishesInFlightStreamThenExitsZero) {
  METAMATH_REQUIRE_TOKENIZER();
  const std::string model = testing::tiny_chat_model().string();
  Child child = spawn_serve(model);
  std::string seen;
  const int port = wait_listening(child, seen);
  ASSERT_GT(port, 0) << seen;

  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1/completions";
  const json req{{"prompt", "Janet has 16 eggs."}, {"max_tokens", 150}, {"temperature", 0}};
  auto post = [&](const json& body, StreamState* st) {
    CURL* e = curl_easy_init();
    std::string out;
    curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/json");
    const std::string data = body.dump();
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, data.c_str());
    if (st) {
      curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
      curl_easy_setopt(e, CURLOPT_WRITEDATA, st);
    } else {
      curl_easy_setopt(
          e, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* u) {
            static_cast<std::string*>(u)->append(p, s * n);
            return s * n;
          });
      curl_easy_setopt(e, CURLOPT_WRITEDATA, &out);
    }
    const CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    EXPECT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc);
    EXPECT_EQ(status, 200);
    return out;
  };
  const json plain = json::parse(post(req, nullptr));
  const std::string want = plain["choices"][0]["text"];

  json streamed = req;
  streamed["stream"] = true;
  StreamState st;
  st.pid = child.pid;
  post(streamed, &st);
  EXPECT_TRUE(st.signalled);
  std::string text;
  std::size_t pos = 0;
  while ((pos = st.body.find("data: {", pos)) != std::string::npos) {
    const std::size_t end = st.body.find("\n\n", pos);
    text += json::parse(st.body.substr(pos + 6, end - pos - 6))["choices"][0]["text"]
                .get<std::string>();
    pos = end;
  }
  EXPECT_EQ(text, want);  // nothing of the in-flight request was lost
  EXPECT_NE(st.body.find("data: [DONE]"), std::string::npos);

  int status = 0;
  ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
  char line[4096];
  while (std::fgets(line, sizeof line, child.err)) seen += line;
  std::fclose(child.err);
  EXPECT_TRUE(WIFEXITED(status)) << seen;
  EXPECT_EQ(WEXITSTATUS(status), 0) << seen;
  EXPECT_NE(seen.find("SIGTERM received"), std::string::npos) << seen;
}

TEST(ServeCli, HelpAndBadFlags) {
  auto help = testing::run_command(testing::metamath_bin() + " serve --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.output.find("/v1/chat/completions"), std::string::npos);
  EXPECT_NE(help.output.find("--api-key"), std::string::npos);
  auto missing = testing::run_command(testing::metamath_bin() + " serve --port 0 2>&1");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.output.find("--model is required"), std::string::npos) << missing.output;
  auto nodir = testing::run_command(testing::metamath_bin() +
                                    " serve --model /nonexistent/model --port 0 2>&1");
  EXPECT_NE(nodir.code, 0);
  EXPECT_NE(nodir.output.find("/nonexistent/model"), std::string::npos) << nodir.output;
}

}  // namespace
}  // namespace metamath::serve
