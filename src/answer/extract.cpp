#include "answer/extract.h"

#include <cctype>

#include "core/error.h"
#include "core/text.h"

namespace metamath::answer {

Style parse_style(std::string_view name) {
  std::string n = text::to_lower(name);
  if (n == "gsm8k" || n == "gsm" || n == "gsm8k_backward" || n == "svamp" || n == "asdiv")
    return Style::Gsm8k;
  if (n == "math" || n == "math500") return Style::Math;
  fail("unknown answer style \"{}\" (expected gsm8k or math)", name);
}

const char* method_name(Method m) {
  switch (m) {
    case Method::None:
      return "none";
    case Method::Hashes:
      return "hashes";
    case Method::AnswerIs:
      return "answer_is";
    case Method::Boxed:
      return "boxed";
    case Method::ValueOfX:
      return "value_of_x";
    case Method::LastNumber:
      return "last_number";
    case Method::Bare:
      return "bare";
  }
  return "none";
}

namespace {

// Cleans the tail of a marker: up to the end of the line, without a final period or "$...$".
std::string clean_tail(std::string_view s, bool stop_at_sentence) {
  s = text::trim(s);
  std::size_t nl = s.find('\n');
  if (nl != std::string_view::npos) s = s.substr(0, nl);
  if (stop_at_sentence) {
    std::size_t dot = s.find(". ");
    if (dot != std::string_view::npos) s = s.substr(0, dot);
  }
  s = text::trim(s);
  // A sentence's final period is not part of the answer ("18." -> "18").
  while (!s.empty() && (s.back() == '.' || s.back() == ' ')) s.remove_suffix(1);
  if (s.size() >= 2 && s.front() == '$' && s.back() == '$')
    s = text::trim(s.substr(1, s.size() - 2));
  std::string out(s);
  if (auto boxed = text::last_boxed(out)) return std::string(text::trim(*boxed));
  return out;
}

// Last occurrence of any needle (case-insensitive); returns the position just after it.
std::size_t rfind_after(const std::string& lower, std::initializer_list<std::string_view> needles) {
  std::size_t best = std::string::npos, best_end = std::string::npos;
  for (auto nd : needles) {
    std::size_t p = lower.rfind(nd);
    if (p != std::string::npos && (best == std::string::npos || p > best)) {
      best = p;
      best_end = p + nd.size();
    }
  }
  return best_end;
}

bool is_num_char(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

// s[i] is a comma followed by exactly three digits ("3,000"), i.e. a thousands separator.
bool is_thousands_comma(std::string_view s, std::size_t i) {
  return s[i] == ',' && i + 3 < s.size() && is_num_char(s[i + 1]) && is_num_char(s[i + 2]) &&
         is_num_char(s[i + 3]) && (i + 4 >= s.size() || !is_num_char(s[i + 4]));
}

// The last number in the text: optional minus, digits with thousands commas, decimals, or a/b.
std::string last_number(std::string_view s) {
  std::string best;
  std::size_t i = 0;
  while (i < s.size()) {
    if (!is_num_char(s[i])) {
      ++i;
      continue;
    }
    std::size_t b = i;
    bool neg =
        b > 0 && s[b - 1] == '-' && (b < 2 || !std::isalnum(static_cast<unsigned char>(s[b - 2])));
    std::string num;
    while (i < s.size() && (is_num_char(s[i]) || is_thousands_comma(s, i))) {
      if (s[i] != ',') num.push_back(s[i]);
      ++i;
    }
    if (i + 1 < s.size() && s[i] == '.' && is_num_char(s[i + 1])) {
      num.push_back('.');
      ++i;
      while (i < s.size() && is_num_char(s[i])) num.push_back(s[i++]);
    }
    if (i + 1 < s.size() && s[i] == '/' && is_num_char(s[i + 1])) {
      num.push_back('/');
      ++i;
      while (i < s.size() && is_num_char(s[i])) num.push_back(s[i++]);
    }
    best = (neg ? "-" : "") + num;
  }
  return best;
}

int count_numbers(std::string_view s) {
  int n = 0;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (is_num_char(s[i]) &&
        (i == 0 || !(is_num_char(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == ',')))
      ++n;
  return n;
}

}  // namespace

Extracted extract(std::string_view input, Style style, bool allow_last_number) {
  std::string_view t = text::trim(input);
  if (t.empty()) return {};
  std::string lower = text::to_lower(t);

  std::size_t p = rfind_after(lower, {"the answer is:", "the answer is"});
  if (p != std::string::npos) {
    std::string a = clean_tail(t.substr(p), false);
    if (!a.empty()) return {a, Method::AnswerIs};
  }
  if (auto boxed = text::last_boxed(t)) {
    std::string a(text::trim(*boxed));
    if (!a.empty()) return {a, Method::Boxed};
  }
  p = rfind_after(lower, {"value of x is", "variable x is", "value of unknown variable x is",
                          "value of the unknown variable x is"});
  if (p != std::string::npos) {
    std::string a = clean_tail(t.substr(p), true);
    if (!a.empty() && a.front() == ':') a = std::string(text::trim(a.substr(1)));
    if (!a.empty()) return {a, Method::ValueOfX};
  }
  if (auto h = text::after_hashes(t)) {
    std::string a = clean_tail(*h, false);
    if (!a.empty()) return {a, Method::Hashes};
  }
  // A short single-line text is itself the answer ("42", "$18", "\frac{1}{2}", "x = 3").
  bool one_line = t.find('\n') == std::string_view::npos;
  if (one_line && t.size() <= 80) {
    if (style == Style::Math || count_numbers(t) <= 1) {
      std::string a = clean_tail(t, false);
      if (!a.empty()) return {a, Method::Bare};
    }
  }
  if (allow_last_number) {
    std::string n = last_number(t);
    if (!n.empty()) return {n, Method::LastNumber};
  }
  return {};
}

Extracted extract_gold(std::string_view solution, Style style) {
  std::string_view t = text::trim(solution);
  if (style == Style::Gsm8k) {
    if (auto h = text::after_hashes(t)) return {std::string(text::trim(*h)), Method::Hashes};
  } else {
    if (auto boxed = text::last_boxed(t)) return {std::string(text::trim(*boxed)), Method::Boxed};
  }
  return extract(t, style, /*allow_last_number=*/false);
}

}  // namespace metamath::answer
