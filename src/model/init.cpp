// init-model: a random HF-format model folder sized for a tokenizer.
#include "model/init.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace metamath::model {

namespace fs = std::filesystem;

TokenizerInfo tokenizer_info(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("{}: tokenizer folder does not exist", dir.string());
  std::unique_ptr<Tokenizer> tok = Tokenizer::load(dir);
  TokenizerInfo info;
  info.vocab_size = static_cast<int64_t>(tok->vocab_size());
  if (tok->bos_id()) info.bos_id = *tok->bos_id();
  if (tok->eos_id()) info.eos_id = *tok->eos_id();
  return info;
}

InitModelResult init_model(const InitModelOptions& o) {
  if (o.out.empty()) fail("init-model: --out is required");
  if (o.tokenizer.empty()) fail("init-model: --tokenizer is required");
  TokenizerInfo tok = tokenizer_info(o.tokenizer);
  ModelConfig c;
  if (o.config == "tiny" || o.config == "small") {
    c = preset_config(o.config, parse_arch(o.arch.empty() ? "llama" : o.arch), tok.vocab_size);
    if (c.arch == Arch::Qwen2) c.tie_word_embeddings = true;
  } else {
    c = load_config(fs::path(o.config));
    if (!o.arch.empty()) c.arch = parse_arch(o.arch);
    if (c.vocab_size < tok.vocab_size)
      fail("{}: vocab_size {} is smaller than the tokenizer's {} ({})", o.config, c.vocab_size,
           tok.vocab_size, o.tokenizer.string());
  }
  if (tok.bos_id) c.bos_token_id = tok.bos_id;
  if (tok.eos_id) c.eos_token_ids = {*tok.eos_id};
  at::ScalarType dt = parse_dtype(o.dtype);
  if (dt != at::kFloat && dt != at::kBFloat16)
    fail("init-model: --dtype must be f32 or bf16, got {}", o.dtype);
  c.torch_dtype = dt == at::kFloat ? "float32" : "bfloat16";
  c.validate(o.config);
  Model m = Model::init_random(c, o.seed, dt);
  m.save(o.out, o.tokenizer);
  InitModelResult r;
  r.config = c;
  r.num_parameters = c.num_parameters();
  for (const auto& e : fs::directory_iterator(o.out)) r.files.push_back(e.path());
  std::sort(r.files.begin(), r.files.end());
  return r;
}

}  // namespace metamath::model
