#include "bootstrap/metamathqa.h"

#include <fmt/format.h>

#include "bootstrap/mask.h"
#include "core/text.h"

namespace metamath::bootstrap {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// How often `value` (a plain number) occurs in s: as a written number ("1,200", "2.50", ".5")
// or as one of MetaMath's number words ("two").
std::size_t count_value(std::string_view s, std::string_view value) {
  std::size_t n = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    if (is_alpha(s[i])) {
      std::size_t j = i;
      while (j < s.size() && is_alpha(s[j])) ++j;
      std::string w = text::to_lower(s.substr(i, j - i));
      if (number_word_value(w) == value) ++n;
      i = j;
      continue;
    }
    bool lead_dot =
        s[i] == '.' && i + 1 < s.size() && is_digit(s[i + 1]) && (i == 0 || !is_digit(s[i - 1]));
    if (!is_digit(s[i]) && !lead_dot) {
      ++i;
      continue;
    }
    std::size_t j = lead_dot ? i + 1 : i;
    while (j < s.size() && (is_digit(s[j]) || ((s[j] == ',' || s[j] == '.') && j + 1 < s.size() &&
                                               is_digit(s[j + 1]))))
      ++j;
    if (plain_number(s.substr(i, j - i)) == value) ++n;
    i = j;
  }
  return n;
}

}  // namespace

std::string fobar_query(std::string_view masked_question, std::string_view answer,
                        answer::Style style) {
  return fmt::format(
      "{}\nIf we know the answer to the above question is {}, what is the value of unknown "
      "variable {}?",
      text::trim(masked_question), answer, unknown_name(style));
}

SvParts sv_split(std::string_view masked_question, answer::Style style) {
  std::size_t at = final_sentence_start(masked_question, style);
  SvParts p;
  p.kept = std::string(masked_question.substr(0, at));
  p.final = std::string(text::trim(masked_question.substr(at)));
  return p;
}

std::string sv_check(const SvParts& parts, std::string_view statement,
                     std::string_view masked_value, std::string_view answer, answer::Style style) {
  std::string_view s = text::trim(statement);
  if (s.empty()) return kSvEmpty;
  if (s.back() == '?') return kSvAsks;
  if (uses_unknown(parts.final, style) && !uses_unknown(s, style)) return kSvDropsUnknown;
  std::string value = plain_number(masked_value);
  std::size_t allowed = count_value(parts.final, value) + count_value(answer, value);
  if (count_value(s, value) > allowed) return kSvStatesValue;
  return "";
}

std::string sv_query(const SvParts& parts, std::string_view statement, answer::Style style) {
  std::string s(text::trim(statement));
  if (!s.empty() && s.back() != '.' && s.back() != '!') s += '.';
  return fmt::format("{}{} What is the value of unknown variable {}?", parts.kept, s,
                     unknown_name(style));
}

std::string metamathqa_response(std::string_view reasoning, std::string_view answer,
                                answer::Style style) {
  std::string_view r = text::trim(reasoning);
  if (style == answer::Style::Gsm8k) {
    std::size_t nl = r.rfind('\n');
    std::string_view last = nl == std::string_view::npos ? r : r.substr(nl + 1);
    if (text::starts_with(text::trim(last), "####"))
      r = text::trim(nl == std::string_view::npos ? std::string_view() : r.substr(0, nl));
  }
  std::string out(r);
  if (!out.empty()) out += '\n';
  if (style == answer::Style::Gsm8k) out += fmt::format("#### {}\n", answer);
  out += fmt::format("The answer is: {}", answer);
  return out;
}

}  // namespace metamath::bootstrap
