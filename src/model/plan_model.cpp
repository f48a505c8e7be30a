#include "model/plan_model.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <algorithm>

#include "core/cpu.h"
#include "core/error.h"
#include "model/model.h"

namespace metamath::model {

std::vector<PlanEntry> plan_model(const PlanModelOptions& o) {
  const at::ScalarType dtype = parse_dtype(o.dtype);
  if (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kChar && dtype != at::kQInt8)
    fail("plan: --dtype {}: expected f32, bf16, q8 or q8-dot", o.dtype);
  if (o.prompt_tokens < 1) fail("plan: --prompt-tokens must be at least 1");
  if (o.threads > 0) at::set_num_threads(o.threads);
  const Model model = Model::load(o.model, dtype);
  const PlanMode previous = set_plan_mode(PlanMode::measure);
  forget_plan();
  c10::InferenceMode guard;
  for (int64_t B : o.batches) {
    if (B < 1) fail("plan: --batch {}: must be at least 1", B);
    KVCache cache = model.make_cache(B, o.prompt_tokens + 1);
    const int64_t vocab = model.config().vocab_size;
    ForwardInput prefill, step;
    prefill.input_ids = at::randint(vocab, {B, o.prompt_tokens}, at::kLong);
    model.forward(prefill, &cache, LogitsMode::Last);
    step.input_ids = at::randint(vocab, {B, 1}, at::kLong);
    model.forward(step, &cache, LogitsMode::Last);
  }
  set_plan_mode(previous);
  return plan_entries();
}

std::string format_plan_table(const std::vector<PlanEntry>& entries) {
  std::string out = fmt::format("cpu: {}\nflags: {}\nplan file: {}\n", cpu_model_name(),
                                cpu_flags_line(), plan_file().string());
  size_t width = 3;
  for (const PlanEntry& e : entries) width = std::max(width, e.key.size());
  out += fmt::format("{:<{}}  {:<16}  {}\n", "key", width, "chosen", "candidates (us)");
  for (const PlanEntry& e : entries) {
    std::string times = e.source == "busy" ? "(machine busy: not measured, the fixed rule)" : "";
    for (const CandidateTiming& t : e.timings)
      times += fmt::format("{}{} {:.1f}{}  ", t.name == e.chosen ? "*" : "", t.name,
                           t.seconds * 1e6, "");
    out += fmt::format("{:<{}}  {:<16}  {}\n", e.key, width, e.chosen, times);
  }
  return out;
}

}  // namespace metamath::model
