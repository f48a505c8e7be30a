#pragma once
// Prompt templates. The Alpaca templates are MetaMath's training and evaluation prompts
// (DESIGN.md).
//
// Training prompt, two styles (`metamath train --prompt-style`, also used by `metamath ppl`):
//   official  MetaMath's train_math.py: the query is cut at its first "\n"; the part before is the
//             instruction, everything after it (kept byte for byte, nothing stripped) is the
//             input. A non-empty input gives Alpaca's prompt *with input*
//               kAlpacaInputPreamble "### Instruction:\n{first line}\n\n### Input:\n{rest}\n\n
//               ### Response:"
//             and an empty one (a one-line query, or one whose only "\n" is the last character,
//             which is then dropped) the prompt without input, as `plain` below with the first
//             line as the instruction.
//   plain     the whole query as the instruction: kAlpacaPreamble "### Instruction:\n{query}\n\n
//             ### Response:" (the prompt the paper prints; what this project used before).
// Evaluation prompt: the plain training prompt followed by " Let's think step by step." (the
// official eval scripts and the paper put the whole question in the instruction).
#include <string>
#include <string_view>

namespace metamath::data {

inline constexpr std::string_view kAlpacaPreamble =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n";
inline constexpr std::string_view kAlpacaInputPreamble =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n";
inline constexpr std::string_view kAlpacaInstruction = "### Instruction:\n";
inline constexpr std::string_view kAlpacaInput = "\n\n### Input:\n";
inline constexpr std::string_view kAlpacaResponse = "\n\n### Response:";
inline constexpr std::string_view kStepByStep = " Let's think step by step.";

enum class PromptStyle { Official, Plain };
// "official" or "plain"; anything else is an error naming both.
PromptStyle parse_prompt_style(std::string_view name);
std::string_view prompt_style_name(PromptStyle style);

// The plain training prompt: "...### Instruction:\n{query}\n\n### Response:".
std::string alpaca_prompt(std::string_view query);
// The training prompt of a query in the given style (see the header comment).
std::string training_prompt(std::string_view query, PromptStyle style);
// Evaluation prompt: the plain training prompt followed by " Let's think step by step."
std::string alpaca_eval_prompt(std::string_view query);
// Replaces every "{name}" in tmpl with the value; unknown placeholders are an error naming them.
std::string fill_template(
    std::string_view tmpl,
    std::initializer_list<std::pair<std::string_view, std::string_view>> vars);

}  // namespace metamath::data
