#pragma once
// A tiny random LLaMA model folder with the real LLaMA-2 tokenizer (../shared/tokenizers/llama2)
// and a LLaMA-2 style chat template, made once per test process. Its text is gibberish; tests use
// it to compare backends and the server on identical greedy outputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "model/init.h"
#include "test_util.h"

namespace metamath::testing {

inline std::filesystem::path tiny_chat_model() {
  static const std::filesystem::path dir = [] {
    const auto d = temp_dir("tiny_chat_model");
    model::InitModelOptions o;
    o.config = "tiny";
    o.tokenizer = *llama2_tokenizer_dir();
    o.out = d;
    o.seed = 7;
    model::init_model(o);
    // Our own minimal LLaMA-2-style template (only its [INST] markers matter to apply_chat).
    std::ofstream(d / "tokenizer_config.json")
        << R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, )"
        << R"("chat_template": "{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token )"
        << R"(+ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ ' ' + m['content'] + ' ' + )"
        << R"(eos_token }}{% endif %}{% endfor %}"})";
    return d;
  }();
  return dir;
}

}  // namespace metamath::testing
