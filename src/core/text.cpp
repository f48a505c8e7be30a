#include "core/text.h"

#include <cctype>

namespace metamath::text {

std::string_view trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string to_lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view x) {
  return s.size() >= x.size() && s.substr(s.size() - x.size()) == x;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t b = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.emplace_back(s.substr(b, i - b));
      b = i + 1;
    }
  }
  return out;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  std::size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

std::size_t word_count(std::string_view s) {
  std::size_t n = 0;
  bool in_word = false;
  for (char c : s) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
    n += !space && !in_word;
    in_word = !space;
  }
  return n;
}

std::string collapse_spaces(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : trim(s)) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = true;
    } else {
      if (space && !out.empty()) out.push_back(' ');
      space = false;
      out.push_back(c);
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0, n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    for (int k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += len;
  }
  return true;
}

std::size_t utf8_safe_prefix(std::string_view s) {
  std::size_t n = s.size();
  // Walk back over at most 3 continuation bytes to find the start of the last character.
  std::size_t i = n;
  int cont = 0;
  while (i > 0 && cont < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xc0) == 0x80) {
    --i;
    ++cont;
  }
  if (i == 0) return 0;  // only continuation bytes (or nothing)
  auto lead = static_cast<unsigned char>(s[i - 1]);
  int len = lead < 0x80           ? 1
            : (lead >> 5) == 0x6  ? 2
            : (lead >> 4) == 0xe  ? 3
            : (lead >> 3) == 0x1e ? 4
                                  : 1;
  if (lead < 0x80) return n;  // last char ASCII; trailing continuation bytes are stray
  return (cont + 1 >= len) ? n : i - 1;
}

std::size_t match_brace(std::string_view s, std::size_t open) {
  if (open >= s.size() || s[open] != '{') return std::string_view::npos;
  int depth = 0;
  for (std::size_t i = open; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      ++i;
      continue;
    }
    if (c == '{') ++depth;
    if (c == '}' && --depth == 0) return i;
  }
  return std::string_view::npos;
}

std::optional<std::string> last_boxed(std::string_view s) {
  std::size_t best = std::string_view::npos;
  std::size_t name_len = 0;
  for (std::string_view name : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    std::size_t p = s.rfind(name);
    if (p != std::string_view::npos && (best == std::string_view::npos || p > best)) {
      best = p;
      name_len = name.size();
    }
  }
  if (best == std::string_view::npos) return std::nullopt;
  std::size_t i = best + name_len;
  if (i < s.size() && s[i] == '{') {
    std::size_t close = match_brace(s, i);
    if (close == std::string_view::npos) return std::nullopt;
    return std::string(s.substr(i + 1, close - i - 1));
  }
  if (i < s.size() && s[i] == ' ') {
    // "\boxed 5" form: up to the next '$' or whitespace.
    std::size_t b = i + 1, e = b;
    while (e < s.size() && s[e] != '$' && !std::isspace(static_cast<unsigned char>(s[e]))) ++e;
    if (e > b) return std::string(s.substr(b, e - b));
  }
  return std::nullopt;
}

std::optional<std::string> after_hashes(std::string_view s) {
  std::size_t p = s.rfind("####");
  if (p == std::string_view::npos) return std::nullopt;
  std::string v(trim(s.substr(p + 4)));
  std::string out;
  for (char c : v)
    if (c != ',') out.push_back(c);
  if (out.empty()) return std::nullopt;
  return out;
}

}  // namespace metamath::text
