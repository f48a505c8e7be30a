#pragma once
// Final-answer extraction from a model completion or a gold solution.
//
// extract() looks for the answer markers that different models and harnesses end with, strongest
// first, and reports which one it used (Method, printed by method_name(), surfaced by `metamath
// score` as pred_method). The order depends on the benchmark style:
//
//   Style::Math   1. "The answer is: X" (MetaMathQA) / "The final answer is X" (lm-eval
//                    minerva_math: "Final Answer: The final answer is $X$. I hope it is correct.")
//                    / a bare "Final Answer: X" line (also "**Final Answer:** X")
//                 2. the last \boxed{} / \fbox{} (brace-matched); boxed answers separated only by
//                    commas, "and", '$' or whitespace combine into one list: "\boxed{1}, \boxed{2}"
//                    gives "1, 2"
//                 3. "The value of x is N" (backward questions)
//                 4. "#### N"
//                 5. the last LaTeX math span ($...$, $$...$$, \(...\), \[...\], or a bare
//                    \begin{pmatrix}...\end{pmatrix}-style matrix); matrices come out whole
//                 6. the last number (a fallback; never a number inside a matrix)
//   Style::Gsm8k  1, then 4 (GSM8K's own "#### N" ranks above \boxed), 2, 3, and 6. No math spans:
//                 GSM8K answers are plain numbers, and '$' there is usually currency ("$18.00").
//
// In both styles a short single-line text without markers ("42", "\frac{1}{2}", "$18") is itself
// the answer (Bare), checked just before the fallbacks; in Math style a single-line text that
// holds a math span not covering the whole text ("Answer $9$") gives the span instead.
// The marker's answer is cleaned: up to the end of its line (or its closing math delimiter),
// without a final period, " I hope it is correct.", or the $...$ / $$...$$ / \(...\) / \[...\]
// around it; a \boxed{} inside it is unwrapped.
//
// allow_last_number=false is strict mode, for gold extraction and the bootstrap's answer filter:
// no heuristic fallbacks (5 and 6), and no joining of boxed answers — the last \boxed{} alone, as
// MATH's gold rule takes it, so that a reference solution stays equal to its own gold answer
// ("the answers are $\boxed{-2}$ and $\boxed{1}$" has gold "1" in MATH).
#include <string>
#include <string_view>

namespace metamath::answer {

// Which benchmark family an answer belongs to: GSM8K-style plain numbers or MATH-style LaTeX.
enum class Style { Gsm8k, Math };
Style parse_style(std::string_view name);  // "gsm8k"|"gsm"|"math" (and benchmark names); throws

enum class Method {
  None,         // nothing found
  Hashes,       // "#### N" (GSM8K gold)
  AnswerIs,     // "The answer is: X" / "The answer is X" (MetaMathQA)
  FinalAnswer,  // "The final answer is X" (lm-evaluation-harness minerva_math)
  Boxed,        // last \boxed{...} / \fbox{...}, adjacent ones combined into a list
  ValueOfX,     // "The value of x is N" (backward questions)
  MathSpan,     // fallback: the last LaTeX math span (Style::Math only)
  LastNumber,   // fallback: the last number in the text (reported as such)
  Bare,         // the text itself is a bare answer
};
const char* method_name(Method m);  // "none", "hashes", "answer_is", "final_answer", "boxed", ...

struct Extracted {
  std::string answer;
  Method method = Method::None;
  bool found() const { return method != Method::None; }
};

// Extracts the final answer from a whole completion, in the order described above.
Extracted extract(std::string_view text, Style style, bool allow_last_number = true);

// Gold answer from a reference solution: GSM8K "#### N" (commas removed), MATH last \boxed{}.
// Falls back to extract() without the heuristic fallbacks (a marker or a bare answer); then a
// short text is itself the answer even where a prediction's bare-answer rule refuses it: in GSM8K
// style one line of at most 80 bytes with several numbers ("3:30 p.m.", "5:6", "-(1/3)"), in
// MATH style at most 200 bytes with line breaks read as spaces ("90\text{ square\nunits}").
Extracted extract_gold(std::string_view solution, Style style);

}  // namespace metamath::answer
