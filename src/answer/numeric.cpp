// GSM8K-style number parsing into exact rationals (CLN through GiNaC's numeric).
#include "answer/numeric.h"

#include <ginac/ginac.h>

#include <cctype>
#include <sstream>
#include <vector>

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

// A comma at s[i] that can only be a decimal comma: the number's first separator, after digits
// that cannot open a thousands-grouped number, and not followed by another separator ("1,5,3" is
// a list). That is after a lone "0" ("0,111", "0,5"), or after 4+ digits when the digits after it
// are not a group of three ("1000,99"). "1,2" or "12,5" may be two answers: not numbers.
bool decimal_comma_at(std::string_view s, std::size_t i, const std::string& digits) {
  std::size_t j = i + 1;
  while (j < s.size() && digit(s[j])) ++j;
  std::size_t run = j - i - 1;
  if (run == 0 || (j < s.size() && (s[j] == ',' || s[j] == '.'))) return false;
  return digits == "0" || (digits.size() >= 4 && run != 3);
}

// Reads "123", "1,234.50", ".5", and a decimal comma ("1000,99", see decimal_comma_at) at s[i..];
// exact value; advances i. nullopt when no digits.
std::optional<GiNaC::numeric> read_decimal(std::string_view s, std::size_t& i) {
  std::string digits;
  std::size_t frac = 0;
  bool dot = false, grouped = false;
  while (i < s.size()) {
    char c = s[i];
    if (digit(c)) {
      digits += c;
      if (dot) ++frac;
      ++i;
    } else if (c == ',' && !dot && !grouped && !digits.empty() && decimal_comma_at(s, i, digits)) {
      dot = true;
      ++i;
    } else if (c == ',' && !dot && !digits.empty() && i + 3 < s.size() + 0 && digit(s[i + 1]) &&
               digit(s[i + 2]) && digit(s[i + 3]) && (i + 4 >= s.size() || !digit(s[i + 4]))) {
      grouped = true;
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
  bool paren = i < s.size() && s[i] == '(';  // "-(1/3)"
  if (paren) {
    ++i;
    skip_spaces(s, i);
  }
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
  if (paren) {
    skip_spaces(s, i);
    if (i >= s.size() || s[i] != ')') return std::nullopt;
    ++i;
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

namespace {

// Reads exactly two digits at s[i..] as a number below `limit`; advances i.
std::optional<int> two_digits(std::string_view s, std::size_t& i, int limit) {
  if (i + 2 > s.size() || !digit(s[i]) || !digit(s[i + 1])) return std::nullopt;
  if (i + 2 < s.size() && digit(s[i + 2])) return std::nullopt;
  int v = (s[i] - '0') * 10 + (s[i + 1] - '0');
  i += 2;
  if (v >= limit) return std::nullopt;
  return v;
}

// "am", "a.m.", "A.M", "pm", "p.m." ... at the whole of s (already trimmed).
std::optional<ClockTime::Meridiem> read_meridiem(std::string_view s) {
  std::string letters;
  for (char c : s) {
    if (c == '.') continue;
    if (!alpha(c)) return std::nullopt;
    letters += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (letters == "am") return ClockTime::Meridiem::Am;
  if (letters == "pm") return ClockTime::Meridiem::Pm;
  return std::nullopt;
}

// The seconds after midnight a time may mean (see same_time): one or two values.
std::vector<int> readings(const ClockTime& t) {
  int rest = t.minute * 60 + t.second;
  switch (t.meridiem) {
    case ClockTime::Meridiem::Am:
      return {(t.hour % 12) * 3600 + rest};
    case ClockTime::Meridiem::Pm:
      return {(t.hour % 12 + 12) * 3600 + rest};
    case ClockTime::Meridiem::None:
      break;
  }
  if (t.hour >= 1 && t.hour <= 12)
    return {(t.hour % 12) * 3600 + rest, (t.hour % 12 + 12) * 3600 + rest};
  return {t.hour * 3600 + rest};
}

}  // namespace

std::string ClockTime::str() const {
  int h = hour;
  if (meridiem == Meridiem::Am) h = hour % 12;
  if (meridiem == Meridiem::Pm) h = hour % 12 + 12;
  std::string out = std::to_string(h) + (minute < 10 ? ":0" : ":") + std::to_string(minute);
  if (second != 0) out += (second < 10 ? ":0" : ":") + std::to_string(second);
  return out;
}

std::optional<ClockTime> parse_time(std::string_view in) {
  std::string_view s = text::trim(in);
  if (s.size() > 40) return std::nullopt;
  std::size_t i = 0;
  ClockTime t;
  std::size_t hour_digits = 0;
  while (i < s.size() && digit(s[i]) && hour_digits < 3)
    t.hour = t.hour * 10 + (s[i++] - '0'), ++hour_digits;
  if (hour_digits == 0 || hour_digits > 2 || t.hour > 23) return std::nullopt;
  if (i >= s.size() || s[i] != ':') return std::nullopt;
  ++i;
  auto minute = two_digits(s, i, 60);
  if (!minute) return std::nullopt;
  t.minute = *minute;
  if (i < s.size() && s[i] == ':') {
    ++i;
    auto second = two_digits(s, i, 60);
    if (!second) return std::nullopt;
    t.second = *second;
  }
  std::string_view rest = text::trim(s.substr(i));
  if (rest.empty()) return t;
  auto m = read_meridiem(rest);
  if (!m || t.hour < 1 || t.hour > 12) return std::nullopt;
  t.meridiem = *m;
  return t;
}

bool same_time(const ClockTime& a, const ClockTime& b) {
  for (int x : readings(a))
    for (int y : readings(b))
      if (x == y) return true;
  return false;
}

std::optional<Number> parse_ratio(std::string_view in) {
  std::string_view s = text::trim(in);
  if (s.size() > 400) return std::nullopt;
  std::size_t i = 0;
  auto a = read_decimal(s, i);
  if (!a) return std::nullopt;
  skip_spaces(s, i);
  if (i >= s.size() || s[i] != ':') return std::nullopt;
  ++i;
  skip_spaces(s, i);
  auto b = read_decimal(s, i);
  if (!b || b->is_zero() || i != s.size()) return std::nullopt;
  GiNaC::numeric q = *a / *b;
  return Number{to_str(q.numer()), to_str(q.denom())};
}

}  // namespace metamath::answer
