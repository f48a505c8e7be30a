#include "eval/provenance.h"

#include "core/log.h"
#include "core/sha256.h"
#include "core/text.h"

namespace metamath::eval {
namespace fs = std::filesystem;

json find_training_record(const fs::path& model_dir) {
  // The file name is train/run_record.h's training_record_path (eval does not link train).
  std::vector<fs::path> candidates = {model_dir / "train_run.json"};
  if (text::starts_with(model_dir.filename().string(), "checkpoint-"))
    candidates.push_back(model_dir.parent_path() / "train_run.json");
  for (const fs::path& f : candidates) {
    std::error_code ec;
    if (!fs::is_regular_file(f, ec)) continue;
    try {
      return read_json_file(f);
    } catch (const std::exception& e) {
      log::warn("{}: not recorded in the eval run ({})", f.string(), e.what());
    }
  }
  return nullptr;
}

json backend_provenance(const llm::BackendOptions& o) {
  json b = {{"kind", o.kind}, {"model", o.model}};
  json p = {{"version", "0.1.0"}};
  if (o.kind == "openai") {
    b["base_url"] = o.base_url;
    b["chat"] = o.chat;
    p["backend"] = b;
    return p;
  }
  const fs::path dir = fs::absolute(o.model).lexically_normal();
  b["model_dir"] = dir.string();
  b["dtype"] = o.dtype;
  b["device"] = o.device;
  p["backend"] = b;
  json training = find_training_record(dir);
  if (!training.is_null()) p["training"] = training;
  return p;
}

json data_file_provenance(const fs::path& file) {
  json p = {{"path", fs::absolute(file).lexically_normal().string()}};
  std::error_code ec;
  if (fs::is_regular_file(file, ec)) {
    p["sha256"] = sha256_file(file);
    p["bytes"] = fs::file_size(file);
  }
  return p;
}

}  // namespace metamath::eval
