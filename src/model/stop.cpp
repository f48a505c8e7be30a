#include "model/stop.h"

#include <algorithm>

#include "core/text.h"

namespace metamath::model {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
  for (const auto& s : stops_) longest_ = std::max(longest_, s.size());
}

bool StopMatcher::append(std::string_view piece) {
  if (stopped_) return true;
  text_.append(piece);
  if (stops_.empty()) return false;
  // A new match can only start within the last (longest - 1) bytes before the new piece.
  std::size_t from = scanned_;
  std::size_t best = std::string::npos;
  const std::string* which = nullptr;
  for (const auto& s : stops_) {
    std::size_t p = text_.find(s, from);
    if (p != std::string::npos && p < best) {
      best = p;
      which = &s;
    }
  }
  if (which) {
    matched_ = *which;
    text_.resize(best);
    stopped_ = true;
    return true;
  }
  scanned_ = text_.size() >= longest_ ? text_.size() - longest_ + 1 : 0;
  return false;
}

std::size_t StopMatcher::safe_length() const {
  std::size_t n = text_.size();
  if (!stopped_) {
    // Hold back the longest suffix that is a proper prefix of some stop string.
    std::size_t hold = 0;
    for (const auto& s : stops_) {
      for (std::size_t k = std::min(s.size() - 1, n); k > hold; --k) {
        if (std::string_view(text_).substr(n - k) == std::string_view(s).substr(0, k)) {
          hold = k;
          break;
        }
      }
    }
    n -= hold;
  }
  return text::utf8_safe_prefix(std::string_view(text_).substr(0, n));
}

}  // namespace metamath::model
