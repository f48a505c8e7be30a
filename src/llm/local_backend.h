#pragma once
// The local backend: a model folder loaded in-process (src/model), every request of every caller
// continuously batched by one BatchEngine. Chat requests go through the tokenizer's chat format;
// raw prompts get BOS when the tokenizer asks for it. embed() returns the mean of the final-norm
// hidden states over each text's tokens (not normalised).
#include <memory>

#include "llm/backend.h"

namespace metamath::llm {

class LocalBackend : public Backend {
 public:
  explicit LocalBackend(const BackendOptions& opts);
  ~LocalBackend() override;
  void generate(const std::vector<Request>& requests, const ResultCallback& on_result) override;
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts) override;
  std::string model_name() const override;
  int context_length() const override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace metamath::llm
