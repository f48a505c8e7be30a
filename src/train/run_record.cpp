#include "train/run_record.h"

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/sha256.h"
#include "train/sft_data.h"
#include "train/trainer.h"

namespace metamath::train {
namespace fs = std::filesystem;

std::map<std::string, int64_t> count_record_types(const fs::path& file, int64_t limit,
                                                  bool skip_bad) {
  JsonlOptions jo;
  jo.skip_bad = skip_bad;
  JsonlReader reader(file, jo);
  std::map<std::string, int64_t> types;
  json rec;
  for (int64_t n = 0; (limit <= 0 || n < limit) && reader.next(rec); ++n) {
    auto it = rec.find("type");
    if (it != rec.end() && it->is_string()) ++types[it->get<std::string>()];
  }
  return types;
}

namespace {

std::string absolute_or_empty(const fs::path& p) {
  return p.empty() ? std::string() : fs::absolute(p).lexically_normal().string();
}

json recipe_json(const RecipeUse& r) {
  if (r.name.empty()) return nullptr;
  json applied = json::object();
  for (const auto& [flag, value] : r.applied) applied[flag] = value;
  return {{"name", r.name}, {"applied", applied}, {"overridden", r.overridden}};
}

// The settings key of a recipe flag: "--max-len" -> "max_len"; "--no-group-by-length" ->
// "group_by_length".
std::string settings_key(std::string flag) {
  if (flag == "--no-group-by-length") return "group_by_length";
  flag = flag.substr(flag.rfind('-', 1) + 1);
  for (char& c : flag)
    if (c == '-') c = '_';
  return flag;
}

}  // namespace

json train_settings(const TrainOptions& o) {
  json s = {{"lr", o.lr},
            {"epochs", o.epochs},
            {"max_steps", o.max_steps},
            {"global_batch", o.global_batch},
            {"micro_batch", o.micro_batch},
            {"max_len", o.max_len},
            {"warmup_ratio", o.warmup_ratio},
            {"weight_decay", o.weight_decay},
            {"max_grad_norm", o.max_grad_norm},
            {"adam_beta1", o.beta1},
            {"adam_beta2", o.beta2},
            {"adam_eps", o.eps},
            {"seed", o.seed},
            {"precision", o.bf16 ? "bf16" : "f32"},
            {"group_by_length", o.group_by_length},
            {"packing", o.packing},
            {"gradient_checkpointing", o.gradient_checkpointing},
            {"prompt_style", data::prompt_style_name(o.prompt_style)},
            {"loss_reduction", loss_reduction_name(o.reduction)},
            {"lora", o.lora}};
  if (o.lora) {
    s["lora_r"] = o.lora_config.r;
    s["lora_alpha"] = o.lora_config.alpha;
    s["lora_dropout"] = o.lora_config.dropout;
    s["lora_targets"] = o.lora_config.target_modules;
  }
  return s;
}

std::string describe_training_settings(const json& record) {
  const json& recipe = record.value("recipe", json());
  std::map<std::string, std::string> mark;
  std::string head = "train settings";
  if (recipe.is_object()) {
    const std::string name = recipe.at("name").get<std::string>();
    head += fmt::format(" (recipe {}; flags given on the command line override it)", name);
    for (const auto& [flag, value] : recipe.at("applied").items())
      mark[settings_key(flag)] = fmt::format("(recipe {})", name);
    for (const json& flag : recipe.at("overridden"))
      mark[settings_key(flag.get<std::string>())] = "(flag, over the recipe)";
  }
  head += ":";
  for (const auto& [key, value] : record.at("options").items()) {
    auto it = mark.find(key);
    head += fmt::format("\n  {:<24} {}{}", key, value.dump(),
                        it == mark.end() ? std::string() : "  " + it->second);
  }
  return head;
}

json training_record(const TrainOptions& o, const SftData& data, int world_size,
                     int64_t total_steps) {
  json d = {{"path", absolute_or_empty(o.data)},
            {"sha256", sha256_file(o.data)},
            {"bytes", fs::file_size(o.data)},
            {"records", data.records},
            {"examples", data.size()},
            {"truncated", data.truncated},
            {"dropped", data.dropped},
            {"types", count_record_types(o.data, o.limit, o.skip_bad)},
            {"query_field", o.query_field},
            {"response_field", o.response_field}};
  json m = {{"init", o.init},
            {"path", o.init == "pretrained" ? absolute_or_empty(o.model) : std::string()},
            {"config", o.init == "random" ? o.config : std::string()},
            {"arch", o.arch},
            {"tokenizer", absolute_or_empty(o.tokenizer.empty() ? o.model : o.tokenizer)},
            {"lora", o.lora}};
  if (o.lora) m["lora_r"] = o.lora_config.r;
  return json{{"kind", "metamath-train"},
              {"version", "0.1.0"},
              {"status", "running"},
              {"data", d},
              {"model", m},
              {"options", train_settings(o)},
              {"recipe", recipe_json(o.recipe)},
              {"backend", {{"kind", "libtorch"}, {"device", "cpu"}, {"world_size", world_size}}},
              {"steps", total_steps}};
}

fs::path training_record_path(const fs::path& out) { return out / "train_run.json"; }

void write_training_record(const fs::path& out, const json& record) {
  write_file_atomic(training_record_path(out), record.dump(2) + "\n");
}

}  // namespace metamath::train
