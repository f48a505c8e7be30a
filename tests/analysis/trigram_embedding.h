#pragma once
// A deterministic stand-in for an embedding model, shared by the diversity tests: hashed character
// trigrams (FNV-1a), `dims` dimensions, so a test can recompute what the "model" returned.
#include <cstdint>
#include <string>
#include <vector>

namespace metamath::testing {

inline std::vector<float> trigram_vector(const std::string& s, int dims = 24) {
  std::vector<float> v(dims, 0.0f);
  for (std::size_t i = 0; i + 3 <= s.size(); ++i) {
    uint32_t h = 2166136261u;
    for (std::size_t k = i; k < i + 3; ++k) h = (h ^ static_cast<unsigned char>(s[k])) * 16777619u;
    v[h % static_cast<uint32_t>(dims)] += 1.0f;
  }
  return v;
}

}  // namespace metamath::testing
