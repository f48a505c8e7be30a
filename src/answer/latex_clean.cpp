// Clean-up of LaTeX answer text before parsing (see latex.h): spacing commands, \left/\right,
// degrees, percent, dollars, \text{} groups, unit words, thousands separators; and the
// normalize_text() used to compare answers that stay text. What "50\%", "90^\circ" or "\$5" mean
// is decided here. Declared in latex_internal.h; parse_answer (latex.cpp) applies the steps in
// order.
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "answer/latex.h"
#include "answer/latex_internal.h"
#include "core/text.h"

namespace metamath::answer::latex {

using namespace internal;

namespace internal {

// ---------------------------------------------------------------------------------------------
// Clean-up pass: spacing commands, \left/\right, degrees, percent, dollars, \dfrac -> \frac.
// Decisions: "50\%" means 50 (the percent sign is dropped, never divided by 100); "90^\circ"
// means 90; "\$5" means 5.

std::string clean(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  int skip_close_brace = 0;  // "^{\circ}": the "}" that closed the removed group
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '\\' && i + 1 < in.size()) {
      char n = in[i + 1];
      if (is_alpha(n)) {
        std::size_t j = i + 1;
        while (j < in.size() && is_alpha(in[j])) ++j;
        std::string name(in.substr(i + 1, j - i - 1));
        i = j - 1;
        if (name == "left" || name == "right" || name == "bigl" || name == "bigr" ||
            name == "big" || name == "Big" || name == "Bigl" || name == "Bigr") {
          if (i + 1 < in.size() && in[i + 1] == '.') ++i;  // \left. is an invisible delimiter
        } else if (name == "displaystyle" || name == "textstyle" || name == "limits" ||
                   name == "phantom" || name == "hphantom") {
        } else if (name == "quad" || name == "qquad") {
          out += ' ';
        } else if (name == "dfrac" || name == "tfrac" || name == "cfrac") {
          out += "\\frac";
        } else if (name == "dbinom" || name == "tbinom") {
          out += "\\binom";
        } else if (name == "lvert" || name == "rvert" || name == "vert" || name == "mid") {
          out += '|';
        } else if (name == "lbrace") {
          out += "\\{";
        } else if (name == "rbrace") {
          out += "\\}";
        } else if (name == "circ" || name == "degree") {
          // Drop a dangling "^" or "^{" that introduced the degree sign.
          std::size_t k = out.size();
          while (k > 0 && is_space(out[k - 1])) --k;
          if (k > 0 && out[k - 1] == '^') {
            out.resize(k - 1);
          } else if (k > 1 && out[k - 1] == '{' && out[k - 2] == '^') {
            out.resize(k - 2);
            ++skip_close_brace;
          }
        } else {
          out += '\\';
          out += name;
        }
        continue;
      }
      if (n == '!' || n == ',') {  // thin spaces: removed so "1,\!000" and "1\,000" read as 1000
        ++i;
        continue;
      }
      if (n == ';' || n == ':' || n == ' ') {
        out += ' ';
        ++i;
        continue;
      }
      if (n == '%' || n == '$') {
        ++i;
        continue;
      }
      out += c;
      out += n;
      ++i;
      continue;
    }
    if (c == '}' && skip_close_brace > 0) {
      std::size_t k = out.size();
      while (k > 0 && is_space(out[k - 1])) --k;
      out.resize(k);
      --skip_close_brace;
      continue;
    }
    if (c == '%' || c == '$') continue;
    if (c == '~') {
      out += ' ';
      continue;
    }
    if (static_cast<unsigned char>(c) == 0xC2 && i + 1 < in.size() &&
        static_cast<unsigned char>(in[i + 1]) == 0xB0) {  // U+00B0 degree sign
      ++i;
      continue;
    }
    out += c;
  }
  out = text::replace_all(out, "{,}", ",");
  // Trailing punctuation of a sentence ("5.", "\text{(E)},").
  for (;;) {
    std::string_view t = text::trim(out);
    if (!t.empty() && (t.back() == '.' || t.back() == ',') &&
        !(t.size() >= 2 && t[t.size() - 2] == '\\')) {
      out = std::string(t.substr(0, t.size() - 1));
      continue;
    }
    out = std::string(t);
    break;
  }
  return out;
}

}  // namespace internal

namespace {

const char* const kTextCommands[] = {"\\textbf",       "\\textrm",  "\\textnormal", "\\textit",
                                     "\\text",         "\\mbox",    "\\mathrm",     "\\mathbf",
                                     "\\operatorname", "\\overline"};

// If s[pos..] starts a text command with a braced argument, its length and argument bounds.
bool text_group_at(const std::string& s, std::size_t pos, std::size_t* open, std::size_t* close,
                   std::string* cmd) {
  for (const char* tc : kTextCommands) {
    std::string_view t(tc);
    if (s.compare(pos, t.size(), t) != 0) continue;
    std::size_t j = pos + t.size();
    if (j < s.size() && is_alpha(s[j])) continue;  // a longer command name
    while (j < s.size() && s[j] == ' ') ++j;
    if (j >= s.size() || s[j] != '{') return false;
    std::size_t e = text::match_brace(s, j);
    if (e == std::string::npos) return false;
    *open = j;
    *close = e;
    *cmd = std::string(t);
    return true;
  }
  return false;
}

// Letters, spaces (a line break too: "\text{ square\nunits}"), periods (e.g. " sq. units").
bool is_words(std::string_view c) {
  bool letter = false;
  for (char ch : c) {
    if (is_alpha(ch)) {
      letter = true;
    } else if (!std::isspace(static_cast<unsigned char>(ch)) && ch != '.') {
      return false;
    }
  }
  return letter;
}

bool is_mathy(std::string_view c) {  // digits and operators only: "\text{5}" -> 5
  bool digit = false;
  for (char ch : c) {
    if (is_digit(ch)) {
      digit = true;
    } else if (std::string_view(" .+-/()").find(ch) == std::string_view::npos) {
      return false;
    }
  }
  return digit;
}

bool is_clock_word(std::string_view c) {
  std::string l = text::to_lower(text::collapse_spaces(c));
  l = text::replace_all(l, ".", "");
  l = text::replace_all(l, " ", "");
  return l == "am" || l == "pm";
}

// After a unit group: only "^2", "^{3}", spaces remain?
bool only_unit_tail(std::string_view rest, std::size_t* consumed) {
  std::size_t i = 0;
  while (i < rest.size() && rest[i] == ' ') ++i;
  if (i < rest.size() && rest[i] == '^') {
    ++i;
    if (i < rest.size() && is_digit(rest[i])) {
      ++i;
    } else if (i + 2 < rest.size() && rest[i] == '{' && is_digit(rest[i + 1]) &&
               rest[i + 2] == '}') {
      i += 3;
    } else {
      return false;
    }
  }
  while (i < rest.size() && rest[i] == ' ') ++i;
  *consumed = i;
  return i == rest.size();
}

// Rewrites \text{...}-style groups: joiners ("and", "or") become commas, numbers are unwrapped,
}  // namespace

namespace internal {

// trailing unit words are dropped. Returns false when real text remains (the answer is Text).
bool strip_text_groups(std::string& s) {
  for (std::size_t pos = 0; pos < s.size();) {
    std::size_t open, close;
    std::string cmd;
    if (s[pos] != '\\' || !text_group_at(s, pos, &open, &close, &cmd)) {
      ++pos;
      continue;
    }
    std::string content = s.substr(open + 1, close - open - 1);
    std::string_view c = text::trim(content);
    std::string lc = text::to_lower(c);
    std::string joined = text::replace_all(text::replace_all(lc, "and", ""), "or", "");
    joined = std::string(text::trim(text::replace_all(joined, ",", "")));
    std::string replacement;
    std::size_t end = close + 1;
    std::string prefix(text::trim(std::string_view(s).substr(0, pos)));
    if (c.empty()) {
      replacement = " ";
    } else if (joined.empty()) {  // "\text{ and }", "\text{, or }"; "\text{ or }" stays "or"
      replacement = lc.find("or") != std::string::npos && lc.find("and") == std::string::npos
                        ? " \\lor "
                        : ",";
    } else if (is_mathy(c) || cmd == "\\mathbf" || cmd == "\\mathrm" || cmd == "\\operatorname" ||
               cmd == "\\overline") {  // a segment \overline{CD} is its name
      replacement = " " + std::string(c) + " ";
    } else {
      std::size_t tail = 0;
      bool unit = !prefix.empty() && is_words(c) && !is_clock_word(c) &&
                  only_unit_tail(std::string_view(s).substr(close + 1), &tail);
      if (!unit) return false;
      end = close + 1 + tail;
      replacement = "";
    }
    s = s.substr(0, pos) + replacement + s.substr(end);
    pos += replacement.size();
  }
  return true;
}

// Trailing unit words without \text: "18 dollars", "5 sq units", "10 cm".
void strip_trailing_words(std::string& s) {
  for (;;) {
    std::string_view t = text::trim(s);
    std::size_t e = t.size();
    // "15 cm^2", "3 m^{3}": the power belongs to the unit.
    if (e >= 3 && is_digit(t[e - 1]) && t[e - 2] == '^' && is_alpha(t[e - 3])) {
      e -= 2;
    } else if (e >= 5 && t[e - 1] == '}' && is_digit(t[e - 2]) && t[e - 3] == '{' &&
               t[e - 4] == '^' && is_alpha(t[e - 5])) {
      e -= 4;
    }
    std::size_t b = e;
    while (b > 0 && (is_alpha(t[b - 1]) || t[b - 1] == '.')) --b;
    std::string word(t.substr(b, e - b));
    std::size_t letters = std::count_if(word.begin(), word.end(), is_alpha);
    if (b == 0 || t[b - 1] != ' ' || letters < 2 || function_names().count(word) ||
        is_clock_word(word) || e == b)
      return;
    std::string_view before = text::trim(t.substr(0, b));
    if (before.empty()) return;
    char last = before.back();
    if (!(is_digit(last) || last == '}' || last == ')' || is_alpha(last))) return;
    s = std::string(before);
  }
}

// A run of 3+ letters outside a command name (and not a known function or environment name)
// marks prose: "Monday", "odd", "neither".
bool has_word(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    if (!is_alpha(s[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && is_alpha(s[j])) ++j;
    bool command = i > 0 && s[i - 1] == '\\';
    bool env = (i >= 7 && s.compare(i - 7, 7, "\\begin{") == 0) ||
               (i >= 5 && s.compare(i - 5, 5, "\\end{") == 0);
    std::string w = s.substr(i, j - i);
    if (!command && !env && w.size() >= 3 && !function_names().count(w) && w != "pi" && w != "Pi")
      return true;
    i = j;
  }
  return false;
}

bool is_base_number(const std::string& s) {  // "422_8", "152A_{11}", "1110_4"
  std::string t;
  for (char c : s)
    if (c != ' ') t += c;
  std::size_t u = t.find('_');
  if (u == std::string::npos || u == 0) return false;
  for (std::size_t i = 0; i < u; ++i)
    if (!is_digit(t[i]) && !(t[i] >= 'A' && t[i] <= 'Z') && t[i] != '.') return false;
  if (!is_digit(t[0])) return false;
  std::string b = t.substr(u + 1);
  if (b.size() >= 2 && b.front() == '{' && b.back() == '}') b = b.substr(1, b.size() - 2);
  return !b.empty() && std::all_of(b.begin(), b.end(), is_digit);
}

// "1,000", "-12,345.5": a lone number whose commas are thousands separators.
bool is_thousands_number(const std::string& s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  std::size_t start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  std::size_t lead = i - start;
  if (lead < 1 || lead > 3) return false;
  int groups = 0;
  while (i < s.size() && s[i] == ',') {
    for (int k = 1; k <= 3; ++k)
      if (i + k >= s.size() || !is_digit(s[i + k])) return false;
    i += 4;
    ++groups;
    if (i < s.size() && is_digit(s[i])) return false;
  }
  if (groups == 0) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    std::size_t d = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == d) return false;
  }
  return i == s.size();
}

// "\frac{12}{5,525}": thousands commas inside a brace group that holds only a number.
std::string remove_thousands_in_groups(const std::string& s) {
  std::string out = s;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] != '{') continue;
    std::size_t c = text::match_brace(out, i);
    if (c == std::string::npos) break;
    std::string inner(text::trim(std::string_view(out).substr(i + 1, c - i - 1)));
    if (is_thousands_number(inner)) {
      std::string plain;
      for (char ch : inner)
        if (ch != ',') plain += ch;
      out = out.substr(0, i + 1) + plain + out.substr(c);
    }
  }
  return out;
}

}  // namespace internal

std::string normalize_text(std::string_view in) {
  std::string s(in);
  // Unwrap \text{...}-like groups, keeping their content.
  for (std::size_t pos = 0; pos < s.size();) {
    std::size_t open, close;
    std::string cmd;
    if (s[pos] == '\\' && text_group_at(s, pos, &open, &close, &cmd)) {
      s = s.substr(0, pos) + s.substr(open + 1, close - open - 1) + s.substr(close + 1);
      continue;
    }
    ++pos;
  }
  for (const char* drop :
       {"\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "\\$", "$", "~", "\\displaystyle"})
    s = text::replace_all(s, drop, "");
  s = text::replace_all(s, "\\dfrac", "\\frac");
  s = text::replace_all(s, "\\tfrac", "\\frac");
  std::string out;
  for (char c : s)
    if (!is_space(c)) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!out.empty() && (out.back() == '.' || out.back() == ',')) out.pop_back();
  if (out.size() == 3 && out[0] == '(' && out[2] == ')' && is_alpha(out[1])) out = out.substr(1, 1);
  return out;
}

}  // namespace metamath::answer::latex
