#pragma once
// Internal to the LaTeX answer reader (latex.h is its interface; nothing outside src/answer/latex*
// includes this). The reader is split by concern, one file each:
//   latex.cpp        parse_answer(): clean-up, then the parser, falling back to a Text value;
//                    and the symbol table every stage shares
//   latex_arith.cpp  guarded GiNaC arithmetic: size checks before anything that could explode
//   latex_clean.cpp  text clean-up before parsing (spacing, units, text groups) and normalize_text
//   latex_parse.cpp  the scannerless recursive-descent parser
//   latex_print.cpp  the canonical printer
// This header declares what those files share.
#include <ginac/ginac.h>

#include <cctype>
#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "answer/latex.h"

namespace metamath::answer::latex::internal {

// ---------------------------------------------------------------------------------------------
// Symbols. GiNaC orders terms by symbol serial numbers, so every symbol an answer can name is
// created once per thread in a fixed order; printed canonical forms are then deterministic.
// Names are stored in the LaTeX spelling the parser reads back ("x", "\alpha", "a_{1}").

inline constexpr const char* kGreek[] = {
    "alpha",    "beta",    "gamma", "delta",  "epsilon", "varepsilon", "zeta",  "eta",   "theta",
    "vartheta", "iota",    "kappa", "lambda", "mu",      "nu",         "xi",    "rho",   "sigma",
    "tau",      "upsilon", "phi",   "varphi", "chi",     "psi",        "omega", "Gamma", "Delta",
    "Theta",    "Lambda",  "Xi",    "Sigma",  "Phi",     "Psi",        "Omega"};

class Symbols {
 public:
  Symbols() {
    get("\\infty");
    get("\\pm");
    for (char c = 'a'; c <= 'z'; ++c) get(std::string(1, c));
    for (char c = 'A'; c <= 'Z'; ++c) get(std::string(1, c));
    for (const char* g : kGreek) get(std::string("\\") + g);
  }
  const GiNaC::realsymbol& get(const std::string& name) {
    auto it = map_.find(name);
    if (it == map_.end()) it = map_.emplace(name, GiNaC::realsymbol(name)).first;
    return it->second;
  }

 private:
  std::map<std::string, GiNaC::realsymbol> map_;
};

// The thread's symbol table (defined in latex.cpp).
Symbols& symbols();
// The symbol standing for \pm while an answer is parsed; the parser expands it into the two
// sign choices.
const GiNaC::symbol& pm_symbol();
// Functions accepted as commands (\sin) and, for GiNaC-style input, as bare words (sin(x)).
const std::set<std::string>& function_names();

inline bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
inline bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
inline bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Internal: malformed input (becomes a Text value with an error), as opposed to ParseError
// (limits), which propagates to the caller.
struct SyntaxError {
  std::string msg;
};

[[noreturn]] inline void syntax(const std::string& msg) { throw SyntaxError{msg}; }

// ---------------------------------------------------------------------------------------------
// Guarded arithmetic (latex_arith.cpp). Each operation checks sizes before GiNaC evaluates and
// throws ParseError past the limits, or SyntaxError for mathematically invalid input.

// Starts a new answer: forgets the big numbers held for the previous one (parse_answer).
void reset_held_bits();
// Throws ParseError when e is a number too large to work with.
void check_size(const GiNaC::ex& e);
GiNaC::ex safe_pow(const GiNaC::ex& base, const GiNaC::ex& expo);
GiNaC::ex safe_div(const GiNaC::ex& a, const GiNaC::ex& b);
GiNaC::ex safe_mul(const GiNaC::ex& a, const GiNaC::ex& b);
GiNaC::ex safe_factorial(const GiNaC::ex& a);
GiNaC::ex safe_binomial(const GiNaC::ex& n, const GiNaC::ex& k);
// Exact rational from a decimal literal "12.50" (no floating point involved).
GiNaC::ex decimal_literal(const std::string& digits, std::size_t frac_digits, long exp10);

// ---------------------------------------------------------------------------------------------
// Clean-up before parsing (latex_clean.cpp), in the order parse_answer applies it.

// Spacing commands, \left/\right, degrees, percent, dollars, \dfrac -> \frac.
std::string clean(std::string_view in);
// Unwraps \text{...}-style groups; false when real text remains (the answer is Text).
bool strip_text_groups(std::string& s);
// "\frac{12}{5,525}": thousands commas inside a brace group that holds only a number.
std::string remove_thousands_in_groups(const std::string& s);
// Trailing unit words without \text: "18 dollars", "5 sq units", "10 cm".
void strip_trailing_words(std::string& s);
// "422_8", "152A_{11}": a number written in another base (compared as text).
bool is_base_number(const std::string& s);
// A run of 3+ letters that is not a command or function name: the answer is prose.
bool has_word(const std::string& s);
// "1,000", "-12,345.5": a lone number whose commas are thousands separators.
bool is_thousands_number(const std::string& s);

// ---------------------------------------------------------------------------------------------
// The parser (latex_parse.cpp). Parses cleaned-up text; throws SyntaxError for malformed input
// and ParseError for limit violations.
Value parse_math(const std::string& s, const ParseLimits& lim, const Deadline& deadline);

}  // namespace metamath::answer::latex::internal
