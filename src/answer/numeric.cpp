// GSM8K-style number parsing into exact rationals (CLN through GiNaC's numeric).
#include "answer/numeric.h"

#include <ginac/ginac.h>

#include <cctype>
#include <sstream>

#include "core/text.h"

namespace metamath::answer {
namespace {

bool digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }

std::string to_str(const GiNaC::numeric& n) {
  std::ostringstream os;
  os << n;
  return os.str();
}

// Reads "123", "1,234.50", ".5" at s[i..]; exact value; advances i. nullopt when no digits.
std::optional<GiNaC::numeric> read_decimal(std::string_view s, std::size_t& i) {
  std::string digits;
  std::size_t frac = 0;
  bool dot = false;
  while (i < s.size()) {
    char c = s[i];
    if (digit(c)) {
      digits += c;
      if (dot) ++frac;
      ++i;
    } else if (c == ',' && !dot && !digits.empty() && i + 3 < s.size() + 0 && digit(s[i + 1]) &&
               digit(s[i + 2]) && digit(s[i + 3]) && (i + 4 >= s.size() || !digit(s[i + 4]))) {
      ++i;  // thousands separator
    } else if (c == '.' && !dot && i + 1 < s.size() && digit(s[i + 1])) {
      dot = true;
      ++i;
    } else {
      break;
    }
  }
  if (digits.empty() || digits.size() > 200) return std::nullopt;
  GiNaC::numeric v(digits.c_str());
  if (frac > 0) v = v / GiNaC::pow(GiNaC::numeric(10), GiNaC::numeric(static_cast<long>(frac)));
  return v;
}

void skip_spaces(std::string_view s, std::size_t& i) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
}

}  // namespace

std::string Number::str() const {
  return denominator == "1" ? numerator : numerator + "/" + denominator;
}

double Number::approx() const { return std::stod(numerator) / std::stod(denominator); }

std::optional<Number> parse_number(std::string_view in) {
  std::string_view s = text::trim(in);
  if (s.size() > 400) return std::nullopt;
  std::size_t i = 0;
  bool neg = false;
  auto eat_dollar = [&]() {
    if (i < s.size() && s[i] == '$') {
      ++i;
    } else if (i + 1 < s.size() && s[i] == '\\' && s[i + 1] == '$') {
      i += 2;
    } else {
      return false;
    }
    skip_spaces(s, i);
    return true;
  };
  eat_dollar();
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
    neg = s[i] == '-';
    ++i;
    skip_spaces(s, i);
  } else if (s.compare(i, 3, "\xE2\x88\x92") == 0) {  // U+2212 minus sign
    neg = true;
    i += 3;
  }
  eat_dollar();
  auto value = read_decimal(s, i);
  if (!value) return std::nullopt;
  std::size_t save = i;
  skip_spaces(s, i);
  if (i < s.size() && s[i] == '/') {  // a fraction "3/4"
    ++i;
    skip_spaces(s, i);
    auto den = read_decimal(s, i);
    if (!den || den->is_zero()) return std::nullopt;
    *value = *value / *den;
  } else {
    i = save;
  }
  std::size_t after_number = i;
  skip_spaces(s, i);
  if (i < s.size() && s[i] == '%') ++i;
  if (i + 1 < s.size() && s[i] == '\\' && s[i + 1] == '%') i += 2;
  // Only unit words may follow: letters, spaces, periods.
  std::string_view rest = text::trim(s.substr(i));
  for (char c : rest)
    if (!alpha(c) && c != ' ' && c != '.') return std::nullopt;
  if (!rest.empty() && rest != "." && !alpha(rest[0])) return std::nullopt;
  // Unit words are separated from the number: "5 apples" yes, "2x" no.
  if (!rest.empty() && rest != "." && i == after_number) return std::nullopt;
  if (neg) *value = -*value;
  return Number{to_str(value->numer()), to_str(value->denom())};
}

}  // namespace metamath::answer
