#pragma once
// An in-process llm::Backend for eval tests: each request is answered by a function of the
// request, results are delivered in reverse order (a real backend finishes out of order), and the
// backend can "crash" (throw) after delivering a given number of results. generate() may be called
// from several threads at once (as serve::Server does): calls are served one at a time.
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "llm/backend.h"

namespace metamath::fake {

class FakeBackend : public llm::Backend {
 public:
  using Answer = std::function<llm::Result(const llm::Request&)>;
  explicit FakeBackend(Answer answer, std::string name = "fake-model")
      : answer_(std::move(answer)), name_(std::move(name)) {}

  void generate(const std::vector<llm::Request>& requests,
                const llm::ResultCallback& on_result) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& r : requests) seen.push_back(r);
    for (auto it = requests.rbegin(); it != requests.rend(); ++it) {
      if (crash_after >= 0 && delivered >= crash_after) throw std::runtime_error("simulated crash");
      llm::Result res = answer_(*it);
      res.id = it->id;
      ++delivered;
      on_result(std::move(res));
    }
  }
  std::vector<std::vector<float>> embed(const std::vector<std::string>&) override { return {}; }
  std::string model_name() const override { return name_; }

  std::vector<llm::Request> seen;  // every request received
  int delivered = 0;
  int crash_after = -1;  // throw once this many results were delivered (-1: never)

 private:
  Answer answer_;
  std::string name_;
  std::mutex mu_;
};

// A Result with one choice per text.
inline llm::Result choices(const std::vector<std::string>& texts,
                           const std::string& finish = "stop") {
  llm::Result r;
  for (const auto& t : texts) r.choices.push_back({t, finish});
  r.prompt_tokens = 100;
  r.completion_tokens = 10 * static_cast<int>(texts.size());
  return r;
}

}  // namespace metamath::fake
