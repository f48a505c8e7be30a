// Orchestration overhead of the openai backend: requests/s through llm::OpenAIBackend against an
// instant local OpenAI-compatible endpoint (cpp-httplib, fixed answer), side by side with a bare
// libcurl multi loop over the same endpoint and connection count (the ceiling the endpoint allows).
//
//   openai_bench [--requests N] [--connections C]
#include <curl/curl.h>
#include <httplib.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "llm/backend.h"

namespace {

using Clock = std::chrono::steady_clock;

const char* kAnswer =
    R"({"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" 42","finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}})";

// A bare curl multi loop: N POSTs, C at a time, no parsing, no bookkeeping.
double bare_curl(const std::string& url, int n, int c) {
  CURLM* m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(c));
  std::vector<CURL*> easies(static_cast<std::size_t>(c));
  const std::string body = R"({"model":"m","prompt":"What is 6 times 7?","max_tokens":8})";
  curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/json");
  h = curl_slist_append(h, "Expect:");
  auto sink = +[](char*, size_t s, size_t k, void*) { return s * k; };
  auto arm = [&](CURL* e) {
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_multi_add_handle(m, e);
  };
  int started = 0, done = 0;
  const auto t0 = Clock::now();
  for (auto& e : easies) {
    e = curl_easy_init();
    if (started < n) {
      arm(e);
      ++started;
    }
  }
  while (done < n) {
    int running = 0;
    curl_multi_perform(m, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(m, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* e = msg->easy_handle;
      curl_multi_remove_handle(m, e);
      ++done;
      if (started < n) {
        arm(e);
        ++started;
      }
    }
    curl_multi_poll(m, nullptr, 0, 100, nullptr);
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto* e : easies) curl_easy_cleanup(e);
  curl_slist_free_all(h);
  curl_multi_cleanup(m);
  return n / secs;
}

double backend_rate(const std::string& base, int n, int c) {
  metamath::llm::BackendOptions o;
  o.kind = "openai";
  o.base_url = base;
  o.model = "m";
  o.concurrency = c;
  auto b = metamath::llm::make_backend(o);
  std::vector<metamath::llm::Request> reqs(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    reqs[i].id = static_cast<uint64_t>(i);
    reqs[i].prompt = "What is 6 times 7?";
    reqs[i].sampling.max_tokens = 8;
  }
  int ok = 0;
  const auto t0 = Clock::now();
  b->generate(reqs, [&](metamath::llm::Result r) { ok += r.ok() && r.choices[0].text == " 42"; });
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (ok != n) {
    std::fprintf(stderr, "openai_bench: only %d of %d requests completed correctly\n", ok, n);
    std::exit(1);
  }
  return n / secs;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 20000, c = 64;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--requests") && i + 1 < argc)
      n = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--connections") && i + 1 < argc)
      c = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: openai_bench [--requests N] [--connections C]\n");
      return 2;
    }
  }
  httplib::Server svr;
  svr.new_task_queue = [c] { return new httplib::ThreadPool(static_cast<size_t>(c + 8)); };
  svr.set_keep_alive_max_count(1000000);
  svr.set_tcp_nodelay(true);
  svr.Post("/v1/completions", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kAnswer, "application/json");
  });
  const int port = svr.bind_to_any_port("127.0.0.1");
  std::thread th([&] { svr.listen_after_bind(); });
  while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const std::string base = "http://127.0.0.1:" + std::to_string(port) + "/v1";

  curl_global_init(CURL_GLOBAL_DEFAULT);
  bare_curl(base + "/completions", std::min(n, 2000), c);  // warm up
  const double bare = bare_curl(base + "/completions", n, c);
  const double ours = backend_rate(base, n, c);
  const double bare2 = bare_curl(base + "/completions", n, c);
  const double ours2 = backend_rate(base, n, c);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("openai backend vs instant endpoint: %d requests, %d connections, %u cores\n", n, c,
              std::thread::hardware_concurrency());
  std::printf("  bare libcurl multi loop : %8.0f req/s (best of 2: %.0f, %.0f)\n",
              std::max(bare, bare2), bare, bare2);
  std::printf("  metamath openai backend : %8.0f req/s (best of 2: %.0f, %.0f)\n",
              std::max(ours, ours2), ours, ours2);
  std::printf("  backend / bare          : %8.2f\n", std::max(ours, ours2) / std::max(bare, bare2));
  std::printf("  goal >= 2000 req/s      : %s\n",
              std::max(ours, ours2) >= 2000 ? "met" : "NOT met");
  std::printf("  peak RSS (bench process, endpoint included): %.1f MiB\n", ru.ru_maxrss / 1024.0);
  svr.stop();
  th.join();
  return 0;
}
