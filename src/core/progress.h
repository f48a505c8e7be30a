#pragma once
// Progress reporting for long jobs: on a TTY a redrawn bar with done/total, rate and ETA; otherwise
// a plain log line at most every `plain_interval` seconds (and at the end).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace metamath {

class Progress {
 public:
  // total == 0 means unknown total (no ETA). `out` defaults to stderr.
  Progress(std::string label, std::uint64_t total, std::FILE* out = nullptr);
  ~Progress();
  void tick(std::uint64_t n = 1);
  void set_total(std::uint64_t total);
  void set_postfix(std::string text);  // extra fields shown after the rate (e.g. "acc 71.2%")
  void finish();
  std::uint64_t done() const { return done_; }

  // Formatting helpers, exposed for tests.
  static std::string format_duration(double seconds);  // "1h02m", "3m07s", "12s"
  std::string render(double elapsed_s, bool tty) const;

  double plain_interval = 10.0;  // seconds between plain lines when not a TTY

 private:
  void draw(bool force);
  std::string label_;
  std::uint64_t total_, done_ = 0;
  std::string postfix_;
  std::FILE* out_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  mutable std::mutex mu_;
};

}  // namespace metamath
