#pragma once
// LLM-free backward questions from GSM8K's calculator annotations (issue 18).
//
// symbolic_backward(question, solution, answer) builds the solution's computation graph
// (symbolic_graph.h), masks every number of the question the answer depends on and solves for it
// exactly (symbolic_backward.h), and writes a FOBAR record (MetaMathQA's query form) and, where the
// question's last sentence has a supported form, an SV record, each with a step-by-step backward
// solution ending "The value of x is N." / "The answer is: N" (symbolic_solution.h).
//
// This header holds no GiNaC type. GiNaC is not thread-safe: call from one thread at a time (the
// calls serialise on a mutex of this module; answer::equivalent uses GiNaC under its own).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace metamath::bootstrap {

struct SymbolicMask {
  std::string written;  // the number as written in the question ("$1,200", "five", "half")
  std::size_t offset = 0;
  std::string x;       // the masked value ("1200", "5", "50" for half as x%)
  std::string cause;   // "" when verified, else why not (symbolic_backward.h's causes)
  std::string detail;  // ambiguous link: which literal and sources
  // x is the only solution under every reading of the links (true when verified; for an
  // ambiguous link, whether each reading was solved to x alone: see symbolic_backward.h).
  bool determined = false;
  int readings = 0;
  std::string equation;  // "1.5x = 72" (when f was computed)
  std::string kind;      // "linear", "x in a denominator", "non-linear" (verified)
  std::string masked_question;
  bool fobar = false, sv = false;  // records written
  std::string no_sv;               // why no SV record ("" when written)
  std::string no_solution;         // why the solution writer gave up ("" when it did not)
};

struct SymbolicRecord {
  std::string type;  // "FOBAR" or "SV"
  std::string query, response;
  std::string x;         // the gold answer of the record (the masked value)
  std::string masked;    // the number as written in the question
  std::string kind;      // equation kind
  std::size_t mask = 0;  // index into SymbolicResult::masks
};

struct SymbolicResult {
  std::string failure;                // "" when the graph links fully
  std::vector<std::string> unlinked;  // "step 3: 14400"
  std::size_t steps = 0;              // annotations
  std::vector<SymbolicMask> masks;    // every candidate number, in question order
  std::vector<SymbolicRecord> records;
  bool linked() const { return failure.empty(); }
  std::size_t verified() const;    // masks whose x is verified (records are written for these)
  std::size_t determined() const;  // masks whose x is determined under every reading
};

struct SymbolicOptions {
  bool fobar = true, sv = true;
};

SymbolicResult symbolic_backward(std::string_view question, std::string_view solution,
                                 std::string_view answer, const SymbolicOptions& opts = {});

}  // namespace metamath::bootstrap
