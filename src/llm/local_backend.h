#pragma once
// The local backend: a model folder loaded in-process (src/model), every request of every caller
// continuously batched by one BatchEngine. Chat requests go through the tokenizer's chat format;
// raw prompts get BOS when the tokenizer asks for it. embed() returns the mean of the final-norm
// hidden states over each text's tokens (not normalised).
#include <cstdint>
#include <memory>

#include "llm/backend.h"

namespace metamath::model {
class Model;
class Tokenizer;
}  // namespace metamath::model

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

// LocalBackend::embed over a loaded model (no generation engine needed): for each text, encoded
// with BOS when the tokenizer adds one, the mean of the final-norm hidden states over its tokens
// (float32, not normalised), 16 texts per forward pass. Throws naming the input when a text is
// empty or longer than max_len tokens. Adds the tokens read to *tokens when given.
std::vector<std::vector<float>> mean_pooled_embeddings(const model::Model& model,
                                                       const model::Tokenizer& tok,
                                                       const std::vector<std::string>& texts,
                                                       int max_len, uint64_t* tokens = nullptr);

}  // namespace metamath::llm
