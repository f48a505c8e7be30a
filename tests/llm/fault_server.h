#pragma once
// A fault-injecting OpenAI-compatible test endpoint (cpp-httplib) for the openai backend.
//
// POST /v1/completions answers a prompt "req N" with the completion "echo: req N", except that
// each attempt, with probability `fault_rate` (a seeded draw), gets one of these faults instead:
//   429 with Retry-After, 500, 503, a hang past the client's timeout, a connection dropped in the
//   middle of the response body, a 200 with truncated JSON, a 200 with a body that is not JSON.
// Prompts "bad N" always get 400, prompts "down N" always get 503. Every attempt is logged (prompt,
// arrival time, fault) so tests can check retries and their spacing. fault_rate 0 makes it an
// instant endpoint (for the bench).
#include <httplib.h>

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace metamath::testing {

enum class Fault { None, TooMany, E500, E503, Hang, Drop, Truncated, NotJson, BadRequest };

inline const char* fault_name(Fault f) {
  switch (f) {
    case Fault::None:
      return "none";
    case Fault::TooMany:
      return "429";
    case Fault::E500:
      return "500";
    case Fault::E503:
      return "503";
    case Fault::Hang:
      return "hang";
    case Fault::Drop:
      return "drop";
    case Fault::Truncated:
      return "truncated";
    case Fault::NotJson:
      return "not-json";
    case Fault::BadRequest:
      return "400";
  }
  return "?";
}

class FaultServer {
 public:
  struct Attempt {
    std::string prompt;
    std::chrono::steady_clock::time_point at;
    Fault fault;
  };

  FaultServer(double fault_rate, double hang_s, double retry_after_s, uint64_t seed = 1)
      : rate_(fault_rate), hang_s_(hang_s), retry_after_s_(retry_after_s), rng_(seed) {
    http_.new_task_queue = [] { return new httplib::ThreadPool(128); };
    http_.set_keep_alive_max_count(100000);
    http_.Post("/v1/completions",
               [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); });
    port_ = http_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { http_.listen_after_bind(); });
    while (!http_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FaultServer() {
    http_.stop();
    thread_.join();
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::vector<Attempt> attempts() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

 private:
  Fault draw(const std::string& prompt) {
    if (prompt.rfind("bad ", 0) == 0) return Fault::BadRequest;
    if (prompt.rfind("down ", 0) == 0) return Fault::E503;
    std::uniform_real_distribution<double> u(0, 1);
    if (u(rng_) >= rate_) return Fault::None;
    std::uniform_int_distribution<int> pick(0, 6);
    static const Fault kinds[] = {Fault::TooMany, Fault::E500,      Fault::E503,   Fault::Hang,
                                  Fault::Drop,    Fault::Truncated, Fault::NotJson};
    return kinds[pick(rng_)];
  }

  void handle(const httplib::Request& req, httplib::Response& res) {
    const auto at = std::chrono::steady_clock::now();
    const auto body = nlohmann::json::parse(req.body);
    const std::string prompt = body.at("prompt").get<std::string>();
    Fault f;
    {
      std::lock_guard<std::mutex> lock(mu_);
      f = draw(prompt);
      log_.push_back({prompt, at, f});
    }
    const nlohmann::json ok{
        {"object", "text_completion"},
        {"choices", {{{"index", 0}, {"text", "echo: " + prompt}, {"finish_reason", "stop"}}}},
        {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 4}, {"total_tokens", 7}}}};
    const std::string ok_text = ok.dump();
    switch (f) {
      case Fault::None:
        res.set_content(ok_text, "application/json");
        return;
      case Fault::TooMany:
        res.status = 429;
        res.set_header("Retry-After", fmt_seconds(retry_after_s_));
        res.set_content(R"({"error": {"message": "rate limited"}})", "application/json");
        return;
      case Fault::E500:
      case Fault::E503:
        res.status = f == Fault::E500 ? 500 : 503;
        res.set_content(R"({"error": {"message": "server trouble"}})", "application/json");
        return;
      case Fault::BadRequest:
        res.status = 400;
        res.set_content(R"({"error": {"message": "this prompt is refused"}})", "application/json");
        return;
      case Fault::Hang:
        std::this_thread::sleep_for(std::chrono::duration<double>(hang_s_));
        res.status = 500;
        return;
      case Fault::Drop:
        // Promise the whole body, send a few bytes, then abort: the client sees the connection
        // close mid-response.
        res.set_content_provider(ok_text.size(), "application/json",
                                 [ok_text](size_t, size_t, httplib::DataSink& sink) {
                                   sink.write(ok_text.data(), 10);
                                   return false;
                                 });
        return;
      case Fault::Truncated:
        res.set_content(ok_text.substr(0, ok_text.size() / 2), "application/json");
        return;
      case Fault::NotJson:
        res.set_content("<html>502 Bad Gateway</html>", "application/json");
        return;
    }
  }

  static std::string fmt_seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", s);
    return buf;
  }

  double rate_, hang_s_, retry_after_s_;
  std::mt19937_64 rng_;
  std::mutex mu_;
  std::vector<Attempt> log_;
  httplib::Server http_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace metamath::testing
