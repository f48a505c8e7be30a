#pragma once
// MetaMath's official scoring, reimplemented so that `--scoring official` reproduces the numbers
// of the paper's table: the released eval_gsm8k.py and eval_math.py (with the MATH dataset's own
// string normalisation, strip_string / is_equiv) define what counts as correct there.
//
// GSM8K style: the prediction is the text after the last "The answer is: ", of which the first
// number ([-+]?\d*[.,/]?\d+) is taken: "a/b" as a fraction, a comma removed ("1,5" is 15), then
// rounded half to even to an integer (Python's round()); no marker or no number is wrong. It is
// compared as a float with the gold ("#### N" of the reference solution, commas removed).
// MATH style: the prediction is the text after the last "The answer is: ", cut at the first ".\n",
// trimmed, one final '.' dropped; the gold is the content of the last \boxed{...} of the reference
// solution (\fbox or a brace-less \boxed give no gold, as in the official script); both go through
// strip_string and compare as strings. Where the official code would raise inside strip_string
// (e.g. "\sqrt" at the very end), it compares the raw strings instead, as its is_equiv does.
//
// Differences kept on purpose: Python's \d and str.strip() also accept non-ASCII digits and
// spaces; here they are ASCII only. Everything else follows the official code, bugs included
// ("1,234,567" is read as 1234, "2.5" rounds to 2), since the point is comparability.
#include <optional>
#include <string>
#include <string_view>

#include "answer/extract.h"

namespace metamath::answer::official {

// eval_gsm8k.py's extract_answer_number: the rounded number, or nullopt (judged wrong).
std::optional<double> gsm8k_prediction(std::string_view completion);
// The gold of a GSM8K-style reference: the number after "#### " (commas removed) when present,
// else the whole text as a number; nullopt when it is not a number.
std::optional<double> gsm8k_gold(std::string_view solution);

// eval_math.py's process_results extraction: the answer text, or nullopt (no marker: wrong).
std::optional<std::string> math_prediction(std::string_view completion);
// remove_boxed(last_boxed_only_string(solution)); a solution without \boxed / \fbox is taken as a
// bare answer (MATH-500 style golds), one with an unremovable box (\fbox{..}) gives nullopt.
std::optional<std::string> math_gold(std::string_view solution);

// The MATH dataset's strip_string; nullopt where the Python function raises.
std::optional<std::string> strip_string(std::string_view s);
// The MATH dataset's is_equiv (both absent is equal, one absent is not).
bool is_equiv(const std::optional<std::string>& a, const std::optional<std::string>& b);

struct Verdict {
  bool correct = false;
  std::string pred, gold;  // the extracted texts ("" when none)
};
// One prediction (a whole completion) against one gold (a reference solution or a bare answer).
Verdict score(std::string_view completion, std::string_view gold, Style style);

}  // namespace metamath::answer::official
