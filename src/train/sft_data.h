#pragma once
// Supervised fine-tuning data: MetaMathQA-style JSONL (query/response, or chosen fields) rendered
// with the Alpaca training prompt in the chosen style (data/prompt.h: official = MetaMath's
// train_math.py, which splits a query at its first newline into instruction and input; plain =
// the whole query as the instruction) and tokenised once into a cached binary.
//
// Tokenisation follows MetaMath's training code: the example text is prompt + response + EOS;
// ids = encode(prompt + response) (with BOS when the tokenizer adds one) followed by the EOS id;
// the first encode(prompt).size() tokens are the prompt, whose labels are ignored. Examples longer
// than max_len are cut to max_len (counted as truncated); an example with no response token left
// after the cut is dropped (counted).
//
// Batching: each epoch the example order is a seeded shuffle (own Fisher-Yates over
// std::mt19937_64, so the order is the same on every platform); with length grouping, the shuffled
// order is cut into mega-batches of `group_batches` global batches, each sorted by length
// (longest first), so that micro-batches hold examples of similar length (less padding).
// Torch-free.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/prompt.h"

namespace metamath::model {
class Tokenizer;
}

namespace metamath::train {

struct SftDataOptions {
  std::filesystem::path input;              // JSONL file
  std::string query_field = "query";        // rendered with the Alpaca training prompt
  std::string response_field = "response";  // the supervised part
  data::PromptStyle prompt_style = data::PromptStyle::Official;
  int64_t max_len = 512;
  int64_t limit = 0;                    // use only the first `limit` records (0 = all)
  std::filesystem::path cache_dir;      // where the tokenised binary goes; empty = no cache
  std::filesystem::path tokenizer_dir;  // its files are part of the cache key
  bool skip_bad = false;                // skip malformed JSONL lines (counted)
  int threads = 0;                      // tokenisation threads (0 = hardware concurrency)
};

struct SftData {
  std::vector<int32_t> tokens;      // all examples back to back
  std::vector<int64_t> offsets;     // size n + 1
  std::vector<int32_t> prompt_len;  // labels start at this index (ids before it are the prompt)
  int64_t records = 0;              // records read
  int64_t truncated = 0;            // examples cut to max_len
  int64_t dropped = 0;              // examples with no response token within max_len
  int64_t bad_lines = 0;            // malformed lines skipped (skip_bad)
  bool from_cache = false;
  std::filesystem::path cache_file;

  int64_t size() const { return static_cast<int64_t>(prompt_len.size()); }
  int64_t length(int64_t i) const { return offsets[i + 1] - offsets[i]; }
  const int32_t* ids(int64_t i) const { return tokens.data() + offsets[i]; }
  // Tokens that carry a label (predicted positions) in example i: length - prompt_len.
  int64_t label_tokens(int64_t i) const { return length(i) - prompt_len[i]; }
  void add(const std::vector<int32_t>& ids, int32_t prompt_len);
};

// One tokenised example (see the header comment). `truncated` is set when it was cut.
struct TokenizedExample {
  std::vector<int32_t> ids;
  int32_t prompt_len = 0;
  bool truncated = false;
};
TokenizedExample tokenize_example(const model::Tokenizer& tok, const std::string& query,
                                  const std::string& response, int64_t max_len,
                                  data::PromptStyle style);

// Reads, renders and tokenises the input, or reads the cached binary when its key (input file
// contents, tokenizer files, fields, prompt style, max_len, limit, format version) matches. Errors
// name the file and line.
SftData load_sft_data(const SftDataOptions& opts, const model::Tokenizer& tok);

// 64-bit FNV-1a over a file's bytes (throws naming the file when unreadable).
uint64_t hash_file(const std::filesystem::path& path);
// Hash of the tokenizer files present in a folder (tokenizer.json, tokenizer.model,
// tokenizer_config.json, special_tokens_map.json, added_tokens.json).
uint64_t hash_tokenizer_dir(const std::filesystem::path& dir);

// The epoch's global batches (example indices). The last batch may be smaller than
// global_batch. Deterministic in (seed, epoch).
std::vector<std::vector<int64_t>> epoch_batches(const SftData& data, int64_t global_batch,
                                                uint64_t seed, int64_t epoch, bool group_by_length,
                                                int64_t group_batches = 50);

// Splits a global batch into micro-batches of at most micro_batch examples (in order) and returns
// those of `rank` out of `world` (micro-batch c goes to rank c % world).
std::vector<std::vector<int64_t>> rank_micro_batches(const std::vector<int64_t>& global,
                                                     int64_t micro_batch, int rank, int world);

// Packing: this rank's examples of a global batch (every world-th one, from `rank`) packed into
// rows of at most max_len tokens, first-fit in order of decreasing length (ties by position), each
// row listing its examples in packing order. Rows are then grouped micro_batch at a time (see
// rank_packed_micro_batches).
std::vector<std::vector<int64_t>> pack_rows(const SftData& data,
                                            const std::vector<int64_t>& examples, int64_t max_len);
// The rank's packed rows grouped into micro-batches of at most micro_batch rows.
std::vector<std::vector<std::vector<int64_t>>> rank_packed_micro_batches(
    const SftData& data, const std::vector<int64_t>& global, int64_t micro_batch, int64_t max_len,
    int rank, int world);

// How many micro-batches the whole global batch makes over all `world` ranks: padded
// (rank_micro_batches) or packed (rank_packed_micro_batches).
int64_t global_micro_batch_count(const SftData& data, const std::vector<int64_t>& global,
                                 int64_t micro_batch, bool packing, int64_t max_len, int world);

}  // namespace metamath::train
