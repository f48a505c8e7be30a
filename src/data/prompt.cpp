#include "data/prompt.h"

#include "core/error.h"

namespace metamath::data {

PromptStyle parse_prompt_style(std::string_view name) {
  if (name == "official") return PromptStyle::Official;
  if (name == "plain") return PromptStyle::Plain;
  fail("unknown prompt style '{}' (known: official, plain)", name);
}

std::string_view prompt_style_name(PromptStyle style) {
  return style == PromptStyle::Official ? "official" : "plain";
}

std::string alpaca_prompt(std::string_view query) {
  std::string s(kAlpacaPreamble);
  s += kAlpacaInstruction;
  s += query;
  s += kAlpacaResponse;
  return s;
}

std::string training_prompt(std::string_view query, PromptStyle style) {
  if (style == PromptStyle::Plain) return alpaca_prompt(query);
  const std::size_t nl = query.find('\n');
  if (nl == std::string_view::npos) return alpaca_prompt(query);
  const std::string_view instruction = query.substr(0, nl), input = query.substr(nl + 1);
  if (input.empty()) return alpaca_prompt(instruction);
  std::string s(kAlpacaInputPreamble);
  s += kAlpacaInstruction;
  s += instruction;
  s += kAlpacaInput;
  s += input;
  s += kAlpacaResponse;
  return s;
}

std::string alpaca_eval_prompt(std::string_view query) {
  return alpaca_prompt(query) + std::string(kStepByStep);
}

std::string fill_template(
    std::string_view tmpl,
    std::initializer_list<std::pair<std::string_view, std::string_view>> vars) {
  std::string out;
  std::size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl[i] == '{') {
      std::size_t close = tmpl.find('}', i);
      if (close != std::string_view::npos) {
        std::string_view name = tmpl.substr(i + 1, close - i - 1);
        bool is_name = !name.empty();
        for (char c : name)
          if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) is_name = false;
        if (is_name) {
          bool found = false;
          for (auto& [k, v] : vars)
            if (k == name) {
              out += v;
              found = true;
            }
          if (!found) fail("prompt template: unknown placeholder {{{}}}", name);
          i = close + 1;
          continue;
        }
      }
    }
    out.push_back(tmpl[i++]);
  }
  return out;
}

}  // namespace metamath::data
