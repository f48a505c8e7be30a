#pragma once
// Step-by-step backward solutions written from the graph (issue 18, item 3).
//
// The response restates the GSM8K solution with x in the masked number's place, line by line:
//   - an annotated step "48/2 = <<48/2=24>>24" becomes "x/2" (its expression with x, "= its
//     simplified value" when that reads differently: "x + x/2 = 1.5x");
//   - other numbers of a line are kept when they do not depend on x, replaced by their value in x
//     when they do (the masked number itself becomes x), and a line holding a number that cannot be
//     told apart (no source, or sources that disagree under the mask) is replaced by a plain
//     restatement of its steps ("x + 50 = x + 50"), or dropped when none of its steps matters;
//     lines of steps the answer does not depend on are dropped;
// then the equation f(x) = A ("We are given that the answer to the question is A, so we can
// write: 1.5x = 72."), the solving steps, and the closing lines "The value of x is N." and "The
// answer is: N". A linear f is solved one operation at a time (subtract/add the constant, divide
// or multiply by the coefficient); with x in a denominator both sides are first multiplied by it;
// a non-linear equation is said to be so, brought to p(x) = 0, factored, and its roots outside x >
// 0 named and discarded. Every equation written is checked with GiNaC before it is written: each
// restated step must equal its simplified value identically and take the original result at
// x = N, and each equation of the solving part must hold at x = N.
#include <string>

#include "bootstrap/symbolic_backward.h"
#include "bootstrap/symbolic_graph.h"

namespace metamath::bootstrap::symbolic {

enum class BackwardType { FOBAR, SV };

struct Written {
  bool ok = false;
  std::string text;    // the response (ok)
  std::string reason;  // why no response was written (!ok)
};

// `answer` is the gold answer as written in the question ("72").
Written write_solution(const Graph& g, const MaskOutcome& o, BackwardType type,
                       const std::string& answer);

// How an expression in x is printed in responses: "1.5x - 50000", "x/2", "(2/3)x", "120/x",
// "(x + 6)/(2x)", "x^2 + 3".
std::string format_expr(const GiNaC::ex& e);

}  // namespace metamath::bootstrap::symbolic
