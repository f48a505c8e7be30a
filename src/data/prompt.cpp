#include "data/prompt.h"

#include "core/error.h"

namespace metamath::data {

std::string alpaca_prompt(std::string_view query) {
  std::string s(kAlpacaPrefix);
  s += query;
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
