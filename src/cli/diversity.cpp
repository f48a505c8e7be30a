// `metamath diversity`: the diversity gain of a new data set against a base set.
#include "analysis/diversity.h"

#include <fmt/format.h>

#include <cstdio>

#include "cli/backend_flags.h"
#include "cli/commands.h"
#include "core/log.h"

namespace metamath::cli {

void register_diversity(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "diversity",
      "Diversity gain of a new set against a base set (the MetaMath paper's measure): the mean, "
      "over the new items, of the squared L2 distance from the item's embedding to its nearest "
      "base embedding (exact search). Overall, per type, and as a curve over the first n new "
      "items. Embeddings from --backend openai (/v1/embeddings) or local (mean-pooled hidden "
      "states), cached on disk. Writes diversity.json, by_type.csv, curve.csv, nearest.jsonl.");
  struct Opts {
    analysis::DiversityOptions d;
    llm::BackendOptions backend;
    std::size_t embed_batch = 0;
    std::string kernel = "auto";
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto& d = o->d;
  cmd->add_option("--base", d.base, "base JSONL file(s), e.g. GSM8K and MATH train (repeatable)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--new", d.new_set, "the new JSONL set (e.g. MetaMathQA)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out,-o", d.out, "output folder")->required();
  cmd->add_option("--field", d.field,
                  "field embedded on both sides (default: the first of query, question, problem "
                  "that the row has)");
  cmd->add_option("--base-field", d.base_field, "field embedded in base rows (overrides --field)");
  cmd->add_option("--new-field", d.new_field, "field embedded in new rows (overrides --field)");
  cmd->add_option("--template", d.text_template,
                  "embed a template over the row's fields instead, e.g. '{query}\\n\\n{response}'");
  cmd->add_option("--type-field", d.type_field, "field of new rows grouped for per-type gains")
      ->capture_default_str();
  cmd->add_option("--cache-dir", d.cache_dir,
                  "embedding cache folder (default $METAMATH_CACHE/embeddings or "
                  "~/.cache/metamath/embeddings)");
  cmd->add_option("--embed-batch", o->embed_batch,
                  "texts per embedding call, cached after each (default: openai 4096, local 64)");
  cmd->add_option("--curve-points", d.points_per_decade, "curve points per decade of n")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_option("--nn-kernel", o->kernel,
                  "how nearest-neighbour candidates are found, all re-checked in float64 (same "
                  "answer): auto (amx-bf16 where the CPU has AMX, else avx512-bf16 where a short "
                  "measurement finds it faster than f32, else f32), f32 (float32 GEMM), amx-bf16 "
                  "(bfloat16 AMX tiles), avx512-bf16 (bfloat16 vdpbf16ps)")
      ->check(CLI::IsMember({"auto", "f32", "amx-bf16", "avx512-bf16"}))
      ->capture_default_str();
  cmd->add_option("--query-block", d.nearest.query_block, "new items per GEMM (0 = auto)");
  cmd->add_option("--base-block", d.nearest.base_block, "base rows per GEMM (0 = auto)");
  cmd->add_flag("--quiet,-q", o->quiet, "no progress bars");
  add_backend_flags(cmd, o->backend);
  cmd->callback([o]() {
    log::init();
    o->d.progress = !o->quiet;
    o->d.nearest.kernel = analysis::parse_nearest_kernel(o->kernel);
    analysis::Embedder e = analysis::make_embedder(o->backend, o->embed_batch);
    const analysis::DiversityResult r = analysis::run_diversity(o->d, e);
    std::string out = fmt::format("diversity gain {:.6g} ({} new items, {} base rows, {}-dim {})\n",
                                  r.summary.gain, r.summary.items, r.base_rows, r.dim, e.model_id);
    for (const auto& g : r.summary.by_type)
      out += fmt::format("  {:<16} {:>8} items  gain {:.6g}\n", g.type.empty() ? "(none)" : g.type,
                         g.items, g.gain);
    out += fmt::format("written to {}\n", o->d.out.string());
    std::fputs(out.c_str(), stdout);
  });
}

const Registration kRegisterDiversity{65, register_diversity};

}  // namespace metamath::cli
