#pragma once
// GSM8K-style plain numbers: "1,234", "$18.00", "-5", "3/4", "50%", "18 dollars", "5 apples".
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
// (also "\$"), thousands commas (a comma followed by exactly three digits), a trailing "%"
// (dropped: "50%" is 50), a trailing period, and trailing unit words ("dollars", "apples", "sq
// ft"). Returns nullopt for anything else (several numbers, LaTeX, words before the number) and for
// literals longer than 200 digits.
std::optional<Number> parse_number(std::string_view s);

}  // namespace metamath::answer
