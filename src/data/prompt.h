#pragma once
// Prompt templates. The Alpaca template is MetaMath's training and evaluation prompt (DESIGN.md).
#include <string>
#include <string_view>

namespace metamath::data {

inline constexpr std::string_view kAlpacaPrefix =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n";
inline constexpr std::string_view kAlpacaResponse = "\n\n### Response:";
inline constexpr std::string_view kStepByStep = " Let's think step by step.";

// Training prompt: "...### Instruction:\n{query}\n\n### Response:".
std::string alpaca_prompt(std::string_view query);
// Evaluation prompt: the training prompt followed by " Let's think step by step."
std::string alpaca_eval_prompt(std::string_view query);
// Replaces every "{name}" in tmpl with the value; unknown placeholders are an error naming them.
std::string fill_template(
    std::string_view tmpl,
    std::initializer_list<std::pair<std::string_view, std::string_view>> vars);

}  // namespace metamath::data
