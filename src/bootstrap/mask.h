#pragma once
// Number masking for backward questions (Self-Verification and FOBAR).
//
// GSM8K rule: a candidate is a whitespace-separated token that contains a digit and no letter.
// Its number ("5", "3,000", "2.5", "1/2") is replaced by the unknown `x`; symbols around it stay
// ("$5," -> "$x,", "40%" -> "x%"). Number words ("twice", "half") are never candidates, nor are
// tokens holding more than one number ("9:30", "10-15").
//
// MATH rule: the same in ordinary text, with the unknown `X`; inside math mode ($...$, $$...$$,
// \(...\), \[...\]) every standalone number is a candidate unless it is part of a command or a
// word ("\frac12", "a2"), an exponent or subscript ("x^2", "a_{10}"), or a coefficient written
// against a letter ("3x").
//
// A question that already uses the unknown's letter as a word (`x` for GSM8K, `X` for MATH) has
// no candidates: masking it would be ambiguous.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "answer/extract.h"

namespace metamath::bootstrap {

struct Masked {
  std::string question;    // the question with this number replaced by the unknown
  std::string value;       // the masked number as a plain answer: commas and trailing zeros dropped
  std::string written;     // the number as written in the question ("3,000")
  std::size_t offset = 0;  // byte offset of `written` in the original question
};

// The unknown's name for a style: "x" (GSM8K) or "X" (MATH).
std::string_view unknown_name(answer::Style style);

// Every candidate, in order of appearance.
std::vector<Masked> mask_numbers(std::string_view question, answer::Style style);

// "3,000" -> "3000", "2.50" -> "2.5", "4.0" -> "4", "1/2" stays.
std::string plain_number(std::string_view written);

}  // namespace metamath::bootstrap
