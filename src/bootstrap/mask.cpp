#include "bootstrap/mask.h"

#include <vector>

namespace metamath::bootstrap {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// End of the number that starts at s[i] (a digit): digits, optional thousands groups ("3,000"),
// optional decimals, and (when allowed) a simple fraction "1/2".
std::size_t match_number(std::string_view s, std::size_t i, std::size_t end, bool commas,
                         bool fraction) {
  std::size_t j = i;
  while (j < end && is_digit(s[j])) ++j;
  bool plain = true;
  if (commas && j - i <= 3) {
    while (j + 3 < end && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) &&
           is_digit(s[j + 3]) && (j + 4 >= end || !is_digit(s[j + 4]))) {
      j += 4;
      plain = false;
    }
  }
  if (j + 1 < end && s[j] == '.' && is_digit(s[j + 1])) {
    ++j;
    while (j < end && is_digit(s[j])) ++j;
    plain = false;
  }
  if (fraction && plain && j + 1 < end && s[j] == '/' && is_digit(s[j + 1])) {
    ++j;
    while (j < end && is_digit(s[j])) ++j;
  }
  return j;
}

Masked make(std::string_view q, std::size_t begin, std::size_t end, std::string_view unknown) {
  Masked m;
  m.offset = begin;
  m.written = std::string(q.substr(begin, end - begin));
  m.value = plain_number(m.written);
  m.question.reserve(q.size());
  m.question.append(q.substr(0, begin));
  m.question.append(unknown);
  m.question.append(q.substr(end));
  return m;
}

// The whitespace-token rule over q[begin, end).
void text_candidates(std::string_view q, std::size_t begin, std::size_t end,
                     std::string_view unknown, std::vector<Masked>& out) {
  std::size_t i = begin;
  while (i < end) {
    while (i < end && is_space(q[i])) ++i;
    std::size_t ts = i;
    while (i < end && !is_space(q[i])) ++i;
    std::size_t te = i;
    if (ts == te) continue;
    std::size_t first_digit = te;
    bool letter = false;
    for (std::size_t k = ts; k < te; ++k) {
      if (is_alpha(q[k])) letter = true;
      if (first_digit == te && is_digit(q[k])) first_digit = k;
    }
    if (letter || first_digit == te) continue;
    std::size_t nb = first_digit;
    // ".5" written without the leading zero.
    if (nb > ts && q[nb - 1] == '.') --nb;
    std::size_t ne = match_number(q, first_digit, te, true, true);
    bool more_digits = false;
    for (std::size_t k = ne; k < te; ++k)
      if (is_digit(q[k])) more_digits = true;
    if (more_digits) continue;
    out.push_back(make(q, nb, ne, unknown));
  }
}

// Standalone numbers inside a math segment q[begin, end).
void math_candidates(std::string_view q, std::size_t begin, std::size_t end,
                     std::vector<Masked>& out) {
  std::vector<bool> groups;  // open brace groups: true when the group is a ^{} or _{} script
  int script_depth = 0;
  std::size_t i = begin;
  while (i < end) {
    char c = q[i];
    if (c == '\\' && i + 1 < end) {  // a command or an escaped symbol: skip its name
      std::size_t j = i + 1;
      if (is_alpha(q[j])) {
        while (j < end && is_alpha(q[j])) ++j;
      } else {
        ++j;
      }
      i = j;
      continue;
    }
    if (c == '{') {
      bool script = i > begin && (q[i - 1] == '^' || q[i - 1] == '_');
      groups.push_back(script);
      if (script) ++script_depth;
      ++i;
      continue;
    }
    if (c == '}') {
      if (!groups.empty()) {
        if (groups.back()) --script_depth;
        groups.pop_back();
      }
      ++i;
      continue;
    }
    if (!is_digit(c)) {
      ++i;
      continue;
    }
    std::size_t j = match_number(q, i, end, false, false);
    bool ok = script_depth == 0;
    if (i > begin) {
      char p = q[i - 1];
      if (is_alpha(p) || p == '^' || p == '_' || p == '.' || p == '\\') ok = false;
    }
    if (j < end && is_alpha(q[j])) ok = false;
    if (ok) out.push_back(make(q, i, j, "X"));
    i = j;
  }
}

struct Segment {
  std::size_t begin, end;
  bool math;
};

std::vector<Segment> split_math(std::string_view q) {
  std::vector<Segment> segs;
  std::size_t start = 0, i = 0;
  bool math = false;
  std::string_view closer;
  auto flush = [&](std::size_t at) {
    if (at > start) segs.push_back({start, at, math});
  };
  while (i < q.size()) {
    if (q[i] == '\\' && i + 1 < q.size()) {
      char n = q[i + 1];
      if (!math && (n == '(' || n == '[')) {
        flush(i);
        math = true;
        closer = n == '(' ? "\\)" : "\\]";
        start = i += 2;
        continue;
      }
      if (math && q.substr(i, 2) == closer) {
        flush(i);
        math = false;
        start = i += 2;
        continue;
      }
      i += 2;  // "\$" and other escapes are ordinary characters
      continue;
    }
    if (q[i] == '$') {
      std::size_t len = q.substr(i, 2) == "$$" ? 2 : 1;
      std::string_view delim = q.substr(i, len);
      if (!math) {
        flush(i);
        math = true;
        closer = delim;
        start = i += len;
        continue;
      }
      if (delim == closer || (closer == "$" && len == 2)) {
        std::size_t clen = closer.size();
        flush(i);
        math = false;
        start = i += clen;
        continue;
      }
    }
    ++i;
  }
  flush(q.size());
  return segs;
}

// Does q use the letter `u` as a standalone word/variable?
bool uses_unknown(std::string_view q, char u) {
  for (std::size_t i = 0; i < q.size(); ++i) {
    if (q[i] != u) continue;
    auto wordish = [](char c) { return is_alpha(c) || c == '-' || c == '\''; };
    bool before = i > 0 && wordish(q[i - 1]);
    bool after = i + 1 < q.size() && wordish(q[i + 1]);
    // Letters around it make it part of a word ("x-ray") or command; "5x" and "2 x 3" are uses.
    if (!before && !after) return true;
  }
  return false;
}

}  // namespace

std::string_view unknown_name(answer::Style style) {
  return style == answer::Style::Math ? "X" : "x";
}

std::string plain_number(std::string_view written) {
  std::string s;
  for (char c : written)
    if (c != ',') s.push_back(c);
  if (s.find('.') != std::string::npos && s.find('/') == std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    if (!s.empty() && s.front() == '.') s.insert(s.begin(), '0');
    if (s.empty()) s = "0";
  }
  return s;
}

std::vector<Masked> mask_numbers(std::string_view question, answer::Style style) {
  std::vector<Masked> out;
  if (style == answer::Style::Gsm8k) {
    if (uses_unknown(question, 'x')) return out;
    text_candidates(question, 0, question.size(), "x", out);
    return out;
  }
  if (uses_unknown(question, 'X')) return out;
  for (const Segment& s : split_math(question)) {
    if (s.math) {
      math_candidates(question, s.begin, s.end, out);
    } else {
      text_candidates(question, s.begin, s.end, "X", out);
    }
  }
  return out;
}

}  // namespace metamath::bootstrap
