#pragma once
// Planning a whole model ahead of use (`metamath plan`): the kernel planner (model/plan.h)
// measures every product a prefill and a decode step meet, at the batch sizes asked for, and the
// table of candidates and timings is printed.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/plan.h"

namespace metamath::model {

struct PlanModelOptions {
  std::filesystem::path model;             // HF model folder
  std::string dtype = "f32";               // weights as loaded: f32 or bf16
  std::vector<int64_t> batches = {1, 32};  // sequences decoded together
  int64_t prompt_tokens = 128;             // prefill length per sequence
  int threads = 0;                         // at::set_num_threads first when > 0 (keys hold it)
};

// Re-measures (PlanMode::measure, this CPU's entries forgotten first) every key met by a prefill
// of prompt_tokens tokens then one decode step at each batch size; the plan file is updated.
// Returns the entries met, sorted by key.
std::vector<PlanEntry> plan_model(const PlanModelOptions& o);

// The entries as a text table: key, chosen candidate, every candidate's time in microseconds
// (the chosen one marked *), with the CPU model, flags and plan file above it.
std::string format_plan_table(const std::vector<PlanEntry>& entries);

}  // namespace metamath::model
