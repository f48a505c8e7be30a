#include "train/run_record.h"

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

}  // namespace

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
  json opts = {{"lr", o.lr},
               {"epochs", o.epochs},
               {"max_steps", o.max_steps},
               {"global_batch", o.global_batch},
               {"micro_batch", o.micro_batch},
               {"max_len", o.max_len},
               {"warmup_ratio", o.warmup_ratio},
               {"weight_decay", o.weight_decay},
               {"seed", o.seed},
               {"precision", o.bf16 ? "bf16" : "f32"},
               {"packing", o.packing}};
  return json{{"kind", "metamath-train"},
              {"version", "0.1.0"},
              {"status", "running"},
              {"data", d},
              {"model", m},
              {"options", opts},
              {"backend", {{"kind", "libtorch"}, {"device", "cpu"}, {"world_size", world_size}}},
              {"steps", total_steps}};
}

fs::path training_record_path(const fs::path& out) { return out / "train_run.json"; }

void write_training_record(const fs::path& out, const json& record) {
  write_file_atomic(training_record_path(out), record.dump(2) + "\n");
}

}  // namespace metamath::train
