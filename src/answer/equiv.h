#pragma once
// Answer equivalence: is a predicted final answer the same as the gold one?
//
// GSM8K style: numbers with commas, "$", "%", unit words, fractions, decimals vs integers.
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
enum class Kind { Number, Expression, Equation, Tuple, Interval, Set, Matrix, List, Text, Empty };
const char* kind_name(Kind k);
struct Normalized {
  Kind kind = Kind::Empty;
  std::string canonical;  // for Text: the normalised text
  std::string error;      // non-empty when the LaTeX could not be parsed (kind is then Text)
};
Normalized normalize_math(std::string_view latex, const Limits& lim = {});

}  // namespace metamath::answer
