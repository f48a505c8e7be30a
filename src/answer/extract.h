#pragma once
// Final-answer extraction from a model completion or a gold solution.
#include <string>
#include <string_view>

namespace metamath::answer {

// Which benchmark family an answer belongs to: GSM8K-style plain numbers or MATH-style LaTeX.
enum class Style { Gsm8k, Math };
Style parse_style(std::string_view name);  // "gsm8k"|"gsm"|"math" (and benchmark names); throws

enum class Method {
  None,        // nothing found
  Hashes,      // "#### N" (GSM8K gold)
  AnswerIs,    // "The answer is: X" / "The answer is X" (MetaMathQA)
  Boxed,       // last \boxed{...} / \fbox{...}
  ValueOfX,    // "The value of x is N" (backward questions)
  LastNumber,  // fallback: the last number in the text (reported as such)
  Bare,        // the text itself is a bare answer
};
const char* method_name(Method m);

struct Extracted {
  std::string answer;
  Method method = Method::None;
  bool found() const { return method != Method::None; }
};

// Extracts the final answer from a whole completion. Order: "The answer is", \boxed, "The value of
// x is", "####", then (only when allow_last_number) the last number in the text.
// A short text with none of these markers (e.g. "42" or "\frac{1}{2}") is returned as Bare.
Extracted extract(std::string_view text, Style style, bool allow_last_number = true);

// Gold answer from a reference solution: GSM8K "#### N" (commas removed), MATH last \boxed{}.
// Falls back to treating the text as a bare answer.
Extracted extract_gold(std::string_view solution, Style style);

}  // namespace metamath::answer
