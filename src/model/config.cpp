#include "model/config.h"

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace metamath::model {

namespace fs = std::filesystem;

Arch parse_arch(std::string_view name) {
  if (name == "llama" || name == "LlamaForCausalLM") return Arch::Llama;
  if (name == "mistral" || name == "MistralForCausalLM") return Arch::Mistral;
  if (name == "qwen2" || name == "Qwen2ForCausalLM") return Arch::Qwen2;
  fail(
      "unknown model architecture '{}': expected llama, mistral or qwen2 (LlamaForCausalLM, "
      "MistralForCausalLM, Qwen2ForCausalLM)",
      name);
}

std::string arch_name(Arch a) {
  switch (a) {
    case Arch::Llama:
      return "llama";
    case Arch::Mistral:
      return "mistral";
    case Arch::Qwen2:
      return "qwen2";
  }
  return "llama";
}

std::string arch_architecture(Arch a) {
  switch (a) {
    case Arch::Llama:
      return "LlamaForCausalLM";
    case Arch::Mistral:
      return "MistralForCausalLM";
    case Arch::Qwen2:
      return "Qwen2ForCausalLM";
  }
  return "LlamaForCausalLM";
}

namespace {

const char* type_name(const json& v) { return v.type_name(); }

int64_t get_int(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) fail("{}: missing field '{}' (an integer)", where, key);
  if (!it->is_number_integer())
    fail("{}: field '{}' must be an integer, got {}", where, key, type_name(*it));
  return it->get<int64_t>();
}

int64_t get_int_or(const json& j, const char* key, int64_t def, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number_integer())
    fail("{}: field '{}' must be an integer, got {}", where, key, type_name(*it));
  return it->get<int64_t>();
}

double get_double_or(const json& j, const char* key, double def, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) fail("{}: field '{}' must be a number, got {}", where, key, type_name(*it));
  return it->get<double>();
}

bool get_bool_or(const json& j, const char* key, bool def, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean())
    fail("{}: field '{}' must be true or false, got {}", where, key, type_name(*it));
  return it->get<bool>();
}

std::optional<int64_t> get_opt_int(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_array()) {  // some configs give a list for bos/pad; take the first
    if (it->empty()) return std::nullopt;
    if (!(*it)[0].is_number_integer()) fail("{}: field '{}' must hold integers", where, key);
    return (*it)[0].get<int64_t>();
  }
  if (!it->is_number_integer())
    fail("{}: field '{}' must be an integer, got {}", where, key, type_name(*it));
  return it->get<int64_t>();
}

std::vector<int64_t> get_int_list(const json& j, const char* key, const std::string& where) {
  std::vector<int64_t> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (it->is_number_integer()) {
    out.push_back(it->get<int64_t>());
  } else if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_number_integer())
        fail("{}: field '{}' must be an integer or a list of integers", where, key);
      out.push_back(v.get<int64_t>());
    }
  } else {
    fail("{}: field '{}' must be an integer or a list of integers, got {}", where, key,
         type_name(*it));
  }
  return out;
}

void apply_generation_ids(ModelConfig& c, const json& g, const std::string& where) {
  if (auto b = get_opt_int(g, "bos_token_id", where)) c.bos_token_id = b;
  auto eos = get_int_list(g, "eos_token_id", where);
  if (!eos.empty()) c.eos_token_ids = eos;
  if (auto p = get_opt_int(g, "pad_token_id", where)) c.pad_token_id = p;
}

}  // namespace

bool ModelConfig::layer_uses_sliding_window(int64_t layer) const {
  if (!sliding_window) return false;
  if (arch == Arch::Qwen2) return layer >= max_window_layers;
  return true;
}

void ModelConfig::validate(const std::string& where) const {
  auto positive = [&](const char* name, int64_t v) {
    if (v <= 0) fail("{}: '{}' must be positive, got {}", where, name, v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("max_position_embeddings", max_position_embeddings);
  if (head_dim % 2 != 0)
    fail("{}: head_dim must be even for rotary embeddings, got {}", where, head_dim);
  if (num_attention_heads % num_key_value_heads != 0)
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", where,
         num_attention_heads, num_key_value_heads);
  if (hidden_act != "silu" && hidden_act != "swish")
    fail("{}: hidden_act '{}' is not supported (only silu)", where, hidden_act);
  if (torch_dtype != "float32" && torch_dtype != "bfloat16" && torch_dtype != "float16")
    fail("{}: torch_dtype '{}' is not supported (float32, bfloat16 or float16)", where,
         torch_dtype);
  if (sliding_window && *sliding_window <= 0)
    fail("{}: sliding_window must be positive, got {}", where, *sliding_window);
  if (rms_norm_eps <= 0) fail("{}: rms_norm_eps must be positive", where);
  if (rope_theta <= 0) fail("{}: rope_theta must be positive", where);
  if (!rope_scaling.type.empty() && rope_scaling.factor <= 0)
    fail("{}: rope_scaling.factor must be positive", where);
  if (rope_scaling.type == "llama3" &&
      rope_scaling.high_freq_factor <= rope_scaling.low_freq_factor)
    fail("{}: rope_scaling.high_freq_factor must exceed low_freq_factor", where);
}

int64_t ModelConfig::num_parameters() const {
  const int64_t h = hidden_size, q = num_attention_heads * head_dim,
                kv = num_key_value_heads * head_dim;
  int64_t attn = h * q + 2 * h * kv + q * h;
  if (attention_bias || arch == Arch::Qwen2) attn += q + 2 * kv;
  if (attention_bias && arch != Arch::Qwen2) attn += h;
  int64_t mlp = 3 * h * intermediate_size;
  if (mlp_bias) mlp += 2 * intermediate_size + h;
  int64_t layer = attn + mlp + 2 * h;
  int64_t total = vocab_size * h + num_hidden_layers * layer + h;
  if (!tie_word_embeddings) total += vocab_size * h;
  return total;
}

ModelConfig parse_config(const json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: config must be a JSON object", where);
  ModelConfig c;
  std::string architecture;
  if (auto it = j.find("architectures");
      it != j.end() && it->is_array() && !it->empty() && (*it)[0].is_string()) {
    architecture = (*it)[0].get<std::string>();
  } else if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string()) {
    architecture = mt->get<std::string>();
  } else {
    fail("{}: no 'architectures' list or 'model_type': cannot tell the model architecture", where);
  }
  try {
    c.arch = parse_arch(architecture);
  } catch (const Error& e) {
    fail("{}: {}", where, e.what());
  }
  c.vocab_size = get_int(j, "vocab_size", where);
  c.hidden_size = get_int(j, "hidden_size", where);
  c.intermediate_size = get_int(j, "intermediate_size", where);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", where);
  c.num_attention_heads = get_int(j, "num_attention_heads", where);
  c.num_key_value_heads = get_int_or(j, "num_key_value_heads", c.num_attention_heads, where);
  c.head_dim = get_int_or(j, "head_dim", 0, where);
  if (c.head_dim == 0) {
    if (c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0)
      fail(
          "{}: hidden_size ({}) is not a multiple of num_attention_heads ({}) and no head_dim is "
          "given",
          where, c.hidden_size, c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.max_position_embeddings = get_int_or(j, "max_position_embeddings", 2048, where);
  c.rms_norm_eps = get_double_or(j, "rms_norm_eps", 1e-6, where);
  c.rope_theta = get_double_or(j, "rope_theta", 10000.0, where);
  if (auto rp = j.find("rope_parameters");
      rp != j.end() && rp->is_object() && !j.contains("rope_theta"))
    c.rope_theta = get_double_or(*rp, "rope_theta", c.rope_theta, where);
  c.attention_bias = get_bool_or(j, "attention_bias", false, where);
  c.mlp_bias = get_bool_or(j, "mlp_bias", false, where);
  c.tie_word_embeddings = get_bool_or(j, "tie_word_embeddings", false, where);
  if (auto it = j.find("hidden_act"); it != j.end() && it->is_string())
    c.hidden_act = it->get<std::string>();
  c.initializer_range = get_double_or(j, "initializer_range", 0.02, where);
  if (auto it = j.find("torch_dtype"); it != j.end() && it->is_string()) {
    c.torch_dtype = it->get<std::string>();
  } else if (auto d = j.find("dtype"); d != j.end() && d->is_string()) {
    c.torch_dtype = d->get<std::string>();
  }
  if (c.torch_dtype == "float" || c.torch_dtype == "fp32") c.torch_dtype = "float32";
  if (c.torch_dtype == "bf16") c.torch_dtype = "bfloat16";
  if (c.torch_dtype == "half" || c.torch_dtype == "fp16") c.torch_dtype = "float16";

  // rope_scaling (null, or {rope_type|type, factor, ...}).
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) fail("{}: 'rope_scaling' must be an object or null", where);
    std::string type;
    if (auto t = it->find("rope_type"); t != it->end() && t->is_string())
      type = t->get<std::string>();
    else if (auto t2 = it->find("type"); t2 != it->end() && t2->is_string())
      type = t2->get<std::string>();
    const std::string w = where + " rope_scaling";
    if (type == "default" || type.empty()) {
      type.clear();
    } else if (type == "linear") {
      c.rope_scaling.factor = get_double_or(*it, "factor", 1.0, w);
    } else if (type == "llama3") {
      c.rope_scaling.factor = get_double_or(*it, "factor", 8.0, w);
      c.rope_scaling.low_freq_factor = get_double_or(*it, "low_freq_factor", 1.0, w);
      c.rope_scaling.high_freq_factor = get_double_or(*it, "high_freq_factor", 4.0, w);
      c.rope_scaling.original_max_position_embeddings =
          get_int_or(*it, "original_max_position_embeddings", 8192, w);
    } else {
      fail("{}: rope scaling type '{}' is not supported (supported: linear, llama3)", where, type);
    }
    c.rope_scaling.type = type;
  }

  // Sliding window.
  if (c.arch == Arch::Mistral) {
    if (auto sw = get_opt_int(j, "sliding_window", where)) c.sliding_window = sw;
  } else if (c.arch == Arch::Qwen2) {
    if (get_bool_or(j, "use_sliding_window", false, where)) {
      c.sliding_window = get_opt_int(j, "sliding_window", where);
      c.max_window_layers = get_int_or(j, "max_window_layers", 0, where);
    }
  }

  c.bos_token_id = get_opt_int(j, "bos_token_id", where);
  c.eos_token_ids = get_int_list(j, "eos_token_id", where);
  c.pad_token_id = get_opt_int(j, "pad_token_id", where);
  c.validate(where);
  return c;
}

ModelConfig load_config(const fs::path& dir_or_file) {
  fs::path file = dir_or_file;
  if (fs::is_directory(file)) file /= "config.json";
  if (!fs::exists(file))
    fail("{}: no such file (a Hugging Face model folder needs config.json)", file.string());
  json j;
  try {
    j = json::parse(read_file(file));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", file.string(), e.what());
  }
  ModelConfig c = parse_config(j, file.string());
  fs::path gen = file.parent_path() / "generation_config.json";
  if (fs::exists(gen)) {
    json g;
    try {
      g = json::parse(read_file(gen));
    } catch (const json::exception& e) {
      fail("{}: invalid JSON: {}", gen.string(), e.what());
    }
    if (!g.is_object()) fail("{}: must be a JSON object", gen.string());
    apply_generation_ids(c, g, gen.string());
  }
  return c;
}

json to_json(const ModelConfig& c) {
  json j;
  j["architectures"] = json::array({arch_architecture(c.arch)});
  j["model_type"] = arch_name(c.arch);
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type.empty()) {
    j["rope_scaling"] = nullptr;
  } else if (c.rope_scaling.type == "linear") {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
  } else {
    j["rope_scaling"] = {
        {"rope_type", c.rope_scaling.type},
        {"factor", c.rope_scaling.factor},
        {"low_freq_factor", c.rope_scaling.low_freq_factor},
        {"high_freq_factor", c.rope_scaling.high_freq_factor},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  if (c.arch != Arch::Qwen2) {
    j["attention_bias"] = c.attention_bias;
  }
  if (c.arch == Arch::Llama) j["mlp_bias"] = c.mlp_bias;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = c.hidden_act;
  j["initializer_range"] = c.initializer_range;
  j["torch_dtype"] = c.torch_dtype;
  if (c.arch == Arch::Mistral) {
    j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr);
  } else if (c.arch == Arch::Qwen2) {
    j["use_sliding_window"] = c.sliding_window.has_value();
    j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr);
    j["max_window_layers"] = c.max_window_layers;
  }
  j["bos_token_id"] = c.bos_token_id ? json(*c.bos_token_id) : json(nullptr);
  if (c.eos_token_ids.size() == 1)
    j["eos_token_id"] = c.eos_token_ids[0];
  else if (c.eos_token_ids.empty())
    j["eos_token_id"] = nullptr;
  else
    j["eos_token_id"] = c.eos_token_ids;
  if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
  j["use_cache"] = true;
  return j;
}

json generation_config_json(const ModelConfig& c) {
  json g = json::object();
  if (c.bos_token_id) g["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1)
    g["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty())
    g["eos_token_id"] = c.eos_token_ids;
  if (c.pad_token_id) g["pad_token_id"] = *c.pad_token_id;
  return g;
}

ModelConfig preset_config(std::string_view name, Arch arch, int64_t vocab_size) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = vocab_size;
  if (name == "tiny") {
    c.hidden_size = 64;
    c.intermediate_size = 172;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 4096;
  } else if (name == "small") {
    c.hidden_size = 768;
    c.intermediate_size = 1536;
    c.num_hidden_layers = 12;
    c.num_attention_heads = 12;
    c.num_key_value_heads = 4;
    c.max_position_embeddings = 4096;
  } else {
    fail("unknown model preset '{}': expected tiny, small or a config.json path", name);
  }
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.rms_norm_eps = arch == Arch::Llama ? 1e-5 : 1e-6;
  c.rope_theta = arch == Arch::Qwen2 ? 1000000.0 : 10000.0;
  c.tie_word_embeddings = false;
  c.validate(fmt::format("preset {}", name));
  return c;
}

}  // namespace metamath::model
