#include "model/lora.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/text.h"

namespace metamath::model {

namespace fs = std::filesystem;

namespace {

constexpr std::array<Proj, 7> kProjs = {Proj::Q,    Proj::K,  Proj::V,   Proj::O,
                                        Proj::Gate, Proj::Up, Proj::Down};

std::string module_path(int64_t layer, Proj p) {
  const bool attn = p == Proj::Q || p == Proj::K || p == Proj::V || p == Proj::O;
  return "base_model.model.model.layers." + std::to_string(layer) +
         (attn ? ".self_attn." : ".mlp.") + proj_module_name(p);
}

at::Tensor& weight_of(LayerWeights& L, Proj p) {
  switch (p) {
    case Proj::Q:
      return L.q_w;
    case Proj::K:
      return L.k_w;
    case Proj::V:
      return L.v_w;
    case Proj::O:
      return L.o_w;
    case Proj::Gate:
      return L.gate_w;
    case Proj::Up:
      return L.up_w;
    case Proj::Down:
      break;
  }
  return L.down_w;
}

bool targeted(const LoraConfig& c, Proj p) {
  for (auto& t : c.target_modules)
    if (t == proj_module_name(p)) return true;
  return false;
}

}  // namespace

std::string proj_module_name(Proj p) {
  static const char* names[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                "gate_proj", "up_proj", "down_proj"};
  return names[static_cast<int>(p)];
}

std::vector<std::string> parse_lora_targets(const std::string& spec) {
  std::vector<std::string> out;
  auto add = [&](const std::string& name) {
    for (auto& o : out)
      if (o == name) return;
    out.push_back(name);
  };
  for (auto part : text::split(spec, ',')) {
    std::string s(text::trim(part));
    if (s.empty()) continue;
    if (s == "all" || s == "all-linear") {
      for (Proj p : kProjs) add(proj_module_name(p));
      continue;
    }
    if (!text::ends_with(s, "_proj")) s += "_proj";
    bool ok = false;
    for (Proj p : kProjs) ok = ok || proj_module_name(p) == s;
    if (!ok)
      fail("unknown LoRA target module '{}': expected q, k, v, o, gate, up, down (or all)", part);
    add(s);
  }
  if (out.empty()) fail("no LoRA target modules given");
  return out;
}

LoraAdapter LoraAdapter::init(const Model& model, const LoraConfig& cfg, uint64_t seed) {
  if (cfg.r <= 0) fail("LoRA rank must be positive (got {})", cfg.r);
  if (cfg.dropout < 0 || cfg.dropout >= 1) fail("LoRA dropout must be in [0, 1)");
  parse_lora_targets(fmt::format("{}", fmt::join(cfg.target_modules, ",")));
  LoraAdapter a;
  a.cfg_ = cfg;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto& layers = const_cast<Model&>(model).layers;
  a.w_.resize(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    for (Proj p : kProjs) {
      if (!targeted(cfg, p)) continue;
      const at::Tensor& w = weight_of(layers[l], p);
      const int64_t out = w.size(0), in = w.size(1);
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      Pair& pr = a.w_[l][static_cast<int>(p)];
      pr.a = at::empty({cfg.r, in}, at::kFloat).uniform_(-bound, bound, gen).to(model.device());
      pr.b = at::zeros({out, cfg.r}, at::TensorOptions().dtype(at::kFloat).device(model.device()));
    }
  }
  return a;
}

NamedTensors LoraAdapter::named_parameters() const {
  NamedTensors out;
  for (std::size_t l = 0; l < w_.size(); ++l)
    for (Proj p : kProjs) {
      const Pair& pr = w_[l][static_cast<int>(p)];
      if (!pr.a.defined()) continue;
      const std::string m = module_path(static_cast<int64_t>(l), p);
      out.emplace_back(m + ".lora_A.weight", pr.a);
      out.emplace_back(m + ".lora_B.weight", pr.b);
    }
  return out;
}

at::Tensor LoraAdapter::delta(int64_t layer, Proj p, const at::Tensor& x) const {
  const Pair& pr = w_[layer][static_cast<int>(p)];
  if (!pr.a.defined()) return {};
  at::Tensor in = x.scalar_type() == pr.a.scalar_type() ? x : x.to(pr.a.scalar_type());
  if (training_ && cfg_.dropout > 0) in = at::dropout(in, cfg_.dropout, /*train=*/true);
  at::Tensor y = at::linear(at::linear(in, pr.a), pr.b) * cfg_.scale();
  return y.scalar_type() == x.scalar_type() ? y : y.to(x.scalar_type());
}

void LoraAdapter::save(const fs::path& dir, const std::string& base_model) const {
  fs::create_directories(dir);
  json c = {{"peft_type", "LORA"},
            {"task_type", "CAUSAL_LM"},
            {"r", cfg_.r},
            {"lora_alpha", cfg_.alpha},
            {"lora_dropout", cfg_.dropout},
            {"target_modules", cfg_.target_modules},
            {"bias", "none"},
            {"fan_in_fan_out", false},
            {"inference_mode", true},
            {"init_lora_weights", true},
            {"modules_to_save", nullptr},
            {"base_model_name_or_path", base_model}};
  save_safetensors(dir / "adapter_model.safetensors", named_parameters());
  write_file_atomic(dir / "adapter_config.json", c.dump(2) + "\n");
}

LoraAdapter LoraAdapter::load(const fs::path& dir, const Model& model) {
  const fs::path cfg_file = dir / "adapter_config.json";
  json j;
  try {
    j = json::parse(read_file(cfg_file));
  } catch (const json::parse_error& e) {
    fail("{}: malformed JSON ({})", cfg_file.string(), e.what());
  }
  const std::string where = cfg_file.string();
  if (j.value("peft_type", "") != "LORA")
    fail("{}: peft_type must be \"LORA\" (got {})", where,
         j.value("peft_type", std::string("none")));
  if (j.value("fan_in_fan_out", false))
    fail("{}: fan_in_fan_out adapters are not supported", where);
  LoraConfig cfg;
  cfg.r = require_field(j, "r", where).get<int64_t>();
  cfg.alpha = require_field(j, "lora_alpha", where).get<double>();
  cfg.dropout = j.value("lora_dropout", 0.0);
  const json& tm = require_field(j, "target_modules", where);
  std::string spec;
  if (tm.is_string()) {
    spec = tm.get<std::string>();
  } else {
    for (auto& t : tm) spec += t.get<std::string>() + ",";
  }
  cfg.target_modules = parse_lora_targets(spec);
  LoraAdapter a = init(model, cfg, 0);
  auto file = SafetensorsFile::open(dir / "adapter_model.safetensors");
  at::NoGradGuard no_grad;
  for (auto& [name, t] : a.named_parameters()) {
    // PEFT may store "...lora_A.default.weight" in some versions; accept both.
    std::string n = name;
    if (!file->contains(n)) {
      std::string alt = text::replace_all(n, ".lora_A.weight", ".lora_A.default.weight");
      alt = text::replace_all(alt, ".lora_B.weight", ".lora_B.default.weight");
      if (file->contains(alt)) n = alt;
    }
    if (!file->contains(n)) fail("{}: missing adapter tensor '{}'", file->path().string(), name);
    at::Tensor src = file->get(n);
    if (src.sizes() != t.sizes())
      fail("{}: adapter tensor '{}' has the wrong shape for this model and rank {}",
           file->path().string(), name, cfg.r);
    t.copy_(src);
  }
  return a;
}

void LoraAdapter::merge_into(Model& model) const {
  at::NoGradGuard no_grad;
  if (model.layers.size() != w_.size()) fail("merge-lora: the model's layer count differs");
  for (std::size_t l = 0; l < w_.size(); ++l)
    for (Proj p : kProjs) {
      const Pair& pr = w_[l][static_cast<int>(p)];
      if (!pr.a.defined()) continue;
      at::Tensor& w = weight_of(model.layers[l], p);
      at::Tensor d = at::matmul(pr.b.to(at::kFloat), pr.a.to(at::kFloat)) * cfg_.scale();
      if (d.sizes() != w.sizes()) fail("merge-lora: adapter shape differs from the model's weight");
      // Fresh storage: the weight may alias a read-only mapped checkpoint.
      w = (w.to(at::kFloat) + d.to(w.device())).to(w.scalar_type());
    }
}

LoraConfig merge_lora(const MergeLoraOptions& o) {
  Model m = Model::load(o.base, at::kFloat);
  const LoraAdapter lora = LoraAdapter::load(o.adapter, m);
  lora.merge_into(m);
  const std::filesystem::path tok = o.tokenizer.empty() ? o.base : o.tokenizer;
  m.save(o.out, tok);
  // bf16: re-read the merged f32 folder as bf16 and store that.
  if (o.bf16) Model::load(o.out, at::kBFloat16).save(o.out, tok);
  return lora.config();
}

}  // namespace metamath::model
