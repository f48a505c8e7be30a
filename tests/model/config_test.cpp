#include "model/config.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/model.h"
#include "test_util.h"

namespace mm = metamath::model;
using metamath::json;
using ::testing::HasSubstr;

namespace {

json llama2_json() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "rope_scaling": null, "attention_bias": false, "tie_word_embeddings": false,
    "hidden_act": "silu", "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2})");
}

using metamath::testing::error_of;

}  // namespace

TEST(ModelConfig, ParsesLlama2) {
  mm::ModelConfig c = mm::parse_config(llama2_json(), "config.json");
  EXPECT_EQ(c.arch, mm::Arch::Llama);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.torch_dtype, "float16");
  EXPECT_EQ(c.bos_token_id.value(), 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_TRUE(c.rope_scaling.type.empty());
  // LLaMA-2-7B has 6.74B parameters.
  EXPECT_EQ(c.num_parameters(), 6738415616);
}

TEST(ModelConfig, ParsesLlama3WithRopeScalingAndEosList) {
  json j = llama2_json();
  j["vocab_size"] = 128256;
  j["intermediate_size"] = 14336;
  j["num_key_value_heads"] = 8;
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192},
                       {"rope_type", "llama3"}};
  j["eos_token_id"] = {128001, 128008, 128009};
  j["torch_dtype"] = "bfloat16";
  mm::ModelConfig c = mm::parse_config(j, "config.json");
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  // LLaMA-3.1-8B: 8.03B parameters.
  EXPECT_EQ(c.num_parameters(), 8030261248);
  // Legacy key "type" is accepted too.
  j["rope_scaling"].erase("rope_type");
  j["rope_scaling"]["type"] = "llama3";
  EXPECT_EQ(mm::parse_config(j, "c").rope_scaling.type, "llama3");
}

TEST(ModelConfig, ParsesQwen2AndMistral) {
  json q = json::parse(R"({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936,
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "tie_word_embeddings": true, "use_sliding_window": false,
    "sliding_window": 131072, "max_window_layers": 21, "torch_dtype": "bfloat16",
    "bos_token_id": 151643, "eos_token_id": 151643})");
  mm::ModelConfig c = mm::parse_config(q, "qwen.json");
  EXPECT_EQ(c.arch, mm::Arch::Qwen2);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.sliding_window.has_value());  // use_sliding_window false
  EXPECT_EQ(c.head_dim, 64);
  // Qwen2-0.5B: 494M parameters (q/k/v bias, tied embeddings).
  EXPECT_EQ(c.num_parameters(), 494032768);

  json m = json::parse(R"({"architectures": ["MistralForCausalLM"], "vocab_size": 32000,
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "sliding_window": 4096,
    "rope_theta": 10000.0, "rms_norm_eps": 1e-05})");
  mm::ModelConfig mc = mm::parse_config(m, "mistral.json");
  EXPECT_EQ(mc.arch, mm::Arch::Mistral);
  EXPECT_EQ(mc.sliding_window.value(), 4096);
  EXPECT_TRUE(mc.layer_uses_sliding_window(0));
  EXPECT_EQ(mc.num_parameters(), 7241732096);  // Mistral-7B
}

TEST(ModelConfig, ExplicitHeadDim) {
  json j = llama2_json();
  j["head_dim"] = 64;
  EXPECT_EQ(mm::parse_config(j, "c").head_dim, 64);
}

TEST(ModelConfig, ClearErrors) {
  json j = llama2_json();
  j["architectures"] = {"GPTNeoXForCausalLM"};
  EXPECT_THAT(error_of([&] { mm::parse_config(j, "/x/config.json"); }),
              AllOf(HasSubstr("/x/config.json"), HasSubstr("GPTNeoXForCausalLM"),
                    HasSubstr("LlamaForCausalLM")));
  j = llama2_json();
  j.erase("hidden_size");
  EXPECT_THAT(error_of([&] { mm::parse_config(j, "/x/config.json"); }),
              AllOf(HasSubstr("/x/config.json"), HasSubstr("hidden_size")));
  j = llama2_json();
  j["num_key_value_heads"] = 5;
  EXPECT_THAT(error_of([&] { mm::parse_config(j, "c.json"); }), HasSubstr("num_key_value_heads"));
  j = llama2_json();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_THAT(error_of([&] { mm::parse_config(j, "c.json"); }), HasSubstr("yarn"));
  j = llama2_json();
  j["hidden_size"] = "big";
  EXPECT_THAT(error_of([&] { mm::parse_config(j, "c.json"); }),
              AllOf(HasSubstr("hidden_size"), HasSubstr("integer")));
  EXPECT_THAT(error_of([&] { mm::load_config("/nonexistent/model"); }), HasSubstr("config.json"));
}

TEST(ModelConfig, JsonRoundTripAndGenerationConfig) {
  json j = llama2_json();
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  mm::ModelConfig a = mm::parse_config(j, "c");
  mm::ModelConfig b = mm::parse_config(mm::to_json(a), "c2");
  EXPECT_EQ(mm::to_json(a), mm::to_json(b));
  EXPECT_EQ(b.rope_scaling.type, "llama3");

  auto dir = metamath::testing::temp_dir("config_gen");
  metamath::write_file_atomic(dir / "config.json", mm::to_json(a).dump());
  metamath::write_file_atomic(dir / "generation_config.json",
                              R"({"bos_token_id": 5, "eos_token_id": [6, 7], "pad_token_id": 0})");
  mm::ModelConfig c = mm::load_config(dir);
  EXPECT_EQ(c.bos_token_id.value(), 5);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(c.pad_token_id.value(), 0);
}

TEST(ModelConfig, Presets) {
  mm::ModelConfig t = mm::preset_config("tiny", mm::Arch::Llama, 32000);
  EXPECT_EQ(t.hidden_size, 64);
  EXPECT_EQ(t.num_hidden_layers, 2);
  EXPECT_EQ(t.num_key_value_heads, 2);
  mm::ModelConfig s = mm::preset_config("small", mm::Arch::Llama, 32000);
  EXPECT_GT(s.num_parameters(), 90'000'000);
  EXPECT_LT(s.num_parameters(), 130'000'000);
  EXPECT_THROW(mm::preset_config("huge", mm::Arch::Llama, 10), metamath::Error);
}

// The llama3 scaling, computed here by hand in double precision from its definition.
TEST(ModelConfig, Llama3RopeFrequencies) {
  mm::ModelConfig c = mm::preset_config("tiny", mm::Arch::Llama, 100);
  c.head_dim = 64;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  at::Tensor inv = mm::rope_inv_freq(c);
  ASSERT_EQ(inv.size(0), 32);
  int low = 0, mid = 0, high = 0;
  for (int i = 0; i < 32; ++i) {
    double f = 1.0 / std::pow(500000.0, 2.0 * i / 64.0);
    double wl = 2 * std::numbers::pi / f;
    double want;
    if (wl < 8192.0 / 4.0) {
      want = f;
      ++high;
    } else if (wl > 8192.0) {
      want = f / 8.0;
      ++low;
    } else {
      double s = (8192.0 / wl - 1.0) / (4.0 - 1.0);
      want = (1 - s) * f / 8.0 + s * f;
      ++mid;
    }
    // inv_freq is float32 (as in HF): the exponent 2i/d is rounded, then multiplied by
    // ln(theta) <= 13 in the power, so the result carries up to ~15 roundings (1e-6 relative).
    // 1e-5 relative; a value from the wrong band is off by 12% or more.
    EXPECT_NEAR(inv[i].item<double>(), want, want * 1e-5) << "i=" << i;
  }
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);
  EXPECT_GT(high, 0);
}
