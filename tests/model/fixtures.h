#pragma once
// The tiny reference models in tests/model/fixtures/<name>/ (llama2, llama3, mistral, qwen2; made
// by tests/reference/make_fixtures.py with the pure-PyTorch reference) and their golden files,
// shared by the model tests. Header-only.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "model/safetensors.h"

namespace metamath::testing {

inline const std::filesystem::path kFixtures =
    std::filesystem::path(METAMATH_SOURCE_DIR) / "tests/model/fixtures";

// golden.json (prompts and the reference's 64-token greedy generations) and golden.safetensors
// (the reference's logits per prompt: f32, bf16 and f64 forwards of the same weights).
struct Golden {
  std::vector<std::vector<int64_t>> prompts, generations;
  std::vector<at::Tensor> logits, bf16_logits;  // [T_i, V] float32
  std::vector<at::Tensor> f64_logits;           // [T_i, V] float64
};

inline Golden load_golden(const std::string& name) {
  Golden g;
  json j = json::parse(read_file(kFixtures / name / "golden.json"));
  g.prompts = j["prompts"].get<std::vector<std::vector<int64_t>>>();
  g.generations = j["generations"].get<std::vector<std::vector<int64_t>>>();
  auto f = model::SafetensorsFile::open(kFixtures / name / "golden.safetensors");
  for (std::size_t i = 0; i < g.prompts.size(); ++i) {
    g.logits.push_back(f->get("logits_" + std::to_string(i)));
    g.bf16_logits.push_back(f->get("bf16_logits_" + std::to_string(i)));
    g.f64_logits.push_back(f->get("f64_logits_" + std::to_string(i)));
  }
  return g;
}

}  // namespace metamath::testing
