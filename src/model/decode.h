#pragma once
// The fused decode step: one new token for each of a few rows against the KV cache, with every
// decoder layer run on raw buffers inside one OpenMP parallel region (threads split each product's
// output columns and the attention's KV heads, and meet at a barrier between phases), instead of
// the ~30 libtorch ops per layer of the layered pass (model/model.h).
//
// Why: at batch 1 a decode step is bound by streaming the weights once, and the layered pass
// spent ~6 ms per step of a 134M model (a third of the step in bf16) outside the products: op
// dispatch, small allocations, masks and RoPE tables built through ATen, and a fork-join per op
// (bench/README.md, "Issue 19"). Here the glue is a few loops over hidden-size vectors, and what
// does not change from step to step is kept: the planner's tile choices (asked again whenever
// its answer may change: model/plan.h plan_generation, the kernel level, the weights), RoPE's
// rows (model/rope_table.h), the buffers, and the logits tensor once the caller has let it go.
//
// Numerics: Hugging Face's, like the layered pass. In bf16 every value is rounded to bf16 where
// the layered pass rounds it (each projection output, the norms, RoPE's products and sum, the
// residual sums, SiLU and the gate product, the logits); products run on the same kernels
// (model/linear_kernel.h) and attention on the same in-place kernel (model/attention.h), so the
// two paths differ only in the order of a few float sums (the norms' mean, RoPE's f32 sum).
//
// It applies to: CPU, float32 / bfloat16 / q8 models, AVX2 or better, no adapter, no autograd
// recording, a cache, input_ids [B, 1] with B <= kFusedMaxRows and no padding, explicit positions
// or packing, LogitsMode::Last or All; and only when the kernel planner (model/plan.h) picks one
// of our tile kernels for every product of that batch size (where it picks libtorch, e.g. oneDNN's
// bf16 GEMM at many rows, the layered pass keeps it). Anything irregular (an id outside the
// vocabulary, a slot out of range, a full cache) goes to the layered pass, which reports it.
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace metamath::model {

class Model;
class KVCache;
struct ForwardInput;
enum class LogitsMode;

constexpr int64_t kFusedMaxRows = 8;

// Logits [B, 1, V] float32 after appending each row's token to its slot, or an undefined tensor
// when the fused step does not apply (see above; the caller then runs the layered pass).
// inv_freq: the model's RoPE inverse frequencies (model/model.h rope_inv_freq), float32 CPU.
at::Tensor fused_decode(const Model& model, const ForwardInput& in, KVCache& cache, LogitsMode mode,
                        const at::Tensor& inv_freq);

// Whether fused_decode may run (default true; METAMATH_FUSED_DECODE=0 turns it off at start-up).
// Tests and benches compare the two paths with this switch. Returns the previous setting.
bool set_fused_decode(bool on);
bool fused_decode_enabled();
// Steps the fused path has run in this process (tests check that it ran).
int64_t fused_decode_steps();
// Those steps' time: in all (fused_decode's entry to its return) and in the parallel region that
// runs the layers; the difference is the host work around them (decode_bench prints it).
struct FusedDecodeTimes {
  int64_t steps = 0;
  double total_s = 0, region_s = 0;
};
FusedDecodeTimes fused_decode_times();

}  // namespace metamath::model
