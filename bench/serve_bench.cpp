// Server load test on loopback: `metamath serve`'s Server over the local backend on a tiny random
// model, hit by C concurrent keep-alive connections for a bounded time. One request in 20 is
// deliberately malformed (must get 400); anything else that is not a 200 counts as an error.
// Prints requests/s, p50/p99 latency and peak RSS.
//
//   serve_bench [--connections 256] [--seconds 20] [--max-tokens 16] [--tokenizer DIR]
#include <fmt/format.h>
#include <httplib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "llm/backend.h"
#include "model/init.h"
#include "serve/server.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int conns = 256, max_tokens = 16;
  double seconds = 20;
  fs::path tok = fs::path(METAMATH_SOURCE_DIR) / "../shared/tokenizers/llama2";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--connections") && i + 1 < argc)
      conns = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--max-tokens") && i + 1 < argc)
      max_tokens = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--tokenizer") && i + 1 < argc)
      tok = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: serve_bench [--connections C] [--seconds S] [--max-tokens N] "
                   "[--tokenizer DIR]\n");
      return 2;
    }
  }
  const fs::path dir = fs::temp_directory_path() / "metamath_serve_bench_model";
  fs::remove_all(dir);
  metamath::model::InitModelOptions io;
  io.config = "tiny";
  io.tokenizer = tok;
  io.out = dir;
  metamath::model::init_model(io);

  metamath::llm::BackendOptions bo;
  bo.kind = "local";
  bo.model = dir.string();
  bo.max_batch = 64;
  bo.max_len = 128;
  auto backend = metamath::llm::make_backend(bo);
  metamath::serve::ServeOptions so;
  so.port = 0;
  so.threads = conns + 16;
  metamath::serve::Server server(*backend, so);
  const int port = server.bind();
  std::thread srv([&] { server.run(); });

  std::atomic<bool> stop{false};
  std::atomic<long> ok{0}, deliberate{0}, errors{0};
  std::mutex mu;
  std::vector<double> lat;
  std::map<std::string, long> error_kinds;
  const std::string good = nlohmann::json{
      {"prompt", "Janet has 16 eggs and"},
      {"max_tokens", max_tokens},
      {"temperature", 0}}.dump();
  const std::string bad = R"({"prompt": "x", "max_tokens": "lots"})";
  std::vector<std::thread> clients;
  const auto t0 = Clock::now();
  for (int c = 0; c < conns; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_keep_alive(true);
      cli.set_read_timeout(300, 0);
      std::vector<double> mine;
      for (long k = 0; !stop.load(); ++k) {
        const bool deliberate_bad = (k + c) % 20 == 0;
        const auto s = Clock::now();
        auto r = cli.Post("/v1/completions", deliberate_bad ? bad : good, "application/json");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - s).count();
        if (!r) {
          ++errors;
          std::lock_guard<std::mutex> lock(mu);
          error_kinds[fmt::format("{} (request {} on its connection, after {:.0f} ms)",
                                  httplib::to_string(r.error()), k, ms)]++;
        } else if (deliberate_bad) {
          (r->status == 400 ? deliberate : errors)++;
        } else if (r->status == 200) {
          ++ok;
          mine.push_back(ms);
        } else {
          ++errors;
          std::lock_guard<std::mutex> lock(mu);
          error_kinds["HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 80)]++;
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : clients) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  server.stop();
  srv.join();
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    return lat.empty() ? 0.0
                       : lat[std::min(lat.size() - 1, static_cast<std::size_t>(p * lat.size()))];
  };
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "serve load test: tiny model, %d concurrent connections, %.1f s, %d new tokens per request, "
      "%u cores\n",
      conns, secs, max_tokens, std::thread::hardware_concurrency());
  std::printf("  completed 200s        : %ld (%.1f req/s, %.0f generated tok/s)\n", ok.load(),
              ok / secs, ok * static_cast<double>(max_tokens) / secs);
  std::printf("  deliberate 400s       : %ld\n", deliberate.load());
  std::printf("  other errors          : %ld\n", errors.load());
  for (const auto& [k, v] : error_kinds) std::printf("    %ld x %s\n", v, k.c_str());
  std::printf("  latency p50 / p99     : %.0f ms / %.0f ms\n", pct(0.50), pct(0.99));
  std::printf("  peak RSS              : %.1f MiB\n", ru.ru_maxrss / 1024.0);
  fs::remove_all(dir);
  return errors.load() == 0 ? 0 : 1;
}
