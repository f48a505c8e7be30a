#pragma once
// Backward questions from a computation graph (issue 18, item 2).
//
// For every maskable number of the question (symbolic_graph.h), the graph is replayed with the
// unknown x in the number's place: each literal takes the value of its sources, x (or x/100, 100/x
// ... by the form it was linked through) for the masked number, and every step becomes an exact
// rational function of x (GiNaC). The answer step gives f(x); f(x) = A is solved exactly
// (numerator of f - A, a polynomial; its real roots counted with Sturm sequences).
//
// When a literal's sources disagree under the mask (2 written as "2" and as "twice", a number of
// the question and an earlier step of the same value), every reading of the links is replayed
// (each such literal standing for one of its sources, at most kMaxReadings). The plausible
// readings are those that leave the fewest numbers of the question and steps unused (GSM8K's gold
// solutions use them all; a maximum matching of literals to sources), then that read the fewest
// literals through a derived form (a percentage's complement, a reciprocal, a step / 100) rather
// than the source's own value. Every plausible reading whose context fit (the words its sources
// share with the literals' lines, symbolic_graph.h) is within 1 of the best must pass the checks
// below; the best-fitting one is kept and written. Otherwise the mask is refused ("ambiguous
// link") and MaskOutcome::determined says whether x is determined under every reading.
//
// A mask (under the reading kept) is kept only when
//   - every literal of the answer's steps is linked;
//   - no step multiplies the masked number by itself ("4 x 4": one of the two is usually another
//     quantity of the same value that the question leaves implicit);
//   - f depends on x;
//   - a non-linear f only for a percentage (compounded growth: x% applied in several steps) and
//     only when no other number of the question has the masked value: elsewhere a square is
//     usually the masked number and an implicit count of the same value read as one;
//   - x = the masked number is the only solution: the only real root, or, for a positive masked
//     number and a non-linear equation, the only positive root (the other roots are named in the
//     solution).
// Exact rationals throughout; no floating point.
#include <ginac/ginac.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bootstrap/symbolic_graph.h"

namespace metamath::bootstrap::symbolic {

// Causes a mask is refused (MaskOutcome::cause); "" = verified.
inline constexpr const char* kNotMaskable = "not maskable (part of a time, range, word or ordinal)";
inline constexpr const char* kGraphNotLinked = "the graph does not link fully";
inline constexpr const char* kNotUsed = "not used by the answer's steps";
inline constexpr const char* kAmbiguous = "ambiguous link";
inline constexpr const char* kNoDependence = "the answer does not depend on it";
inline constexpr const char* kNotUnique = "the solution is not unique";
inline constexpr const char* kNonlinearCount =
    "non-linear in a number that is not a percentage (usually a misread implicit count)";
inline constexpr const char* kNonlinearShared =
    "non-linear, and another number of the question has the same value";
inline constexpr const char* kSelfProduct =
    "a step multiplies the masked number by itself (likely a mislinked equal number)";
inline constexpr const char* kNotASolution = "the masked value does not solve f(x) = A";

enum class EquationKind { Linear, Denominator, Nonlinear };
const char* equation_kind_name(EquationKind k);  // "linear", "x in a denominator", "non-linear"

struct MaskOutcome {
  int number = -1;  // index into Graph::numbers
  std::string cause;
  std::string detail;  // for an ambiguous link: the literal and its disagreeing sources
  bool verified() const { return cause.empty(); }
  std::string masked_question;  // the question with the number replaced by mask_text
  // Symbolic values of the steps under this mask (normalised), and of each step's nodes; known[s]
  // is false for a step outside the answer's cone whose literals do not all resolve.
  std::vector<GiNaC::ex> values;
  std::vector<std::vector<GiNaC::ex>> node_values;
  std::vector<bool> known;
  GiNaC::ex f;  // the answer in terms of x
  EquationKind kind = EquationKind::Linear;
  std::vector<GiNaC::numeric> other_roots;  // rational roots outside the domain (non-linear)
  int real_roots = 0;                       // distinct real roots of the numerator of f - A
  // An ambiguous link refused (cause kAmbiguous): every reading of the ambiguous literals was
  // replayed and solved; `determined` is true when each gives x = the masked number as its only
  // solution, `readings` counts them. For a verified mask: determined = true, and `readings` is
  // the number of plausible readings that were checked (1 without an ambiguous link).
  bool determined = false;
  int readings = 0;
};
inline constexpr int kMaxReadings = 256;

// Replays the graph with number `m` masked; fills values, f and the cause (without solving).
MaskOutcome replay(const Graph& g, int m);

// Every maskable number's outcome, in question order (numbers that cannot be masked at all are
// listed with kNotMaskable only when they are digits; words that are not numbers are left out).
std::vector<MaskOutcome> backward_masks(const Graph& g);

// Distinct real roots of the polynomial p in x on (lo, +inf) (lo given) or on the whole line.
int count_real_roots(const GiNaC::ex& p, const std::optional<GiNaC::numeric>& lo);

// The FOBAR question (MetaMathQA's form): "{masked question}\nIf we know the answer to the above
// question is {A}, what is the value of unknown variable x?".
std::string fobar_question(std::string_view masked_question, std::string_view answer);

// The SV question by template, when the masked question's last sentence is a question of a
// supported form; the sentence becomes a statement holding the answer and " What is the value of
// unknown variable x?" follows. Supported (case-insensitive; an "If ..., " clause before the
// question is kept):
//   How many N (are|were|is|was) there R?       -> There are A N R.
//   How many N (do|does|did) S V R?             -> S V(-s|-ed) A N R.
//   How many N (will|can|could|would|should|must|might) S V R?  -> S will V A N R.
//   How many N (are|were|is|was) (left|remaining|needed|in|on|...) R?  -> A N are left R.
//   How much money (do|does|did|will|...) S V R? and How much (do|does|did|...) S V R? with V a
//   money verb (spend, pay, earn, ...)          -> S V(-s|-ed) $A R.
//   What (is|was|will be) the N R?              -> The N R is A.
//   How old (is|was|will) S (be)? R?            -> S is A years old R.
// S is a pronoun or one to four words ending before a known verb; V must be a known verb (about
// 200 common ones, with their irregular forms). Anything else: nullopt.
std::optional<std::string> sv_question(std::string_view masked_question, std::string_view answer);

}  // namespace metamath::bootstrap::symbolic
