#pragma once
// What a caller of Backend::generate()/embed() waits on: a backend thread put()s finished items,
// the caller's thread take()s them. deliver() runs the caller's callback on each of n results.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>

namespace metamath::llm {

template <typename T>
class Mailbox {
 public:
  void put(T x) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      items_.push_back(std::move(x));
    }
    cv_.notify_one();
  }
  T take() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !items_.empty(); });
    T x = std::move(items_.front());
    items_.pop_front();
    return x;
  }
  // Takes n items and hands each to f, one at a time. The backend's work points into the caller's
  // requests, so even when f throws every item is still waited for; the first exception is then
  // rethrown.
  void deliver(std::size_t n, const std::function<void(T)>& f) {
    std::exception_ptr thrown;
    for (std::size_t i = 0; i < n; ++i) {
      T x = take();
      if (thrown) continue;
      try {
        f(std::move(x));
      } catch (...) {
        thrown = std::current_exception();
      }
    }
    if (thrown) std::rethrow_exception(thrown);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
};

}  // namespace metamath::llm
