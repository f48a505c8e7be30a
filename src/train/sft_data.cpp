#include "train/sft_data.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/prompt.h"
#include "model/tokenizer.h"

namespace metamath::train {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'M', 'M', 'S', 'F', 'T', '0', '0', '1'};
constexpr uint64_t kFnvOffset = 1469598103934665603ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

uint64_t fnv(uint64_t h, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= kFnvPrime;
  }
  return h;
}

uint64_t fnv_str(uint64_t h, const std::string& s) {
  uint64_t n = s.size();
  h = fnv(h, &n, sizeof n);
  return fnv(h, s.data(), s.size());
}

template <typename T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <typename T>
void put_vec(std::string& out, const std::vector<T>& v) {
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

struct Reader {
  const std::string& s;
  std::size_t pos = 0;
  std::string file;
  template <typename T>
  T get() {
    T v;
    need(sizeof v);
    std::memcpy(&v, s.data() + pos, sizeof v);
    pos += sizeof v;
    return v;
  }
  template <typename T>
  void get_vec(std::vector<T>& v, uint64_t n) {
    need(n * sizeof(T));
    v.resize(n);
    std::memcpy(v.data(), s.data() + pos, n * sizeof(T));
    pos += n * sizeof(T);
  }
  void need(uint64_t n) {
    if (pos + n > s.size()) fail("{}: truncated SFT cache file (delete it to rebuild)", file);
  }
};

uint64_t cache_key(const SftDataOptions& o) {
  uint64_t h = kFnvOffset;
  h = fnv_str(h, std::string(kMagic, 8));
  uint64_t in = hash_file(o.input);
  h = fnv(h, &in, sizeof in);
  uint64_t tk = o.tokenizer_dir.empty() ? 0 : hash_tokenizer_dir(o.tokenizer_dir);
  h = fnv(h, &tk, sizeof tk);
  h = fnv_str(h, o.query_field);
  h = fnv_str(h, o.response_field);
  h = fnv_str(h, std::string(data::prompt_style_name(o.prompt_style)));
  h = fnv(h, &o.max_len, sizeof o.max_len);
  h = fnv(h, &o.limit, sizeof o.limit);
  return h;
}

std::string serialize(const SftData& d, uint64_t key) {
  std::string out(kMagic, 8);
  put(out, key);
  put(out, static_cast<uint64_t>(d.size()));
  put(out, static_cast<uint64_t>(d.tokens.size()));
  put(out, d.records);
  put(out, d.truncated);
  put(out, d.dropped);
  put(out, d.bad_lines);
  put_vec(out, d.offsets);
  put_vec(out, d.prompt_len);
  put_vec(out, d.tokens);
  return out;
}

bool deserialize(const fs::path& file, uint64_t key, SftData& d) {
  std::string s = read_file(file);
  if (s.size() < 16 || std::memcmp(s.data(), kMagic, 8) != 0) return false;
  Reader r{s, 8, file.string()};
  if (r.get<uint64_t>() != key) return false;
  const uint64_t n = r.get<uint64_t>(), nt = r.get<uint64_t>();
  d.records = r.get<int64_t>();
  d.truncated = r.get<int64_t>();
  d.dropped = r.get<int64_t>();
  d.bad_lines = r.get<int64_t>();
  r.get_vec(d.offsets, n + 1);
  r.get_vec(d.prompt_len, n);
  r.get_vec(d.tokens, nt);
  if (r.pos != s.size() || d.offsets.back() != static_cast<int64_t>(nt))
    fail("{}: corrupt SFT cache file (delete it to rebuild)", file.string());
  return true;
}

}  // namespace

void SftData::add(const std::vector<int32_t>& ids, int32_t plen) {
  if (offsets.empty()) offsets.push_back(0);
  tokens.insert(tokens.end(), ids.begin(), ids.end());
  offsets.push_back(static_cast<int64_t>(tokens.size()));
  prompt_len.push_back(plen);
}

uint64_t hash_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read", path.string());
  uint64_t h = kFnvOffset;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = fnv(h, buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  return h;
}

uint64_t hash_tokenizer_dir(const fs::path& dir) {
  uint64_t h = kFnvOffset;
  for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                        "special_tokens_map.json", "added_tokens.json"}) {
    fs::path p = dir / f;
    if (!fs::exists(p)) continue;
    h = fnv_str(h, f);
    uint64_t fh = hash_file(p);
    h = fnv(h, &fh, sizeof fh);
  }
  return h;
}

TokenizedExample tokenize_example(const model::Tokenizer& tok, const std::string& query,
                                  const std::string& response, int64_t max_len,
                                  data::PromptStyle style) {
  if (!tok.eos_id()) fail("the tokenizer has no EOS token: SFT examples need one");
  const bool bos = tok.add_bos_token();
  const std::string prompt = data::training_prompt(query, style);
  TokenizedExample ex;
  // Special-token text inside the data is plain text, never a control token.
  ex.ids = tok.encode(prompt + response, bos, /*parse_special=*/false);
  ex.prompt_len = static_cast<int32_t>(tok.encode(prompt, bos, false).size());
  ex.ids.push_back(*tok.eos_id());
  if (static_cast<int64_t>(ex.ids.size()) > max_len) {
    ex.ids.resize(max_len);
    ex.truncated = true;
  }
  ex.prompt_len = std::min<int32_t>(ex.prompt_len, static_cast<int32_t>(ex.ids.size()));
  return ex;
}

SftData load_sft_data(const SftDataOptions& o, const model::Tokenizer& tok) {
  if (o.max_len < 2) fail("--max-len must be at least 2 (got {})", o.max_len);
  uint64_t key = 0;
  fs::path cache;
  if (!o.cache_dir.empty()) {
    key = cache_key(o);
    cache = o.cache_dir / fmt::format("sft-{:016x}.bin", key);
    SftData d;
    if (fs::exists(cache) && deserialize(cache, key, d)) {
      d.from_cache = true;
      d.cache_file = cache;
      log::info("SFT data: {} examples from cache {}", d.size(), cache.string());
      return d;
    }
  }

  struct Rec {
    std::string q, r;
  };
  std::vector<Rec> recs;
  JsonlOptions jo;
  jo.skip_bad = o.skip_bad;
  JsonlReader reader(o.input, jo);
  json j;
  while ((o.limit <= 0 || static_cast<int64_t>(recs.size()) < o.limit) && reader.next(j)) {
    const std::string where = reader.where();
    recs.push_back({require_string(j, o.query_field.c_str(), where),
                    require_string(j, o.response_field.c_str(), where)});
  }
  if (recs.empty()) fail("{}: no training records", o.input.string());

  const std::size_t n = recs.size();
  std::vector<TokenizedExample> out(n);
  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::clamp<int>(threads, 1, 64);
  Progress progress("tokenize", n);
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(threads);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        for (std::size_t i = t; i < n; i += threads) {
          out[i] = tokenize_example(tok, recs[i].q, recs[i].r, o.max_len, o.prompt_style);
          progress.tick();
        }
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  progress.finish();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);

  SftData d;
  d.records = static_cast<int64_t>(n);
  d.bad_lines = static_cast<int64_t>(reader.bad_lines());
  d.offsets.push_back(0);
  for (auto& ex : out) {
    if (ex.truncated) ++d.truncated;
    if (ex.prompt_len >= static_cast<int32_t>(ex.ids.size())) {
      ++d.dropped;
      continue;
    }
    d.add(ex.ids, ex.prompt_len);
  }
  if (d.size() == 0)
    fail("{}: every example's prompt fills --max-len {}: nothing to train on", o.input.string(),
         o.max_len);
  log::info("SFT data: {} examples, {} tokens; {} truncated to {} tokens, {} dropped", d.size(),
            d.tokens.size(), d.truncated, o.max_len, d.dropped);
  if (!cache.empty()) {
    fs::create_directories(o.cache_dir);
    write_file_atomic(cache, serialize(d, key));
    d.cache_file = cache;
  }
  return d;
}

std::vector<std::vector<int64_t>> epoch_batches(const SftData& data, int64_t global_batch,
                                                uint64_t seed, int64_t epoch, bool group_by_length,
                                                int64_t group_batches) {
  if (global_batch <= 0) fail("global batch must be positive (got {})", global_batch);
  const int64_t n = data.size();
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  if (group_by_length) {
    const int64_t mega = global_batch * std::max<int64_t>(1, group_batches);
    for (int64_t s = 0; s < n; s += mega) {
      auto b = order.begin() + s, e = order.begin() + std::min(n, s + mega);
      std::stable_sort(b, e, [&](int64_t x, int64_t y) { return data.length(x) > data.length(y); });
    }
  }
  std::vector<std::vector<int64_t>> batches;
  for (int64_t s = 0; s < n; s += global_batch)
    batches.emplace_back(order.begin() + s, order.begin() + std::min(n, s + global_batch));
  if (group_by_length && batches.size() > 1) {
    // Shuffle the batch order too, so an epoch does not run from long to short examples.
    for (std::size_t i = batches.size() - 1; i > 0; --i)
      std::swap(batches[i], batches[rng() % (i + 1)]);
  }
  return batches;
}

std::vector<std::vector<int64_t>> rank_micro_batches(const std::vector<int64_t>& global,
                                                     int64_t micro_batch, int rank, int world) {
  if (micro_batch <= 0) fail("micro batch must be positive (got {})", micro_batch);
  std::vector<std::vector<int64_t>> out;
  const auto n = static_cast<int64_t>(global.size());
  for (int64_t s = 0, c = 0; s < n; s += micro_batch, ++c)
    if (c % world == rank)
      out.emplace_back(global.begin() + s, global.begin() + std::min(n, s + micro_batch));
  return out;
}

std::vector<std::vector<int64_t>> pack_rows(const SftData& data,
                                            const std::vector<int64_t>& examples, int64_t max_len) {
  if (max_len <= 0) fail("packing: max length must be positive (got {})", max_len);
  std::vector<int64_t> order(examples.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return data.length(examples[a]) > data.length(examples[b]);
  });
  std::vector<std::vector<int64_t>> rows;
  std::vector<int64_t> room;
  for (int64_t i : order) {
    const int64_t e = examples[i], n = data.length(e);
    if (n > max_len)
      fail("packing: example {} has {} tokens, more than the row length {}", e, n, max_len);
    std::size_t r = 0;
    while (r < rows.size() && room[r] < n) ++r;
    if (r == rows.size()) {
      rows.emplace_back();
      room.push_back(max_len);
    }
    rows[r].push_back(e);
    room[r] -= n;
  }
  return rows;
}

std::vector<std::vector<std::vector<int64_t>>> rank_packed_micro_batches(
    const SftData& data, const std::vector<int64_t>& global, int64_t micro_batch, int64_t max_len,
    int rank, int world) {
  if (micro_batch <= 0) fail("micro batch must be positive (got {})", micro_batch);
  std::vector<int64_t> mine;
  for (std::size_t i = static_cast<std::size_t>(rank); i < global.size();
       i += static_cast<std::size_t>(world))
    mine.push_back(global[i]);
  std::vector<std::vector<int64_t>> rows = pack_rows(data, mine, max_len);
  std::vector<std::vector<std::vector<int64_t>>> out;
  for (std::size_t s = 0; s < rows.size(); s += static_cast<std::size_t>(micro_batch))
    out.emplace_back(rows.begin() + static_cast<std::ptrdiff_t>(s),
                     rows.begin() + static_cast<std::ptrdiff_t>(std::min(
                                        rows.size(), s + static_cast<std::size_t>(micro_batch))));
  return out;
}

int64_t global_micro_batch_count(const SftData& data, const std::vector<int64_t>& global,
                                 int64_t micro_batch, bool packing, int64_t max_len, int world) {
  if (micro_batch <= 0) fail("micro batch must be positive (got {})", micro_batch);
  if (!packing) {
    const auto n = static_cast<int64_t>(global.size());
    return (n + micro_batch - 1) / micro_batch;
  }
  int64_t count = 0;
  for (int r = 0; r < world; ++r)
    count += static_cast<int64_t>(
        rank_packed_micro_batches(data, global, micro_batch, max_len, r, world).size());
  return count;
}

}  // namespace metamath::train
