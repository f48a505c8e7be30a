#pragma once
// A recursive-descent parser for the LaTeX found in final math answers (MATH "\boxed{...}" contents
// and model outputs), producing GiNaC expressions wrapped in a small structure tree (tuples,
// intervals, sets, matrices, lists, equations).
//
// Hand-written because Debian packages no LaTeX-math parser; GiNaC's own parser only reads its
// native syntax (which this parser also accepts for the subset it prints: sqrt(), *, ^, ...).
//
// Safety: parsing is linear in the input, recursion depth and node count are capped, and every
// GiNaC operation that could create a huge exact number (integer powers, factorials, binomials)
// is size-checked before GiNaC evaluates it, so adversarial input fails fast with ParseError.
#include <ginac/ginac.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace metamath::answer::latex {

// Thrown for anything the parser cannot or will not (size/time limits) turn into a Value.
class ParseError : public metamath::Error {
 public:
  explicit ParseError(const std::string& msg) : metamath::Error(msg) {}
};

// Wall-clock deadline shared by parsing and comparison steps.
class Deadline {
 public:
  explicit Deadline(double ms)
      : end_(std::chrono::steady_clock::now() +
             std::chrono::microseconds(static_cast<long long>(ms * 1000.0))) {}
  bool expired() const { return std::chrono::steady_clock::now() > end_; }

 private:
  std::chrono::steady_clock::time_point end_;
};

struct ParseLimits {
  std::size_t max_input = 4000;       // bytes
  std::size_t max_expr_nodes = 2000;  // syntax nodes built while parsing
  std::size_t max_depth = 200;        // nesting of groups / recursive rules
};

// The shape of a parsed answer.
enum class VType {
  Empty,     // nothing (empty string)
  Scalar,    // one expression (number or expression with free symbols)
  Relation,  // a = b, a < b <= c, x \in S  (sides[i] op[i] sides[i+1])
  Tuple,     // (a, b, ...): ordered, at least two elements
  Interval,  // one interval; items = {lo, hi}; left_closed/right_closed
  Union,     // several intervals joined by \cup; items are Interval values
  Set,       // \{a, b\}: unordered
  Matrix,    // rows of scalars
  List,      // top-level comma-separated answers: unordered
  Text,      // words, multiple choice letters, anything not parsed as math
};

struct Value {
  VType type = VType::Empty;
  GiNaC::ex expr;                // Scalar
  int decimals = -1;             // Scalar written as a lone decimal literal: digits after the point
  bool inexact = false;          // Scalar contains a decimal literal somewhere
  std::vector<Value> items;      // Tuple / Interval {lo, hi} / Union / Set / List / Relation sides
  std::vector<std::string> ops;  // Relation: "=", "<", "<=", ">", ">=", "!=", "in"
  bool left_closed = false, right_closed = false;  // Interval
  std::vector<std::vector<Value>> rows;            // Matrix
  std::string text;                                // Text: normalised text
  std::string error;                               // Text produced because parsing failed: why
};

// Parses one answer. Never throws for ordinary malformed LaTeX: text-like or unparsable input
// becomes a Text value (with `error` set when it looked like math but failed to parse).
// Throws ParseError only for limit violations (size, nodes, depth, deadline, huge numbers).
Value parse_answer(std::string_view s, const ParseLimits& lim, const Deadline& deadline);

// Canonical printed form; parse_answer(print(v)) is equivalent to v (see equiv.cpp tests). With a
// deadline, throws ParseError once it has passed (printing a big expanded sum is work too).
std::string print(const Value& v, const Deadline* deadline = nullptr);
// Canonical form of one GiNaC expression in the LaTeX dialect parse_answer reads.
std::string print_expr(const GiNaC::ex& e);

// Evaluates the big exact powers and factorials the parser kept unevaluated ("2^{2008}", "50!");
// their total size is bounded at parse time.
GiNaC::ex unhold(const GiNaC::ex& e);

// Upper bound on the number of terms expand() would produce, for e or for any subexpression it
// multiplies out on the way (a base under a symbolic power, a function argument); guards against
// (a+b+c)^500. 1e18 (never expand) also when its coefficients would exceed ~20k digits.
double expanded_terms(const GiNaC::ex& e);
// Bound on the work of e.expand(), which cannot be interrupted: its terms times the distinct
// factors a term can hold (symbols, constants, powers with symbolic exponents), since GiNaC merges
// the factors of every product it forms, plus a weight per numeric radical (GiNaC evaluates
// "(82/125)^{1/6}" again in every product: 100 units) and the 64-bit limbs of its largest
// coefficient past the first. "(a+b)(c+d)...(v+w)" is 1024 terms of 20 factors (8 ms);
// "(x+1)(x+2)...(x+10)" 1024 terms of one (0.07 ms).
double expand_work(const GiNaC::ex& e);
// The bound below which the checker and the printer multiply out (about 2 ms here, 20 ms under
// the fuzzer's sanitizers).
inline constexpr double kMaxExpandWork = 4000;

// Normalised text used for text / multiple-choice comparison: lowercase, \text{} wrappers and
// spaces and "$" removed, trailing period dropped, "(c)" -> "c".
std::string normalize_text(std::string_view s);

// The symbol standing for infinity (\infty) in intervals; never evaluated numerically.
const GiNaC::symbol& infinity_symbol();

}  // namespace metamath::answer::latex
