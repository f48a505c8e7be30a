#pragma once
// Answer equivalence: is a predicted final answer the same as the gold one?
//
// GSM8K style: numbers with commas, "$", "%", unit words, fractions, decimals vs integers; clock
// times ("3:30 p.m." == "15:30" == "3:30", see numeric.h same_time); ratios: a gold written
// "A:B" (ASDiv) equals a predicted ratio with the same quotient ("10:12" for "5:6") and the
// predicted number A/B ("5/6", "0.8"). The question text is not seen here, so a gold "A:B" that
// is also a valid time ("7:50") accepts both readings, and a gold written as a number ("5/6")
// does not accept a predicted "5:6". MATH style compares "A:B" golds ("3:1") the same way.
// MATH style: LaTeX parsed into GiNaC expressions (see latex.h); exact comparison first (rationals,
// radicals), then symbolic (a-b simplifies to 0), then numeric at random points (relative 1e-6)
// when free variables remain; a decimal that rounds the exact value (relative 1e-4) counts as
// equal. Structured answers (tuples, intervals, unions, sets, matrices, several comma-separated
// solutions) compare element-wise; text and multiple-choice answers compare as normalised text.
//
// Every comparison has a hard time and input-size limit and never hangs.
#include <string>
#include <string_view>

#include "answer/extract.h"

namespace metamath::answer {

enum class Verdict { Equal, NotEqual, Unparsable };
const char* verdict_name(Verdict v);

struct Result {
  Verdict verdict = Verdict::Unparsable;
  std::string reason;  // human-readable: which rule decided, or why parsing failed
  bool equal() const { return verdict == Verdict::Equal; }
};

struct Limits {
  double time_ms = 100.0;        // wall-clock budget for one comparison
  std::size_t max_input = 4000;  // bytes per answer
  std::size_t max_expr_nodes = 2000;
};

// Compares two bare final answers (already extracted).
Result equivalent(std::string_view pred, std::string_view gold, Style style,
                  const Limits& lim = {});

// Normalises one MATH-style answer to a canonical string (used for hashing/dedup and round-trip
// tests): parse -> canonical printed form. Kind says how it was understood.
//
// The canonical form is LaTeX that this module parses back: expressions are expanded when that is
// cheap and their terms sorted, unordered kinds (Set, List) print their elements sorted, and big
// exact powers stay as powers ("2^{2008}"), so the output is the same in every run. Round trip
// means: equivalent(canonical, input) is Equal for every input, and for non-Text kinds
// normalize_math(canonical).canonical == canonical. Conventions: "50\%" is 50 (the sign is
// dropped), "90^\circ" is 90, trailing unit words ("5 cm", "3\text{ inches}") are dropped.
// Text canonical is the normalised text (lowercase, no \text{}, no spaces, "(c)" -> "c").
enum class Kind {
  Number,
  Expression,
  Equation,
  Tuple,
  Interval,
  Set,
  Matrix,
  List,
  Text,
  Empty,
  Time,   // GSM8K style only: "3:30 p.m."
  Ratio,  // GSM8K style only: "5:6"
};
const char* kind_name(Kind k);
struct Normalized {
  Kind kind = Kind::Empty;
  std::string canonical;  // for Text: the normalised text
  std::string error;      // non-empty when the LaTeX could not be parsed (kind is then Text)
};
Normalized normalize_math(std::string_view latex, const Limits& lim = {});

// How a (gold) answer is understood by equivalent() in the given style: in GSM8K style a plain
// number is Number; in both styles "H:MM" / "H:MM a.m." is Time, any other "A:B" is Ratio
// ("7:50", both a time and a ratio, is Time), and anything else is whatever normalize_math()
// makes of it. Text means the LaTeX parser gave up or the answer is words.
Kind answer_kind(std::string_view answer, Style style, const Limits& lim = {});

}  // namespace metamath::answer
