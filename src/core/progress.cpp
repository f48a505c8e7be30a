#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

namespace metamath {

Progress::Progress(std::string label, std::uint64_t total, std::FILE* out)
    : label_(std::move(label)), total_(total), out_(out ? out : stderr) {
  tty_ = ::isatty(::fileno(out_)) != 0;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::tick(std::uint64_t n) {
  std::lock_guard<std::mutex> lk(mu_);
  done_ += n;
  draw(false);
}

void Progress::set_total(std::uint64_t total) {
  std::lock_guard<std::mutex> lk(mu_);
  total_ = total;
}

void Progress::set_postfix(std::string text) {
  std::lock_guard<std::mutex> lk(mu_);
  postfix_ = std::move(text);
}

void Progress::finish() {
  std::lock_guard<std::mutex> lk(mu_);
  if (finished_) return;
  finished_ = true;
  draw(true);
  if (tty_) std::fputc('\n', out_);
  std::fflush(out_);
}

std::string Progress::format_duration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  auto t = static_cast<long long>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

std::string Progress::render(double elapsed, bool tty) const {
  double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  std::string rate_s = rate >= 100 ? fmt::format("{:.0f}/s", rate) : fmt::format("{:.2f}/s", rate);
  std::string s = label_;
  s += ": ";
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    if (tty) {
      constexpr int kWidth = 24;
      int fill = static_cast<int>(frac * kWidth);
      s += "[" + std::string(fill, '#') + std::string(kWidth - fill, '.') + "] ";
    }
    s += fmt::format("{}/{} ({:.1f}%) {} elapsed {}", done_, total_, 100.0 * frac, rate_s,
                     format_duration(elapsed));
    if (done_ < total_) {
      double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1;
      s += " ETA " + format_duration(eta);
    }
  } else {
    s += fmt::format("{} done {} elapsed {}", done_, rate_s, format_duration(elapsed));
  }
  if (!postfix_.empty()) s += " | " + postfix_;
  return s;
}

void Progress::draw(bool force) {
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  double min_gap = tty_ ? 0.1 : plain_interval;
  if (!force && since < min_gap) return;
  last_draw_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string line = render(elapsed, tty_);
  if (tty_) {
    std::fprintf(out_, "\r\033[2K%s", line.c_str());
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

}  // namespace metamath
