#pragma once
// GSM8K-style plain answers: numbers ("1,234", "$18.00", "-5", "3/4", "-(1/3)", "50%", "18
// dollars", "5 apples"), clock times ("3:30 p.m.", "15:30", "9:03:36 a.m.") and ratios ("5:6").
// Values are exact rationals, so "18.00" == "18" and "0.5" == "1/2" with no rounding involved.
#include <optional>
#include <string>
#include <string_view>

namespace metamath::answer {

// An exact rational in lowest terms; the sign is carried by the numerator.
struct Number {
  std::string numerator;          // e.g. "-3"
  std::string denominator = "1";  // e.g. "4"; "1" for integers
  bool operator==(const Number&) const = default;
  std::string str() const;  // "-3/4", "18"
  double approx() const;
};

// Parses a whole GSM8K-style answer as one number. Accepted around the number: a leading "$"
// (also "\$"), thousands commas (a comma followed by exactly three digits), a decimal comma where
// it cannot be a thousands separator ("1000,99", "0,111"; "1,000" stays one thousand, "1,2" is no
// number), a trailing "%" (dropped: "50%" is 50), a trailing period, and trailing unit words
// ("dollars", "apples", "sq ft"). The number may be in parentheses after its sign: "-(1/3)" is -1/3
// (ASDiv writes negative fractions so). Returns nullopt for anything else (several numbers, LaTeX,
// words before the number) and for literals longer than 200 digits.
std::optional<Number> parse_number(std::string_view s);

// A time of day: "H:MM" or "H:MM:SS", two-digit minutes and seconds, then optionally "a.m.",
// "p.m.", "am", "pm" (any case, final period optional). Without a.m./p.m. the hour may be 0-23;
// with one it must be 1-12.
struct ClockTime {
  enum class Meridiem { None, Am, Pm };
  int hour = 0, minute = 0, second = 0;
  Meridiem meridiem = Meridiem::None;
  std::string str() const;  // "15:30" for 3:30 p.m., "3:30" for a bare 3:30
};
std::optional<ClockTime> parse_time(std::string_view s);
// Whether two times can be the same time of day. A time with a.m./p.m., or with a 24-hour hour
// (0 or 13-23), means one moment; a bare "H:MM" with H in 1-12 is a 12-hour reading and means
// either H:MM a.m. or H:MM p.m. So "15:30" == "3:30 p.m." == "3:30", "3:30 a.m." != "3:30 p.m.",
// and "3:30" != "4:30".
bool same_time(const ClockTime& a, const ClockTime& b);

// A ratio "A:B" of two non-negative decimals ("5:6", "17 : 12", "1.5:2"), B not zero, as the
// exact number A/B ("10:12" gives 5/6). Whether a ratio may stand for its quotient is the
// comparison's business (equiv.h); this only reads the value.
std::optional<Number> parse_ratio(std::string_view s);

}  // namespace metamath::answer
