// LaTeX answer parser, entry point (see latex.h): parse_answer() runs the clean-up pass
// (latex_clean.cpp), decides whether the answer is prose, then runs the scannerless
// recursive-descent parser into GiNaC (latex_parse.cpp, over the guarded arithmetic of
// latex_arith.cpp). The canonical printer is in latex_print.cpp. This file also holds the symbol
// table all of them share (latex_internal.h).
#include "answer/latex.h"

#include <cctype>
#include <cstddef>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "answer/latex_internal.h"
#include "core/text.h"

namespace metamath::answer::latex {

using namespace internal;

namespace internal {

Symbols& symbols() {
  thread_local Symbols s;
  return s;
}

const GiNaC::symbol& pm_symbol() { return symbols().get("\\pm"); }

const std::set<std::string>& function_names() {
  static const std::set<std::string> f = {"sin",    "cos",    "tan",    "sec",  "csc",  "cot",
                                          "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
                                          "ln",     "log",    "exp",    "sqrt", "abs"};
  return f;
}

}  // namespace internal

namespace {

Value text_value(std::string_view original, std::string error = "") {
  Value v;
  v.type = VType::Text;
  v.text = normalize_text(original);
  v.error = std::move(error);
  return v;
}

}  // namespace

const GiNaC::symbol& infinity_symbol() { return symbols().get("\\infty"); }

Value parse_answer(std::string_view input, const ParseLimits& lim, const Deadline& deadline) {
  if (input.size() > lim.max_input) throw ParseError("input longer than the limit");
  reset_held_bits();
  std::string s = clean(input);
  if (text::trim(s).empty()) {
    Value v;
    v.type = text::trim(input).empty() ? VType::Empty : VType::Text;
    if (v.type == VType::Text) v.text = normalize_text(input);
    return v;
  }
  if (!strip_text_groups(s)) return text_value(input);
  s = std::string(text::trim(s));
  if (text::starts_with(s, "\\approx")) s = std::string(text::trim(s.substr(7)));
  s = text::replace_all(s, ";", ",");
  s = remove_thousands_in_groups(s);
  strip_trailing_words(s);
  // Joining words between answers: "2 or 3", "x=1 and x=2"; "or" stays a word for the parser,
  // where it joins inequalities into a union ("x < -2 or x > 3") and otherwise separates answers.
  s = text::replace_all(s, " and ", ",");
  s = text::replace_all(s, " or ", " \\lor ");
  s = text::replace_all(text::replace_all(s, ", \\lor", " \\lor"), ",\\lor", " \\lor");
  {
    std::string t;  // "2, 3, , 4" (from ", and ") -> "2, 3, 4"
    for (char c : s) {
      std::size_t k = t.find_last_not_of(' ');
      if (c == ',' && k != std::string::npos && t[k] == ',') continue;
      t += c;
    }
    s = t;
  }
  s = std::string(text::trim(s));
  while (!s.empty() && (s.back() == ',' || s.back() == '.'))
    s = std::string(text::trim(s.substr(0, s.size() - 1)));
  while (!s.empty() && s.front() == ',') s = std::string(text::trim(s.substr(1)));
  if (s.empty()) return text_value(input);
  if (is_base_number(s)) {  // "422_{8}" -> text "422_8"
    Value v;
    v.type = VType::Text;
    for (char c : s)
      if (!is_space(c) && c != '{' && c != '}') v.text += static_cast<char>(std::tolower(c));
    return v;
  }
  if (has_word(s)) return text_value(input);
  {
    // "1,000" is one number, but "32, 349" reads as two answers: a space after a comma separates
    // items, so such a text is never a number with thousands separators.
    std::string compact;
    bool spaced_comma = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (!is_space(s[i])) compact += s[i];
      if (s[i] == ',' && i + 1 < s.size() && is_space(s[i + 1])) spaced_comma = true;
    }
    if (!spaced_comma && is_thousands_number(compact)) {
      s.clear();
      for (char c : compact)
        if (c != ',') s += c;
    }
  }
  try {
    return parse_math(s, lim, deadline);
  } catch (const SyntaxError& e) {
    return text_value(input, e.msg);
  } catch (const ParseError&) {
    throw;
  } catch (const std::exception& e) {  // GiNaC / CLN arithmetic errors (poles, overflow)
    return text_value(input, std::string("math error: ") + e.what());
  }
}

}  // namespace metamath::answer::latex
