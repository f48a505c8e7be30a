#include "bootstrap/mask.h"

#include <algorithm>
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

// The number words of MetaMath's script (its string_number_dict), with their values.
struct NumberWord {
  std::string_view word, value;
};
constexpr NumberWord kNumberWords[] = {
    {"one", "1"},     {"two", "2"},     {"three", "3"}, {"four", "4"},     {"five", "5"},
    {"six", "6"},     {"seven", "7"},   {"eight", "8"}, {"nine", "9"},     {"ten", "10"},
    {"eleven", "11"}, {"twelve", "12"}, {"fifth", "5"}, {"sixteen", "16"}, {"half", "50"}};

// The whitespace-token rule over q[begin, end); number words too when `words`.
void text_candidates(std::string_view q, std::size_t begin, std::size_t end,
                     std::string_view unknown, bool words, std::vector<Masked>& out) {
  std::size_t i = begin;
  while (i < end) {
    while (i < end && is_space(q[i])) ++i;
    std::size_t ts = i;
    while (i < end && !is_space(q[i])) ++i;
    std::size_t te = i;
    if (ts == te) continue;
    std::string_view word_value = words ? number_word_value(q.substr(ts, te - ts)) : "";
    if (!word_value.empty()) {
      // MetaMath writes the word's value and masks that: "half" -> "50%" -> "x%".
      std::string u(unknown);
      if (q.substr(ts, te - ts) == "half") u += '%';
      Masked m = make(q, ts, te, u);
      m.value = std::string(word_value);
      out.push_back(std::move(m));
      continue;
    }
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
bool uses_letter(std::string_view q, char u) {
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

std::string_view number_word_value(std::string_view word) {
  for (const NumberWord& w : kNumberWords)
    if (w.word == word) return w.value;
  return {};
}

bool uses_unknown(std::string_view question, answer::Style style) {
  return uses_letter(question, style == answer::Style::Math ? 'X' : 'x');
}

std::size_t final_sentence_start(std::string_view question, answer::Style style) {
  std::string_view q = question;
  while (!q.empty() && is_space(q.back())) q.remove_suffix(1);
  std::vector<Segment> segs;
  if (style == answer::Style::Math) {
    segs = split_math(q);
  } else {
    segs.push_back({0, q.size(), false});
  }
  auto lower_word_after = [&](std::size_t k) {
    while (k < q.size() && is_space(q[k])) ++k;
    return k < q.size() && q[k] >= 'a' && q[k] <= 'z';
  };
  auto word_before = [&](std::size_t k) {  // the token ending just before q[k]
    std::size_t b = k;
    while (b > 0 && !is_space(q[b - 1])) --b;
    return q.substr(b, k - b);
  };
  std::size_t start = 0;
  for (const Segment& s : segs) {
    if (s.math) {
      // "$a = 5.$ What is $a$?": a sentence ending inside math mode, just before the closer.
      std::size_t e = s.end;
      while (e > s.begin && is_space(q[e - 1])) --e;
      if (e == s.begin || (q[e - 1] != '.' && q[e - 1] != '!' && q[e - 1] != '?')) continue;
      std::size_t after = s.end;
      if (after < q.size() && q[after] == '\\') {
        after += 2;
      } else {
        while (after < q.size() && q[after] == '$') ++after;
      }
      if (after < q.size() && is_space(q[after])) start = std::max(start, after);
      continue;
    }
    for (std::size_t i = s.begin; i < s.end; ++i) {
      char c = q[i];
      std::size_t after = i + 1;
      if (c == '\n') {
        if (after < q.size()) start = std::max(start, after);
        continue;
      }
      if (c != '.' && c != '!' && c != '?') continue;
      while (after < q.size() && (q[after] == '"' || q[after] == '\'' || q[after] == ')')) ++after;
      if (after >= q.size() || !is_space(q[after])) continue;
      if (c == '.') {
        std::string_view w = word_before(i);
        if (w == "Mr" || w == "Mrs" || w == "Ms" || w == "Dr" || w == "St" || w == "Jr") continue;
        if ((w == "a.m" || w == "p.m") && lower_word_after(after)) continue;
      }
      start = std::max(start, after);
    }
  }
  while (start < q.size() && is_space(q[start])) ++start;
  return start >= q.size() ? 0 : start;
}

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
    if (uses_letter(question, 'x')) return out;
    text_candidates(question, 0, question.size(), "x", true, out);
    return out;
  }
  if (uses_letter(question, 'X')) return out;
  for (const Segment& s : split_math(question)) {
    if (s.math) {
      math_candidates(question, s.begin, s.end, out);
    } else {
      text_candidates(question, s.begin, s.end, "X", false, out);
    }
  }
  return out;
}

}  // namespace metamath::bootstrap
