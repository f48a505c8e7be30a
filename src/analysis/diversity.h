#pragma once
// Diversity gain (the MetaMath paper's measure of how much a new data set adds to a base set):
//
//   gain(new | base) = 1/M * sum over the M new items x of  min over base items y of ||f(x) -
//   f(y)||^2
//
// with f a text embedding (the paper: OpenAI's text-embedding-ada-002 over the question). Reported
// overall, per `type` (GSM_AnsAug ... MATH_FOBAR for MetaMathQA-shaped sets), and as an
// incremental curve: the gain of the first n new items (file order) at log-spaced n.
//
// Nearest neighbours: exact, by blocks. For a block of new items Q and of base rows B, one GEMM
// gives T = ||b||^2 - 2 Q B^T (float32), so ||q - b||^2 = ||q||^2 + T; the search streams the new
// items through in blocks, so memory is the base matrix plus one block and one tile
// (NearestOptions). Precision: float32 loses accuracy to cancellation when a distance is small
// against the norms, so every base row whose float32 distance is within twice the float32 error
// bound of the row's minimum (the bound (d*u + 10u) * (||q||^2 + max ||b||^2), u = 2^-24, which
// holds for any summation order of the dot products) is kept as a candidate and recomputed in
// float64 as sum (q_i - b_i)^2; the minimum among them is the exact minimum (float64 rounding of
// the float32 embeddings, relative error ~1e-13). A row with more than 64 candidates (massive
// near-ties) is rescanned in float64 against the whole base; both counts are reported. On CPUs
// with AMX-BF16 the candidates come instead from bfloat16 tiles with the row minimum fused into the
// tile loop (NearestKernel, analysis/nn_kernel.h: same re-check, wider rigorous margin, same
// answer, several times faster than any float32 GEMM).
//
// Embeddings come through analysis/embedding.h (any backend, cached on disk); texts are a field
// of each JSONL row (default: the first of query, question, problem a row has) or a template over
// the row's fields ("{query}\n\n{response}").
//
// Outputs (DIR = --out), all written atomically:
//   diversity.json  the summary: gain, per-type gains, the curve, the embedding model and backend,
//                   the data files (path, sha256, bytes, fnv1a64, rows), cache counts, timing
//   by_type.csv     type,items,gain
//   curve.csv       n,gain
//   nearest.jsonl   per new item: i (row index), type, dist2, nearest (base row index, over the
//                   base files in order)
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/embedding.h"

namespace metamath::analysis {

// ---- exact nearest-neighbour search ------------------------------------------------------------

// Writes rows [start, start + n) of a row-major float32 matrix into dst (n x dim floats).
using RowSource = std::function<void(int64_t start, int64_t n, float* dst)>;

// How the candidates are found (every kernel then re-checks them in float64, so all give the same
// answer): f32 = float32 GEMM tiles through libtorch (any CPU); amx-bf16 = bfloat16 tiles on Intel
// AMX with the row minimum fused into the tile loop (analysis/nn_kernel.h; Sapphire Rapids and
// later); avx512-bf16 = the same blocks through AVX512-BF16 vdpbf16ps (Zen 4, Cooper Lake). auto:
// amx-bf16 where the CPU has it and METAMATH_ISA allows avx512, else avx512-bf16 where the CPU
// has it and a short measurement (once per process) finds it faster than f32, else f32.
enum class NearestKernel { automatic, f32_gemm, amx_bf16, avx512_bf16 };
const char* nearest_kernel_name(NearestKernel k);  // "auto", "f32", "amx-bf16", "avx512-bf16"
NearestKernel parse_nearest_kernel(const std::string& name);

struct NearestOptions {
  NearestKernel kernel = NearestKernel::automatic;
  int64_t query_block = 0;  // new items per GEMM (0: auto, a tile of about 64 MiB)
  int64_t base_block = 0;   // base rows per GEMM (0: auto, at most 8192)
  bool recheck = true;  // false: float32 values only (what FAISS IndexFlatL2 returns; f32 kernel)
  bool progress = false;
  std::string label = "nearest";
};

struct Nearest {
  std::vector<double> dist2;   // per query: squared L2 distance to its nearest base row
  std::vector<int64_t> index;  // that row (with recheck: the lowest index among exact ties)
  int64_t candidates = 0;      // (query, base row) pairs recomputed in float64
  int64_t rescanned = 0;       // queries recomputed in float64 against every base row
  std::string kernel;          // the kernel used: "f32", "amx-bf16" or "avx512-bf16"
};

// auto's choice where the CPU has AVX512-BF16 but no AMX: whether the avx512-bf16 filter beats
// the float32 GEMM on a sample of this base (up to 256 of its rows against up to 4,096, best of
// 3 each), measured on the first call and remembered for the process. Requires AVX512-BF16.
bool avx512_bf16_beats_f32(const float* base, int64_t nb, int64_t dim);

// base: nb x dim row-major float32, finite. Queries come from `queries` one block at a time.
Nearest nearest_sq_l2(const RowSource& queries, int64_t nq, const float* base, int64_t nb,
                      int64_t dim, const NearestOptions& opts = {});
Nearest nearest_sq_l2(const float* queries, int64_t nq, const float* base, int64_t nb, int64_t dim,
                      const NearestOptions& opts = {});

// ---- the gain from per-item distances ---------------------------------------------------------

struct GroupGain {
  std::string type;
  int64_t items = 0;
  double gain = 0;
};
struct CurvePoint {
  int64_t n = 0;
  double gain = 0;  // mean of the first n distances
};
struct GainSummary {
  double gain = 0;
  int64_t items = 0;
  std::vector<GroupGain> by_type;  // in order of first appearance
  std::vector<CurvePoint> curve;
};
// Means accumulated in float64 (compensated). Curve at n = round(10^(k / points_per_decade)),
// distinct, up to and including dist2.size(). types may be empty (no per-type gains).
GainSummary summarize_gain(const std::vector<double>& dist2, const std::vector<std::string>& types,
                           int points_per_decade = 5);

// ---- the `metamath diversity` job --------------------------------------------------------------

struct DiversityOptions {
  std::vector<std::filesystem::path> base;  // JSONL files, concatenated
  std::filesystem::path new_set;            // JSONL
  std::filesystem::path out;                // output folder
  // Text of a row: `field` (empty: the first of query, question, problem the row has), or
  // `base_field` / `new_field` for one side, or a template over the row's fields.
  std::string field, base_field, new_field;
  std::string text_template;  // e.g. "{query}\n\n{response}"; replaces the fields when set
  std::string type_field = "type";
  std::filesystem::path cache_dir;  // embedding cache (default_embedding_cache_dir())
  int points_per_decade = 5;
  NearestOptions nearest;
  bool progress = true;
};

struct DiversityResult {
  GainSummary summary;
  Nearest nearest;
  int64_t base_rows = 0, base_unique = 0, dim = 0;
  EmbedStats base_embed, new_embed;
  nlohmann::json report;  // what diversity.json holds
};

// $METAMATH_CACHE/embeddings, else $XDG_CACHE_HOME/metamath/embeddings, else
// ~/.cache/metamath/embeddings.
std::filesystem::path default_embedding_cache_dir();

// Reads the texts, embeds what the cache lacks, searches, writes the outputs under opts.out.
DiversityResult run_diversity(const DiversityOptions& opts, Embedder& embedder);

}  // namespace metamath::analysis
