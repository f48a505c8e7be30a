#pragma once
// Number masking for backward questions (Self-Verification and FOBAR).
//
// GSM8K rule: a candidate is a whitespace-separated token that contains a digit and no letter.
// Its number ("5", "3,000", "2.5", "1/2") is replaced by the unknown `x`; symbols around it stay
// ("$5," -> "$x,", "40%" -> "x%"). Tokens holding more than one number ("9:30", "10-15") are not
// candidates. The number words MetaMath's own script masks are candidates too, as it masks them:
// a token that is exactly (same case, no punctuation attached) one of "one" ... "twelve",
// "sixteen" or "fifth" becomes `x` (value 1 ... 12, 16, 5), and "half" becomes "x%" (value 50).
// Other words ("twice", "Two", "two,", "one-third") are not candidates, as there.
//
// Where we differ from MetaMath's script on purpose: it drops a currency sign when punctuation
// follows the number ("$45." -> "x.", while "$45" -> "$x"); we keep it ("$x."). It takes any
// token without letters and with a digit; we refuse tokens with two numbers ("9:30").
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

// The value of a number word MetaMath's script masks ("two" -> "2", "half" -> "50"), else "".
std::string_view number_word_value(std::string_view word);

// Where the question's final sentence starts (SV keeps everything before it word for word): just
// after the last ".", "!" or "?" (a closing quote or bracket may follow) that is followed by
// whitespace, or the last line break, outside math mode; not after "Mr.", "Mrs.", "Ms.", "Dr.",
// "St.", "Jr." nor after "a.m."/"p.m." followed by a lower-case word. Trailing whitespace is not
// part of the question. 0 when the question is one sentence.
std::size_t final_sentence_start(std::string_view question, answer::Style style);

// Whether the question uses the unknown's letter (`x` for GSM8K, `X` for MATH) as a word or
// variable ("5x", "2 x 3", "$X$"), not inside a word ("x-ray", "Max").
bool uses_unknown(std::string_view question, answer::Style style);

// "3,000" -> "3000", "2.50" -> "2.5", "4.0" -> "4", "1/2" stays.
std::string plain_number(std::string_view written);

}  // namespace metamath::bootstrap
