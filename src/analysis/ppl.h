#pragma once
// Perplexity of responses under a model: the MetaMath paper's "MetaMathQA is easier to learn"
// analysis. For each JSONL record, the mean negative log-likelihood (nats) of its response given
// the Alpaca training prompt of its query, over exactly the tokens `metamath train` learns.
// The prompt style (data/prompt.h: official or plain) is --prompt-style, else the one the model
// was trained with (its train_run.json; a record older than the setting means plain), else
// official, `metamath train`'s default. The
// example is tokenised by train::tokenize_example (prompt + response + EOS, cut to --max-len;
// labels on the response tokens and EOS), batched by train::make_batch and scored by the
// trainer's own loss terms (train::batch_token_losses). ppl = exp(mean NLL).
//
// Aggregates, overall and per `type`: examples, tokens, mean_nll (token-weighted: total NLL /
// total tokens, i.e. the training loss), ppl = exp(mean_nll), and the per-example means
// mean_example_nll and mean_example_ppl (each example counts once, whatever its length).
//
// Outputs (DIR = --out), written atomically:
//   ppl.jsonl   per record: i (0-based row), id (the record's id field, when present), type,
//               tokens (label tokens), nll, ppl, truncated; a record whose prompt alone fills
//               --max-len has tokens 0 and null nll/ppl (counted as dropped)
//   ppl.json    the summary: overall, by_type, dropped, truncated; model, tokenizer, dtype, data
//               file (path, sha256, bytes), options (with prompt_style and prompt_style_from:
//               "flag", "train_run.json" or "default")
//   by_type.csv type,examples,tokens,mean_nll,ppl,mean_example_ppl
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace metamath {
class Progress;
}
namespace metamath::model {
class Model;
}
namespace metamath::train {
struct SftData;
}

namespace metamath::analysis {

// Per example of `data`: the sum of -log p over its label tokens. Examples go longest first, as
// many per forward pass as fit in batch_tokens (rows x longest row; at least one). Ticks
// `progress` once per example when given.
std::vector<double> example_nll_sums(const model::Model& model, const train::SftData& data,
                                     int64_t batch_tokens, int64_t pad_id,
                                     Progress* progress = nullptr);

struct PplOptions {
  std::filesystem::path model;      // HF model folder
  std::filesystem::path tokenizer;  // default: the model folder
  std::filesystem::path data;       // JSONL
  std::filesystem::path out;        // output folder
  std::string query_field = "query", response_field = "response";
  std::string type_field = "type", id_field = "id";
  std::string prompt_style;     // official, plain, or "": as the model was trained (see above)
  int64_t max_len = 512;        // as `metamath train --max-len`
  int64_t limit = 0;            // first N records (0 = all)
  int64_t batch_tokens = 4096;  // padded tokens per forward pass
  std::string dtype = "f32", device = "cpu";
  bool progress = true;
};

struct PplRow {
  int64_t index = 0;
  nlohmann::json id;  // null when the record has none
  std::string type;
  int64_t tokens = 0;  // label tokens (0: dropped)
  double nll = 0;      // mean over the label tokens
  bool truncated = false;
};

struct PplGroup {
  std::string type;  // "" for the overall group
  int64_t examples = 0, tokens = 0;
  double mean_nll = 0, ppl = 0, mean_example_nll = 0, mean_example_ppl = 0;
};

struct PplResult {
  std::vector<PplRow> rows;
  PplGroup overall;
  std::vector<PplGroup> by_type;  // in order of first appearance; empty when no record has a type
  int64_t dropped = 0, truncated = 0;
  nlohmann::json report;  // what ppl.json holds
};

// Aggregates rows (dropped rows are skipped) overall and per type.
void summarize_ppl(PplResult& result);

// The `metamath ppl` job: reads, tokenises, scores, writes the outputs under opts.out.
PplResult run_ppl(const PplOptions& opts);

}  // namespace metamath::analysis
