// LaTeX answer parser: clean-up pass (spacing, units, degrees, percent, text groups), then a
// scannerless recursive-descent parser into GiNaC, then a canonical printer. See latex.h.
#include "answer/latex.h"

#include <cln/integer.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "core/text.h"

namespace metamath::answer::latex {

// An exact power too big to print usefully ("2^{2008}"), kept as an opaque function so GiNaC's
// automatic evaluation does not expand it; unhold() turns it into a real power when comparing.
DECLARE_FUNCTION_2P(bigpow)
REGISTER_FUNCTION(bigpow, dummy())

namespace {

using GiNaC::ex;
using GiNaC::numeric;

// ---------------------------------------------------------------------------------------------
// Symbols. GiNaC orders terms by symbol serial numbers, so every symbol an answer can name is
// created once per thread in a fixed order; printed canonical forms are then deterministic.
// Names are stored in the LaTeX spelling the parser reads back ("x", "\alpha", "a_{1}").

const char* const kGreek[] = {
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

Symbols& symbols() {
  thread_local Symbols s;
  return s;
}

const GiNaC::symbol& pm_symbol() { return symbols().get("\\pm"); }

// Functions accepted as commands (\sin) and, for GiNaC-style input, as bare words (sin(x)).
const std::set<std::string>& function_names() {
  static const std::set<std::string> f = {"sin",    "cos",    "tan",    "sec",  "csc",  "cot",
                                          "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
                                          "ln",     "log",    "exp",    "sqrt", "abs"};
  return f;
}

bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Internal: malformed input (becomes a Text value with an error), as opposed to ParseError
// (limits), which propagates to the caller.
struct SyntaxError {
  std::string msg;
};

[[noreturn]] void syntax(const std::string& msg) { throw SyntaxError{msg}; }

// ---------------------------------------------------------------------------------------------
// Size guards applied before GiNaC evaluates anything that could explode.

std::size_t bit_length(const numeric& n) {
  if (!n.is_rational()) return 0;
  numeric num = GiNaC::abs(n.numer()), den = n.denom();
  return static_cast<std::size_t>(cln::integer_length(cln::the<cln::cl_I>(num.to_cl_N())) +
                                  cln::integer_length(cln::the<cln::cl_I>(den.to_cl_N())));
}

constexpr std::size_t kMaxBits = 200000;  // ~60k decimal digits: cheap for CLN, never a hang
constexpr long kMaxExponent = 10000;      // |n| in x^n for any non-trivial base
// Exact powers and factorials larger than this many bits are kept unevaluated (GiNaC "hold") so
// that "2^{2008}" prints back as itself, not as 605 digits; all of them together may not exceed
// kMaxHeldBits, which bounds the work when unhold() finally evaluates them for comparison.
constexpr double kHoldBits = 256;
constexpr double kMaxHeldBits = 400000;
thread_local double held_bits = 0;  // reset by parse_answer

ex hold_big(const ex& e, double bits) {
  held_bits += bits;
  if (held_bits > kMaxHeldBits) throw ParseError("numbers too large in total");
  return e;
}

void check_size(const ex& e) {
  if (GiNaC::is_a<numeric>(e)) {
    const numeric& n = GiNaC::ex_to<numeric>(e);
    if (n.is_rational() && bit_length(n) > kMaxBits) throw ParseError("number too large");
    if (!n.is_rational() && (bit_length(n.real()) > kMaxBits || bit_length(n.imag()) > kMaxBits))
      throw ParseError("number too large");
  }
}

// Does e contain a big number kept unevaluated (bigpow or a held factorial)?
bool has_held(const ex& e) {
  if (GiNaC::is_a<GiNaC::function>(e)) {
    const std::string& n = GiNaC::ex_to<GiNaC::function>(e).get_name();
    if (n == "bigpow" || n == "factorial") return true;
  }
  for (std::size_t i = 0; i < e.nops(); ++i)
    if (has_held(e.op(i))) return true;
  return false;
}

ex safe_pow(const ex& base, const ex& expo) {
  bool trivial = base.is_zero() || base.is_equal(1) || base.is_equal(-1);
  if (!trivial && has_held(expo)) throw ParseError("exponent too large");
  if (has_held(base) &&
      !(GiNaC::is_a<numeric>(expo) && GiNaC::abs(GiNaC::ex_to<numeric>(expo)) <= 1))
    throw ParseError("power of a huge number");
  if (GiNaC::is_a<numeric>(expo)) {
    const numeric& x = GiNaC::ex_to<numeric>(expo);
    bool trivial_base = base.is_zero() || base.is_equal(1) || base.is_equal(-1);
    if (!trivial_base) {
      if (!x.is_rational()) throw ParseError("complex exponent not supported");
      if (GiNaC::abs(x) > kMaxExponent) throw ParseError("exponent too large");
      if (GiNaC::is_a<numeric>(base)) {
        const numeric& b = GiNaC::ex_to<numeric>(base);
        double bits = static_cast<double>(bit_length(b.real()) + bit_length(b.imag()) + 1) *
                      GiNaC::abs(x).to_double();
        if (bits > static_cast<double>(kMaxBits)) throw ParseError("power too large");
        if (bits > kHoldBits && x.is_integer() && b.is_rational())
          return hold_big(bigpow(base, expo), bits);
      }
    }
    if (base.is_zero() && x.is_negative()) syntax("division by zero");
  }
  // GiNaC throws for these (and leaks the half-built power when it does): reject them first.
  if (base.is_zero() && !(GiNaC::is_a<numeric>(expo) && GiNaC::ex_to<numeric>(expo).is_real() &&
                          GiNaC::ex_to<numeric>(expo).is_positive()))
    syntax("0 to a zero, negative or non-numeric power");
  ex r = GiNaC::pow(base, expo);
  check_size(r);
  return r;
}

ex safe_div(const ex& a, const ex& b) {
  if (b.is_zero()) syntax("division by zero");
  ex r = a / b;
  check_size(r);
  return r;
}

ex safe_mul(const ex& a, const ex& b) {
  ex r = a * b;
  check_size(r);
  return r;
}

ex safe_factorial(const ex& a) {
  if (has_held(a)) throw ParseError("factorial too large");
  if (GiNaC::is_a<numeric>(a)) {
    const numeric& n = GiNaC::ex_to<numeric>(a);
    if (!n.is_nonneg_integer()) syntax("factorial of a non-natural number");
    if (n > 3000) throw ParseError("factorial too large");
    double bits = std::lgamma(n.to_double() + 1) / std::log(2.0);
    if (bits > kHoldBits) return hold_big(GiNaC::factorial(a).hold(), bits);
  }
  return GiNaC::factorial(a);
}

ex safe_binomial(const ex& n, const ex& k) {
  if (has_held(n) || has_held(k)) throw ParseError("binomial too large");
  if (GiNaC::is_a<numeric>(n) && GiNaC::abs(GiNaC::ex_to<numeric>(n)) > 20000)
    throw ParseError("binomial too large");
  if (GiNaC::is_a<numeric>(n) && GiNaC::is_a<numeric>(k)) {
    if (!GiNaC::ex_to<numeric>(n).is_integer() || !GiNaC::ex_to<numeric>(k).is_integer())
      syntax("binomial of non-integers");
  }
  return GiNaC::binomial(n, k);
}

// Exact rational from a decimal literal "12.50" (no floating point involved).
ex decimal_literal(const std::string& digits, std::size_t frac_digits, long exp10) {
  if (digits.size() > 400) throw ParseError("number literal too long");
  numeric v(digits.c_str());
  long e = exp10 - static_cast<long>(frac_digits);
  if (std::labs(e) > 1000) throw ParseError("exponent of number literal too large");
  numeric p = GiNaC::pow(numeric(10), numeric(std::labs(e)));
  return e >= 0 ? ex(v * p) : ex(v / p);
}

// ---------------------------------------------------------------------------------------------
// Clean-up pass: spacing commands, \left/\right, degrees, percent, dollars, \dfrac -> \frac.
// Decisions: "50\%" means 50 (the percent sign is dropped, never divided by 100); "90^\circ"
// means 90; "\$5" means 5.

std::string clean(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  int skip_close_brace = 0;  // "^{\circ}": the "}" that closed the removed group
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '\\' && i + 1 < in.size()) {
      char n = in[i + 1];
      if (is_alpha(n)) {
        std::size_t j = i + 1;
        while (j < in.size() && is_alpha(in[j])) ++j;
        std::string name(in.substr(i + 1, j - i - 1));
        i = j - 1;
        if (name == "left" || name == "right" || name == "bigl" || name == "bigr" ||
            name == "big" || name == "Big" || name == "Bigl" || name == "Bigr") {
          if (i + 1 < in.size() && in[i + 1] == '.') ++i;  // \left. is an invisible delimiter
        } else if (name == "displaystyle" || name == "textstyle" || name == "limits" ||
                   name == "phantom" || name == "hphantom") {
        } else if (name == "quad" || name == "qquad") {
          out += ' ';
        } else if (name == "dfrac" || name == "tfrac" || name == "cfrac") {
          out += "\\frac";
        } else if (name == "dbinom" || name == "tbinom") {
          out += "\\binom";
        } else if (name == "lvert" || name == "rvert" || name == "vert" || name == "mid") {
          out += '|';
        } else if (name == "lbrace") {
          out += "\\{";
        } else if (name == "rbrace") {
          out += "\\}";
        } else if (name == "circ" || name == "degree") {
          // Drop a dangling "^" or "^{" that introduced the degree sign.
          std::size_t k = out.size();
          while (k > 0 && is_space(out[k - 1])) --k;
          if (k > 0 && out[k - 1] == '^') {
            out.resize(k - 1);
          } else if (k > 1 && out[k - 1] == '{' && out[k - 2] == '^') {
            out.resize(k - 2);
            ++skip_close_brace;
          }
        } else {
          out += '\\';
          out += name;
        }
        continue;
      }
      if (n == '!' || n == ',') {  // thin spaces: removed so "1,\!000" and "1\,000" read as 1000
        ++i;
        continue;
      }
      if (n == ';' || n == ':' || n == ' ') {
        out += ' ';
        ++i;
        continue;
      }
      if (n == '%' || n == '$') {
        ++i;
        continue;
      }
      out += c;
      out += n;
      ++i;
      continue;
    }
    if (c == '}' && skip_close_brace > 0) {
      std::size_t k = out.size();
      while (k > 0 && is_space(out[k - 1])) --k;
      out.resize(k);
      --skip_close_brace;
      continue;
    }
    if (c == '%' || c == '$') continue;
    if (c == '~') {
      out += ' ';
      continue;
    }
    if (static_cast<unsigned char>(c) == 0xC2 && i + 1 < in.size() &&
        static_cast<unsigned char>(in[i + 1]) == 0xB0) {  // U+00B0 degree sign
      ++i;
      continue;
    }
    out += c;
  }
  out = text::replace_all(out, "{,}", ",");
  // Trailing punctuation of a sentence ("5.", "\text{(E)},").
  for (;;) {
    std::string_view t = text::trim(out);
    if (!t.empty() && (t.back() == '.' || t.back() == ',') &&
        !(t.size() >= 2 && t[t.size() - 2] == '\\')) {
      out = std::string(t.substr(0, t.size() - 1));
      continue;
    }
    out = std::string(t);
    break;
  }
  return out;
}

const char* const kTextCommands[] = {"\\textbf", "\\textrm", "\\textnormal",
                                     "\\textit", "\\text",   "\\mbox",
                                     "\\mathrm", "\\mathbf", "\\operatorname"};

// If s[pos..] starts a text command with a braced argument, its length and argument bounds.
bool text_group_at(const std::string& s, std::size_t pos, std::size_t* open, std::size_t* close,
                   std::string* cmd) {
  for (const char* tc : kTextCommands) {
    std::string_view t(tc);
    if (s.compare(pos, t.size(), t) != 0) continue;
    std::size_t j = pos + t.size();
    if (j < s.size() && is_alpha(s[j])) continue;  // a longer command name
    while (j < s.size() && s[j] == ' ') ++j;
    if (j >= s.size() || s[j] != '{') return false;
    std::size_t e = text::match_brace(s, j);
    if (e == std::string::npos) return false;
    *open = j;
    *close = e;
    *cmd = std::string(t);
    return true;
  }
  return false;
}

bool is_words(std::string_view c) {  // letters, spaces, periods (e.g. " sq. units")
  bool letter = false;
  for (char ch : c) {
    if (is_alpha(ch)) {
      letter = true;
    } else if (ch != ' ' && ch != '.') {
      return false;
    }
  }
  return letter;
}

bool is_mathy(std::string_view c) {  // digits and operators only: "\text{5}" -> 5
  bool digit = false;
  for (char ch : c) {
    if (is_digit(ch)) {
      digit = true;
    } else if (std::string_view(" .+-/()").find(ch) == std::string_view::npos) {
      return false;
    }
  }
  return digit;
}

bool is_clock_word(std::string_view c) {
  std::string l = text::to_lower(text::collapse_spaces(c));
  l = text::replace_all(l, ".", "");
  l = text::replace_all(l, " ", "");
  return l == "am" || l == "pm";
}

// After a unit group: only "^2", "^{3}", spaces remain?
bool only_unit_tail(std::string_view rest, std::size_t* consumed) {
  std::size_t i = 0;
  while (i < rest.size() && rest[i] == ' ') ++i;
  if (i < rest.size() && rest[i] == '^') {
    ++i;
    if (i < rest.size() && is_digit(rest[i])) {
      ++i;
    } else if (i + 2 < rest.size() && rest[i] == '{' && is_digit(rest[i + 1]) &&
               rest[i + 2] == '}') {
      i += 3;
    } else {
      return false;
    }
  }
  while (i < rest.size() && rest[i] == ' ') ++i;
  *consumed = i;
  return i == rest.size();
}

// Rewrites \text{...}-style groups: joiners ("and", "or") become commas, numbers are unwrapped,
// trailing unit words are dropped. Returns false when real text remains (the answer is Text).
bool strip_text_groups(std::string& s) {
  for (std::size_t pos = 0; pos < s.size();) {
    std::size_t open, close;
    std::string cmd;
    if (s[pos] != '\\' || !text_group_at(s, pos, &open, &close, &cmd)) {
      ++pos;
      continue;
    }
    std::string content = s.substr(open + 1, close - open - 1);
    std::string_view c = text::trim(content);
    std::string lc = text::to_lower(c);
    std::string joined = text::replace_all(text::replace_all(lc, "and", ""), "or", "");
    joined = std::string(text::trim(text::replace_all(joined, ",", "")));
    std::string replacement;
    std::size_t end = close + 1;
    std::string prefix(text::trim(std::string_view(s).substr(0, pos)));
    if (c.empty()) {
      replacement = " ";
    } else if (joined.empty()) {  // "\text{ and }", "\text{, or }"
      replacement = ",";
    } else if (is_mathy(c) || cmd == "\\mathbf" || cmd == "\\mathrm" || cmd == "\\operatorname") {
      replacement = " " + std::string(c) + " ";
    } else {
      std::size_t tail = 0;
      bool unit = !prefix.empty() && is_words(c) && !is_clock_word(c) &&
                  only_unit_tail(std::string_view(s).substr(close + 1), &tail);
      if (!unit) return false;
      end = close + 1 + tail;
      replacement = "";
    }
    s = s.substr(0, pos) + replacement + s.substr(end);
    pos += replacement.size();
  }
  return true;
}

// Trailing unit words without \text: "18 dollars", "5 sq units", "10 cm".
void strip_trailing_words(std::string& s) {
  for (;;) {
    std::string_view t = text::trim(s);
    std::size_t e = t.size();
    // "15 cm^2", "3 m^{3}": the power belongs to the unit.
    if (e >= 3 && is_digit(t[e - 1]) && t[e - 2] == '^' && is_alpha(t[e - 3])) {
      e -= 2;
    } else if (e >= 5 && t[e - 1] == '}' && is_digit(t[e - 2]) && t[e - 3] == '{' &&
               t[e - 4] == '^' && is_alpha(t[e - 5])) {
      e -= 4;
    }
    std::size_t b = e;
    while (b > 0 && (is_alpha(t[b - 1]) || t[b - 1] == '.')) --b;
    std::string word(t.substr(b, e - b));
    std::size_t letters = std::count_if(word.begin(), word.end(), is_alpha);
    if (b == 0 || t[b - 1] != ' ' || letters < 2 || function_names().count(word) ||
        is_clock_word(word) || e == b)
      return;
    std::string_view before = text::trim(t.substr(0, b));
    if (before.empty()) return;
    char last = before.back();
    if (!(is_digit(last) || last == '}' || last == ')' || is_alpha(last))) return;
    s = std::string(before);
  }
}

// A run of 3+ letters outside a command name (and not a known function or environment name)
// marks prose: "Monday", "odd", "neither".
bool has_word(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    if (!is_alpha(s[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && is_alpha(s[j])) ++j;
    bool command = i > 0 && s[i - 1] == '\\';
    bool env = (i >= 7 && s.compare(i - 7, 7, "\\begin{") == 0) ||
               (i >= 5 && s.compare(i - 5, 5, "\\end{") == 0);
    std::string w = s.substr(i, j - i);
    if (!command && !env && w.size() >= 3 && !function_names().count(w) && w != "pi" && w != "Pi")
      return true;
    i = j;
  }
  return false;
}

bool is_base_number(const std::string& s) {  // "422_8", "152A_{11}", "1110_4"
  std::string t;
  for (char c : s)
    if (c != ' ') t += c;
  std::size_t u = t.find('_');
  if (u == std::string::npos || u == 0) return false;
  for (std::size_t i = 0; i < u; ++i)
    if (!is_digit(t[i]) && !(t[i] >= 'A' && t[i] <= 'Z') && t[i] != '.') return false;
  if (!is_digit(t[0])) return false;
  std::string b = t.substr(u + 1);
  if (b.size() >= 2 && b.front() == '{' && b.back() == '}') b = b.substr(1, b.size() - 2);
  return !b.empty() && std::all_of(b.begin(), b.end(), is_digit);
}

// "1,000", "-12,345.5": a lone number whose commas are thousands separators.
bool is_thousands_number(const std::string& s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  std::size_t start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  std::size_t lead = i - start;
  if (lead < 1 || lead > 3) return false;
  int groups = 0;
  while (i < s.size() && s[i] == ',') {
    for (int k = 1; k <= 3; ++k)
      if (i + k >= s.size() || !is_digit(s[i + k])) return false;
    i += 4;
    ++groups;
    if (i < s.size() && is_digit(s[i])) return false;
  }
  if (groups == 0) return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    std::size_t d = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == d) return false;
  }
  return i == s.size();
}

// "\frac{12}{5,525}": thousands commas inside a brace group that holds only a number.
std::string remove_thousands_in_groups(const std::string& s) {
  std::string out = s;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] != '{') continue;
    std::size_t c = text::match_brace(out, i);
    if (c == std::string::npos) break;
    std::string inner(text::trim(std::string_view(out).substr(i + 1, c - i - 1)));
    if (is_thousands_number(inner)) {
      std::string plain;
      for (char ch : inner)
        if (ch != ',') plain += ch;
      out = out.substr(0, i + 1) + plain + out.substr(c);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The parser. Grammar (loosest first):
//   answer   := item (',' item)*
//   item     := matrix | set | bracket-structure ('\cup' item)* | relation
//   relation := expr (relop (expr | item))*
//   expr     := [sign] term (('+' | '-' | '\pm' | '\mp') term)*
//   term     := factor (('\cdot' | '\times' | '*' | '/' | '\div') factor | implicit factor)*
//   factor   := ('-' | '+') factor | power
//   power    := postfix ('^' arg)?         postfix := primary '!'*
//   primary  := number | letter[_sub] | (expr) | {expr} | |expr| | \frac a b | \sqrt[n] a | ...

class Parser {
 public:
  Parser(const std::string& s, const ParseLimits& lim, const Deadline& dl)
      : s_(s), lim_(lim), dl_(dl) {}

  Value parse_all() {
    std::vector<Value> items;
    items.push_back(item());
    skip();
    while (eat(',')) {
      items.push_back(item());
      skip();
    }
    if (!at_end()) unexpected();
    std::vector<Value> flat;
    for (auto& v : items) {
      Value e = expand_pm(v);
      if (e.type == VType::List && has_pm(v)) {
        for (auto& x : e.items) flat.push_back(std::move(x));
      } else {
        flat.push_back(std::move(e));
      }
    }
    if (flat.size() == 1) return flat[0];
    Value l;
    l.type = VType::List;
    l.items = std::move(flat);
    return l;
  }

 private:
  const std::string& s_;
  const ParseLimits& lim_;
  const Deadline& dl_;
  std::size_t pos_ = 0;
  std::size_t depth_ = 0;
  std::size_t nodes_ = 0;
  bool inexact_ = false;  // a decimal literal was read in the current scalar
  int lone_decimals_ = -1;

  struct DepthGuard {
    Parser* p;
    explicit DepthGuard(Parser* q) : p(q) {
      if (++p->depth_ > p->lim_.max_depth) throw ParseError("nesting too deep");
    }
    ~DepthGuard() { --p->depth_; }
  };

  void node() {
    if (++nodes_ > lim_.max_expr_nodes) throw ParseError("expression too large");
    if ((nodes_ & 31) == 0 && dl_.expired()) throw ParseError("time limit exceeded while parsing");
  }

  bool at_end() { return pos_ >= s_.size(); }
  void skip() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }
  char peek() {
    skip();
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }
  bool eat(char c) {
    if (peek() == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool looking_at(std::string_view t) {
    skip();
    return s_.compare(pos_, t.size(), t) == 0;
  }
  // Command name at the cursor ("frac" for "\frac"), or "" when none.
  std::string command() {
    skip();
    if (pos_ + 1 >= s_.size() || s_[pos_] != '\\' || !is_alpha(s_[pos_ + 1])) return "";
    std::size_t j = pos_ + 1;
    while (j < s_.size() && is_alpha(s_[j])) ++j;
    return s_.substr(pos_ + 1, j - pos_ - 1);
  }
  bool eat_command(std::string_view name) {
    if (command() != name) return false;
    pos_ += 1 + name.size();
    return true;
  }
  [[noreturn]] void unexpected() {
    if (at_end()) syntax("unexpected end of input");
    syntax("unexpected '" + s_.substr(pos_, 12) + "' at offset " + std::to_string(pos_));
  }
  void expect(char c) {
    if (!eat(c)) {
      if (at_end()) syntax(std::string("expected '") + c + "' before end of input");
      syntax(std::string("expected '") + c + "' at offset " + std::to_string(pos_));
    }
  }

  Value scalar(const ex& e) {
    Value v;
    v.type = VType::Scalar;
    v.expr = e;
    v.inexact = inexact_;
    v.decimals = lone_decimals_;
    return v;
  }
  Value scalar_expr() {
    inexact_ = false;
    lone_decimals_ = -1;
    std::size_t start = pos_;
    ex e = expr();
    // A lone decimal literal ("-0.3333") remembers its number of decimals for rounding checks.
    std::string lit = s_.substr(start, pos_ - start);
    std::string_view t = text::trim(lit);
    if (!t.empty() && (t[0] == '-' || t[0] == '+')) t = text::trim(t.substr(1));
    std::size_t dot = t.find('.');
    bool plain = !t.empty() &&
                 std::all_of(t.begin(), t.end(), [](char c) { return is_digit(c) || c == '.'; });
    lone_decimals_ =
        (plain && dot != std::string_view::npos) ? static_cast<int>(t.size() - dot - 1) : -1;
    return scalar(e);
  }

  Value item() {
    DepthGuard g(this);
    node();
    skip();
    if (looking_at("\\begin")) return matrix();
    Value v;
    if (looking_at("\\{") || command() == "emptyset" || command() == "varnothing") {
      v = set();
    } else {
      char c = peek();
      if (c == '(' || c == '[') {
        std::size_t save = pos_;
        if (auto b = bracket()) {
          v = *b;
        } else {
          pos_ = save;
          v = relation();
        }
      } else {
        v = relation();
      }
    }
    if (command() == "cup") {
      Value u;
      u.type = VType::Union;
      u.items.push_back(as_interval(v));
      while (eat_command("cup")) u.items.push_back(as_interval(item_no_union()));
      return u;
    }
    return v;
  }

  Value item_no_union() {
    skip();
    if (looking_at("\\{")) return set();
    char c = peek();
    if (c == '(' || c == '[') {
      if (auto b = bracket()) return *b;
    }
    syntax("expected an interval after \\cup");
  }

  static Value as_interval(Value v) {
    if (v.type == VType::Tuple && v.items.size() == 2) {
      v.type = VType::Interval;
      v.left_closed = v.right_closed = false;
    }
    if (v.type != VType::Interval && v.type != VType::Set) syntax("\\cup of a non-interval");
    return v;
  }

  Value set() {
    Value v;
    v.type = VType::Set;
    if (eat_command("emptyset") || eat_command("varnothing")) return v;
    pos_ += 2;  // "\{"
    if (looking_at("\\}")) {
      pos_ += 2;
      return v;
    }
    for (;;) {
      v.items.push_back(item());
      if (eat(',')) continue;
      if (looking_at("\\}")) {
        pos_ += 2;
        break;
      }
      unexpected();
    }
    return v;
  }

  // "(a, b, ...)" or "[a, b)": a tuple or interval when it holds a top-level comma and stands
  // alone; otherwise nullopt (the caller re-reads it as an expression such as "(x+1)^2").
  std::optional<Value> bracket() {
    char open = s_[pos_++];
    std::vector<Value> els;
    char close = 0;
    try {
      for (;;) {
        els.push_back(item());
        if (eat(',')) continue;
        char c = peek();
        if (c == ')' || c == ']') {
          close = c;
          ++pos_;
          break;
        }
        return std::nullopt;
      }
    } catch (const SyntaxError&) {
      return std::nullopt;
    }
    if (els.size() < 2) return std::nullopt;
    char n = peek();
    if (!(n == '\0' || n == ',' || n == ')' || n == ']' || n == '&' || looking_at("\\}") ||
          looking_at("\\\\") || looking_at("\\end") || command() == "cup"))
      return std::nullopt;
    Value v;
    v.items = std::move(els);
    bool has_inf = false;
    for (auto& e : v.items)
      if (e.type == VType::Scalar && e.expr.has(infinity_symbol())) has_inf = true;
    if (v.items.size() == 2 && (open == '[' || close == ']' || has_inf)) {
      v.type = VType::Interval;
      v.left_closed = open == '[';
      v.right_closed = close == ']';
    } else {
      v.type = VType::Tuple;
    }
    return v;
  }

  Value matrix() {
    pos_ += 6;  // \begin
    expect('{');
    std::size_t e = s_.find('}', pos_);
    if (e == std::string::npos) syntax("unterminated \\begin{");
    std::string env = s_.substr(pos_, e - pos_);
    pos_ = e + 1;
    if (env != "pmatrix" && env != "bmatrix" && env != "matrix" && env != "vmatrix" &&
        env != "smallmatrix" && env != "array")
      syntax("unsupported environment " + env);
    if (env == "array" && peek() == '{') {  // column spec
      std::size_t c = text::match_brace(s_, pos_);
      if (c == std::string::npos) syntax("bad array column spec");
      pos_ = c + 1;
    }
    Value m;
    m.type = VType::Matrix;
    std::vector<Value> row;
    for (;;) {
      if (looking_at("\\end")) break;
      row.push_back(scalar_expr());
      if (eat('&')) continue;
      if (looking_at("\\\\")) {
        pos_ += 2;
        m.rows.push_back(std::move(row));
        row.clear();
        if (looking_at("\\end")) break;
        continue;
      }
      if (looking_at("\\end")) break;
      unexpected();
    }
    if (!row.empty()) m.rows.push_back(std::move(row));
    pos_ += 4;
    expect('{');
    std::size_t e2 = s_.find('}', pos_);
    if (e2 == std::string::npos || s_.substr(pos_, e2 - pos_) != env) syntax("mismatched \\end");
    pos_ = e2 + 1;
    if (m.rows.empty()) syntax("empty matrix");
    for (auto& r : m.rows)
      if (r.size() != m.rows[0].size()) syntax("ragged matrix");
    return m;
  }

  // Relation operator at the cursor, consumed; "" when none.
  std::string relop() {
    char c = peek();
    if (c == '=') {
      ++pos_;
      return "=";
    }
    if (c == '<' || c == '>') {
      ++pos_;
      if (peek() == '=') {
        ++pos_;
        return std::string(1, c) + "=";
      }
      return std::string(1, c);
    }
    std::string cmd = command();
    static const std::map<std::string, std::string> ops = {
        {"le", "<="},  {"leq", "<="},      {"leqslant", "<="}, {"ge", ">="},
        {"geq", ">="}, {"geqslant", ">="}, {"lt", "<"},        {"gt", ">"},
        {"ne", "!="},  {"neq", "!="},      {"in", "in"},       {"approx", "="}};
    auto it = ops.find(cmd);
    if (it == ops.end()) return "";
    pos_ += 1 + cmd.size();
    return it->second;
  }

  Value relation() {
    Value first = scalar_expr();
    std::string op = relop();
    if (op.empty()) return first;
    Value r;
    r.type = VType::Relation;
    r.items.push_back(first);
    while (!op.empty()) {
      r.ops.push_back(op);
      if (op == "in") {
        r.items.push_back(item());
        break;
      }
      r.items.push_back(scalar_expr());
      op = relop();
    }
    return r;
  }

  // ---- expressions ----

  ex expr() {
    DepthGuard g(this);
    ex sum;
    bool first = true;
    for (;;) {
      node();
      ex sign = 1;
      bool have_op = false;
      for (;;) {  // a run of signs: "+-3", "\pm 2"
        char c = peek();
        if (c == '+') {
          ++pos_;
        } else if (c == '-') {
          ++pos_;
          sign = -sign;
        } else if (eat_command("pm")) {
          sign = sign * pm_symbol();
        } else if (eat_command("mp")) {
          sign = -sign * pm_symbol();
        } else {
          break;
        }
        have_op = true;
      }
      if (!first && !have_op) break;
      if (first && !have_op && !starts_primary() && peek() != '|' && peek() != '[') unexpected();
      ex t = term();
      sum = first ? ex(sign * t) : ex(sum + sign * t);
      check_size(sum);
      first = false;
    }
    return sum;
  }

  // Does the cursor start something that can be multiplied implicitly?
  bool starts_primary() {
    char c = peek();
    if (is_digit(c) || c == '.' || is_alpha(c) || c == '(' || c == '{') return true;
    if (c == '\\') {
      std::string cmd = command();
      static const std::set<std::string> not_primary = {
          "cdot", "times", "div",    "pm", "mp",  "le",       "leq",      "ge",
          "geq",  "lt",    "gt",     "ne", "neq", "in",       "cup",      "cap",
          "end",  "begin", "approx", "to", "ast", "leqslant", "geqslant", "setminus"};
      return !cmd.empty() && !not_primary.count(cmd);
    }
    return false;
  }

  // An integer literal immediately followed by \frac{int}{int} is a mixed number: 2\frac12 = 5/2.
  bool mixed_number_follows() {
    std::size_t save = pos_;
    bool ok = false;
    if (eat_command("frac")) {
      auto digits_arg = [&]() {
        skip();
        if (pos_ < s_.size() && is_digit(s_[pos_]) &&
            !(pos_ + 1 < s_.size() && s_[pos_ + 1] == '.'))
          return ++pos_, true;
        if (!eat('{')) return false;
        skip();
        std::size_t b = pos_;
        while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
        bool any = pos_ > b;
        return any && eat('}');
      };
      ok = digits_arg() && digits_arg();
    }
    pos_ = save;
    return ok;
  }

  ex term() {
    DepthGuard g(this);
    std::size_t start = pos_;
    ex prod = factor();
    bool integer_literal = false;
    {
      std::string_view lit = text::trim(std::string_view(s_).substr(start, pos_ - start));
      integer_literal = !lit.empty() && std::all_of(lit.begin(), lit.end(), is_digit);
    }
    bool first = true;
    for (;;) {
      node();
      std::string cmd = command();
      char c = peek();
      if (c == '*' || cmd == "cdot" || cmd == "times" || cmd == "ast") {
        pos_ += c == '*' ? 1 : 1 + cmd.size();
        prod = safe_mul(prod, factor());
      } else if (c == '/' || cmd == "div") {
        pos_ += c == '/' ? 1 : 1 + cmd.size();
        prod = safe_div(prod, factor());
      } else if (starts_primary()) {
        if (first && integer_literal && mixed_number_follows()) {
          prod = prod + factor();
        } else {
          prod = safe_mul(prod, factor());
        }
      } else {
        break;
      }
      first = false;
    }
    return prod;
  }

  ex factor() {
    DepthGuard g(this);
    char c = peek();
    if (c == '-') {
      ++pos_;
      return -factor();
    }
    if (c == '+') {
      ++pos_;
      return factor();
    }
    if (eat_command("pm")) return pm_symbol() * factor();
    return power();
  }

  ex power() {
    ex base = postfix();
    if (peek() == '^') {
      ++pos_;
      ex e;
      if (peek() == '-') {  // "2^-1" (not LaTeX, but common in model output)
        ++pos_;
        e = -arg(true);
      } else {
        e = arg(true);
      }
      ex r = safe_pow(base, e);
      while (peek() == '!') {
        ++pos_;
        r = safe_factorial(r);
      }
      return r;
    }
    return base;
  }

  ex postfix() {
    ex p = primary();
    while (peek() == '!') {
      ++pos_;
      p = safe_factorial(p);
    }
    return p;
  }

  // A macro argument: {group}, a \command primary, or one character (a digit run for exponents).
  ex arg(bool exponent = false) {
    DepthGuard g(this);
    node();
    char c = peek();
    if (c == '{') {
      ++pos_;
      ex e = expr();
      expect('}');
      return e;
    }
    if (c == '\\') return primary();
    if (is_digit(c)) {
      // TeX would take one digit ("x^10" is x^1 0), but every writer of "2^10" means 2^{10}, so a
      // run of digits is read as one number here; \frac12 still reads one digit (frac_arg).
      if (exponent) {
        std::size_t b = pos_;
        while (pos_ < s_.size() && is_digit(s_[pos_]) && pos_ - b < 6) ++pos_;
        return numeric(std::stol(s_.substr(b, pos_ - b)));
      }
      ++pos_;
      return numeric(c - '0');
    }
    if (is_alpha(c)) return letter();
    unexpected();
  }

  ex number() {
    std::string digits;
    std::size_t frac = 0;
    bool dot = false;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (is_digit(c)) {
        digits += c;
        if (dot) ++frac;
      } else if (c == '.' && !dot && pos_ + 1 < s_.size() && is_digit(s_[pos_ + 1])) {
        dot = true;
      } else {
        break;
      }
      ++pos_;
    }
    if (digits.empty()) unexpected();
    if (dot) inexact_ = true;
    long exp10 = 0;
    // Scientific notation "1.5e3", "2E-4" (an 'e' followed by digits; "2e" alone is 2*e).
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      std::size_t j = pos_ + 1;
      bool neg = false;
      if (j < s_.size() && (s_[j] == '-' || s_[j] == '+')) neg = s_[j++] == '-';
      std::size_t d = j;
      while (j < s_.size() && is_digit(s_[j]) && j - d < 6) ++j;
      if (j > d && !(j < s_.size() && is_digit(s_[j]))) {
        exp10 = std::stol(s_.substr(d, j - d)) * (neg ? -1 : 1);
        pos_ = j;
      }
    }
    return decimal_literal(digits, frac, exp10);
  }

  // Subscript after a symbol: "_1", "_{12}", "_n" -> "_{1}".
  std::string subscript() {
    if (pos_ >= s_.size() || s_[pos_] != '_') return "";
    ++pos_;
    skip();
    if (pos_ < s_.size() && s_[pos_] == '{') {
      std::size_t c = text::match_brace(s_, pos_);
      if (c == std::string::npos) syntax("unbalanced subscript");
      std::string sub = s_.substr(pos_ + 1, c - pos_ - 1);
      pos_ = c + 1;
      std::string t;
      for (char ch : sub)
        if (!is_space(ch)) t += ch;
      return "_{" + t + "}";
    }
    if (pos_ < s_.size() && (is_alpha(s_[pos_]) || is_digit(s_[pos_])))
      return std::string("_{") + s_[pos_++] + "}";
    syntax("bad subscript");
  }

  ex letter() {
    char c = s_[pos_++];
    std::string sub = subscript();
    if (sub.empty()) {
      if (c == 'e') return GiNaC::exp(ex(1));
      if (c == 'i') return GiNaC::I;
    }
    return symbols().get(std::string(1, c) + sub);
  }

  // Function argument: (expr), {expr}, or an implicit product of simple factors ("\sin 2x").
  ex func_arg() {
    char c = peek();
    if (c == '(' || c == '{') {
      ++pos_;
      ex e = expr();
      expect(c == '(' ? ')' : '}');
      return e;
    }
    ex a = power();
    while (true) {
      char n = peek();
      if (!(is_digit(n) || is_alpha(n))) break;
      a = safe_mul(a, power());
    }
    return a;
  }

  ex apply(const std::string& f, const ex& x) {
    if (f == "sin") return GiNaC::sin(x);
    if (f == "cos") return GiNaC::cos(x);
    if (f == "tan") {
      if (ex(GiNaC::cos(x)).is_zero()) syntax("tan at a pole");
      return GiNaC::tan(x);
    }
    if (f == "arctan" && (x.is_equal(GiNaC::I) || x.is_equal(-GiNaC::I)))
      syntax("arctan at a pole");
    if (f == "sec") return safe_div(1, GiNaC::cos(x));
    if (f == "csc") return safe_div(1, GiNaC::sin(x));
    if (f == "cot") return safe_div(GiNaC::cos(x), GiNaC::sin(x));
    if (f == "arcsin") return GiNaC::asin(x);
    if (f == "arccos") return GiNaC::acos(x);
    if (f == "arctan") return GiNaC::atan(x);
    if (f == "sinh") return GiNaC::sinh(x);
    if (f == "cosh") return GiNaC::cosh(x);
    if (f == "tanh") return GiNaC::tanh(x);
    if (f == "exp") return GiNaC::exp(x);
    if (f == "sqrt") return safe_pow(x, numeric(1, 2));
    if (f == "abs") return GiNaC::abs(x);
    if (x.is_zero()) syntax("logarithm of zero");
    return GiNaC::log(x);  // ln, log (natural; \log_b handled by the caller)
  }

  ex function(const std::string& f) {
    // Optional power before the argument: \sin^2 x = (\sin x)^2; \log_b x.
    ex pw = 1, base = 0;
    bool has_pw = false, has_base = false;
    for (int k = 0; k < 2; ++k) {
      if (peek() == '^') {
        ++pos_;
        pw = arg();
        has_pw = true;
      } else if (peek() == '_' && (f == "log")) {
        ++pos_;
        base = arg();
        has_base = true;
      }
    }
    ex a = func_arg();
    ex r = apply(f, a);
    if (has_base) {
      if (base.is_equal(1) || base.is_zero()) syntax("bad logarithm base");
      r = safe_div(r, GiNaC::log(base));
    }
    if (has_pw) r = safe_pow(r, pw);
    return r;
  }

  ex sqrt_cmd() {
    ex index = 2;
    if (peek() == '[') {
      ++pos_;
      index = expr();
      expect(']');
    }
    ex radicand = arg();
    if (index.is_zero()) syntax("zeroth root");
    // Odd real root of a negative number: \sqrt[3]{-8} = -2 (not the principal complex root).
    if (GiNaC::is_a<numeric>(index) && GiNaC::is_a<numeric>(radicand)) {
      const numeric& n = GiNaC::ex_to<numeric>(index);
      const numeric& r = GiNaC::ex_to<numeric>(radicand);
      if (n.is_odd() && r.is_real() && r.is_negative())
        return -safe_pow(-radicand, safe_div(1, index));
    }
    return safe_pow(radicand, safe_div(1, index));
  }

  ex primary() {
    DepthGuard g(this);
    node();
    char c = peek();
    if (is_digit(c) || c == '.') {
      std::size_t start = pos_;
      ex n = number();
      // A number with a subscript is a base-b numeral ("101_2"); kept as an opaque symbol.
      if (pos_ < s_.size() && s_[pos_] == '_') {
        std::string lit = s_.substr(start, pos_ - start);
        return symbols().get(lit + subscript());
      }
      return n;
    }
    if (c == '(' || c == '[' || c == '{') {
      ++pos_;
      ex e = expr();
      expect(c == '(' ? ')' : c == '[' ? ']' : '}');
      return e;
    }
    if (c == '|') {
      ++pos_;
      ex e = expr();
      expect('|');
      return GiNaC::abs(e);
    }
    if (is_alpha(c)) {
      // Bare function words and GiNaC's own spellings: sqrt(2), sin(x), Pi, pi, I.
      std::size_t j = pos_;
      while (j < s_.size() && is_alpha(s_[j])) ++j;
      std::string w = s_.substr(pos_, j - pos_);
      for (const std::string& f : function_names()) {
        if (w.compare(0, f.size(), f) == 0 && j == pos_ + f.size() && j < s_.size() &&
            s_[j] == '(') {
          pos_ = j;
          return function(f);
        }
      }
      if (w == "pi" || w == "Pi") {
        pos_ = j;
        return GiNaC::Pi;
      }
      return letter();
    }
    if (c == '\\') {
      std::string cmd = command();
      if (cmd.empty()) unexpected();
      pos_ += 1 + cmd.size();
      if (cmd == "frac") {
        ex a = arg();
        ex b = arg();
        return safe_div(a, b);
      }
      if (cmd == "sqrt") return sqrt_cmd();
      if (cmd == "binom") {
        ex a = arg();
        ex b = arg();
        return safe_binomial(a, b);
      }
      if (cmd == "pi") return GiNaC::Pi;
      if (cmd == "infty" || cmd == "infin") return infinity_symbol();
      if (function_names().count(cmd)) return function(cmd);
      for (const char* gname : kGreek)
        if (cmd == gname) return symbols().get("\\" + cmd);
      if (cmd == "cdot" || cmd == "times") syntax("operator without left operand");
      syntax("unsupported command \\" + cmd);
    }
    unexpected();
  }

  // Values containing \pm become a list of the two sign choices.
  static bool has_pm(const Value& v) {
    if (v.type == VType::Scalar) return v.expr.has(pm_symbol());
    for (auto& i : v.items)
      if (has_pm(i)) return true;
    for (auto& r : v.rows)
      for (auto& x : r)
        if (has_pm(x)) return true;
    return false;
  }
  static Value subs_pm(Value v, int sign) {
    if (v.type == VType::Scalar) v.expr = v.expr.subs(pm_symbol() == sign);
    for (auto& i : v.items) i = subs_pm(i, sign);
    for (auto& r : v.rows)
      for (auto& x : r) x = subs_pm(x, sign);
    return v;
  }
  static Value expand_pm(const Value& v) {
    if (!has_pm(v)) return v;
    if (v.type == VType::Set || v.type == VType::List) {  // {1 \pm 2, 5} has three elements
      Value out = v;
      out.items.clear();
      for (const auto& i : v.items) {
        Value e = expand_pm(i);
        if (e.type == VType::List && has_pm(i)) {
          for (auto& x : e.items) out.items.push_back(std::move(x));
        } else {
          out.items.push_back(std::move(e));
        }
      }
      return out;
    }
    Value l;
    l.type = VType::List;
    l.items.push_back(subs_pm(v, 1));
    l.items.push_back(subs_pm(v, -1));
    return l;
  }
};

Value text_value(std::string_view original, std::string error = "") {
  Value v;
  v.type = VType::Text;
  v.text = normalize_text(original);
  v.error = std::move(error);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Printer.

std::string num_str(const numeric& n) {
  std::ostringstream os;
  os << n;
  return os.str();
}

std::string pr(const ex& e, int prec);

std::string print_rational(const numeric& n, int prec) {
  if (n.is_integer()) {
    std::string s = num_str(n);
    return (prec >= 2 && n.is_negative()) ? "(" + s + ")" : s;
  }
  std::string s = "\\frac{" + num_str(GiNaC::abs(n.numer())) + "}{" + num_str(n.denom()) + "}";
  if (n.is_negative()) s = "-" + s;
  return (prec >= 2 || (prec >= 1 && n.is_negative())) ? "(" + s + ")" : s;
}

std::string print_numeric(const numeric& n, int prec) {
  if (n.is_real()) return print_rational(n, prec);
  numeric re = n.real(), im = n.imag();
  std::string s;
  if (!re.is_zero()) s = print_rational(re, 0);
  std::string ims;
  if (im.is_equal(1)) {
    ims = "i";
  } else if (im.is_equal(-1)) {
    ims = "-i";
  } else {
    ims = print_rational(im, 0) + " i";
  }
  bool sum = !s.empty();
  if (sum && ims[0] != '-') s += "+";
  s += ims;
  return (prec >= 2 || (prec >= 1 && (sum || s[0] == '-'))) ? "(" + s + ")" : s;
}

std::string print_power(const ex& b, const ex& x, int prec) {
  if (GiNaC::is_a<numeric>(x)) {
    const numeric& n = GiNaC::ex_to<numeric>(x);
    if (n.is_negative()) return "\\frac{1}{" + print_power(b, -n, 0) + "}";
    if (n.is_equal(numeric(1, 2))) return "\\sqrt{" + pr(b, 0) + "}";
    if (n.is_rational() && n.numer().is_equal(1) && !n.is_integer())
      return "\\sqrt[" + num_str(n.denom()) + "]{" + pr(b, 0) + "}";
    if (n.is_equal(1)) return pr(b, prec);
  }
  std::string bs = pr(b, 2);
  return bs + "^{" + pr(x, 0) + "}";
}

std::string print_function(const GiNaC::function& f) {
  std::string name = f.get_name();
  std::string a = f.nops() > 0 ? pr(f.op(0), 0) : "";
  if (name == "abs") return "|" + a + "|";
  if (name == "bigpow") return pr(f.op(0), 2) + "^{" + pr(f.op(1), 0) + "}";
  if (name == "factorial") return pr(f.op(0), 2) + "!";
  if (name == "binomial") return "\\binom{" + a + "}{" + pr(f.op(1), 0) + "}";
  if (name == "log") return "\\ln(" + a + ")";
  if (name == "asin") return "\\arcsin(" + a + ")";
  if (name == "acos") return "\\arccos(" + a + ")";
  if (name == "atan") return "\\arctan(" + a + ")";
  return "\\" + name + "(" + a + ")";
}

// GiNaC orders terms by hash values that change between runs (they mix in addresses), so terms
// are sorted by their printed form (sign ignored, constant term last) instead.
std::vector<std::string> sorted_terms(const ex& e) {
  std::vector<std::pair<std::string, std::string>> terms;
  for (std::size_t i = 0; i < e.nops(); ++i) {
    std::string t = pr(e.op(i), 0);
    std::string key = (!t.empty() && t[0] == '-') ? t.substr(1) : t;
    key = (GiNaC::is_a<numeric>(e.op(i)) ? "1" : "0") + key;
    terms.emplace_back(key, t);
  }
  std::sort(terms.begin(), terms.end());
  std::vector<std::string> out;
  for (auto& t : terms) out.push_back(t.second);
  return out;
}

// A sum inside a product gets a positive leading term; returns true when it was negated. (GiNaC
// moves signs between factors in a run-dependent way.)
bool positive_sum(ex& b) {
  if (!GiNaC::is_a<GiNaC::add>(b)) return false;
  auto terms = sorted_terms(b);
  if (terms.empty() || terms[0][0] != '-') return false;
  b = (-b).expand();
  return true;
}

std::string pr(const ex& e, int prec) {
  if (GiNaC::is_a<numeric>(e)) return print_numeric(GiNaC::ex_to<numeric>(e), prec);
  if (GiNaC::is_a<GiNaC::symbol>(e)) return GiNaC::ex_to<GiNaC::symbol>(e).get_name();
  if (GiNaC::is_a<GiNaC::constant>(e)) return e.is_equal(GiNaC::Pi) ? "\\pi" : "\\pi";
  if (GiNaC::is_a<GiNaC::function>(e)) return print_function(GiNaC::ex_to<GiNaC::function>(e));
  if (GiNaC::is_a<GiNaC::power>(e)) return print_power(e.op(0), e.op(1), prec);
  if (GiNaC::is_a<GiNaC::add>(e)) {
    std::string s;
    auto terms = sorted_terms(e);
    for (std::size_t i = 0; i < terms.size(); ++i) {
      const std::string& t = terms[i];
      if (i > 0 && !t.empty() && t[0] != '-') s += "+";
      s += t;
    }
    return prec >= 1 ? "(" + s + ")" : s;
  }
  if (GiNaC::is_a<GiNaC::mul>(e)) {
    numeric coeff = 1;
    std::vector<std::string> num, den;
    for (std::size_t i = 0; i < e.nops(); ++i) {
      const ex& f = e.op(i);
      if (GiNaC::is_a<numeric>(f) && GiNaC::ex_to<numeric>(f).is_rational()) {
        coeff *= GiNaC::ex_to<numeric>(f);
      } else if (GiNaC::is_a<GiNaC::power>(f) && GiNaC::is_a<numeric>(f.op(1))) {
        ex b = f.op(0);
        numeric k = GiNaC::ex_to<numeric>(f.op(1));
        if (k.is_integer() && positive_sum(b) && k.is_odd()) coeff = -coeff;
        if (k.is_negative()) {
          den.push_back(print_power(b, -k, 1));
        } else {
          num.push_back(print_power(b, k, 1));
        }
      } else {
        ex b = f;
        if (positive_sum(b)) coeff = -coeff;
        num.push_back(pr(b, 1));
      }
    }
    std::sort(num.begin(), num.end());
    std::sort(den.begin(), den.end());
    bool neg = coeff.is_negative();
    coeff = GiNaC::abs(coeff);
    if (!coeff.numer().is_equal(1) || num.empty()) num.insert(num.begin(), num_str(coeff.numer()));
    if (!coeff.denom().is_equal(1)) den.insert(den.begin(), num_str(coeff.denom()));
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (std::size_t i = 0; i < v.size(); ++i) s += (i ? " \\cdot " : "") + v[i];
      return s;
    };
    std::string s = den.empty() ? join(num) : "\\frac{" + join(num) + "}{" + join(den) + "}";
    if (neg) s = "-" + s;
    return (prec >= 2 || (neg && prec >= 1)) ? "(" + s + ")" : s;
  }
  std::ostringstream os;  // anything else: GiNaC's own syntax
  os << e;
  return os.str();
}

const char* op_latex(const std::string& op) {
  if (op == "<=") return "\\le";
  if (op == ">=") return "\\ge";
  if (op == "!=") return "\\ne";
  if (op == "in") return "\\in";
  return op == "<" ? "<" : op == ">" ? ">" : "=";
}

}  // namespace

const GiNaC::symbol& infinity_symbol() { return symbols().get("\\infty"); }

std::string normalize_text(std::string_view in) {
  std::string s(in);
  // Unwrap \text{...}-like groups, keeping their content.
  for (std::size_t pos = 0; pos < s.size();) {
    std::size_t open, close;
    std::string cmd;
    if (s[pos] == '\\' && text_group_at(s, pos, &open, &close, &cmd)) {
      s = s.substr(0, pos) + s.substr(open + 1, close - open - 1) + s.substr(close + 1);
      continue;
    }
    ++pos;
  }
  for (const char* drop :
       {"\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "\\$", "$", "~", "\\displaystyle"})
    s = text::replace_all(s, drop, "");
  s = text::replace_all(s, "\\dfrac", "\\frac");
  s = text::replace_all(s, "\\tfrac", "\\frac");
  std::string out;
  for (char c : s)
    if (!is_space(c)) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!out.empty() && (out.back() == '.' || out.back() == ',')) out.pop_back();
  if (out.size() == 3 && out[0] == '(' && out[2] == ')' && is_alpha(out[1])) out = out.substr(1, 1);
  return out;
}

Value parse_answer(std::string_view input, const ParseLimits& lim, const Deadline& deadline) {
  if (input.size() > lim.max_input) throw ParseError("input longer than the limit");
  held_bits = 0;
  std::string s = clean(input);
  if (text::trim(s).empty()) {
    Value v;
    v.type = text::trim(input).empty() ? VType::Empty : VType::Text;
    if (v.type == VType::Text) v.text = normalize_text(input);
    return v;
  }
  if (!strip_text_groups(s)) return text_value(input);
  s = std::string(text::trim(s));
  if (text::starts_with(s, "\\approx")) s = std::string(text::trim(s.substr(7)));
  s = text::replace_all(s, ";", ",");
  s = remove_thousands_in_groups(s);
  strip_trailing_words(s);
  // Joining words between answers: "2 or 3", "x=1 and x=2".
  s = text::replace_all(s, " and ", ",");
  s = text::replace_all(s, " or ", ",");
  {
    std::string t;  // "2, 3, , 4" (from ", and ") -> "2, 3, 4"
    for (char c : s) {
      std::size_t k = t.find_last_not_of(' ');
      if (c == ',' && k != std::string::npos && t[k] == ',') continue;
      t += c;
    }
    s = t;
  }
  s = std::string(text::trim(s));
  while (!s.empty() && (s.back() == ',' || s.back() == '.'))
    s = std::string(text::trim(s.substr(0, s.size() - 1)));
  while (!s.empty() && s.front() == ',') s = std::string(text::trim(s.substr(1)));
  if (s.empty()) return text_value(input);
  if (is_base_number(s)) {  // "422_{8}" -> text "422_8"
    Value v;
    v.type = VType::Text;
    for (char c : s)
      if (!is_space(c) && c != '{' && c != '}') v.text += static_cast<char>(std::tolower(c));
    return v;
  }
  if (has_word(s)) return text_value(input);
  {
    std::string compact;
    for (char c : s)
      if (!is_space(c)) compact += c;
    if (is_thousands_number(compact)) {
      s.clear();
      for (char c : compact)
        if (c != ',') s += c;
    }
  }
  try {
    Parser p(s, lim, deadline);
    return p.parse_all();
  } catch (const SyntaxError& e) {
    return text_value(input, e.msg);
  } catch (const ParseError&) {
    throw;
  } catch (const std::exception& e) {  // GiNaC / CLN arithmetic errors (poles, overflow)
    return text_value(input, std::string("math error: ") + e.what());
  }
}

double expanded_terms(const GiNaC::ex& e) {
  if (GiNaC::is_a<GiNaC::add>(e)) {
    double s = 0;
    for (std::size_t i = 0; i < e.nops(); ++i) s += expanded_terms(e.op(i));
    return s;
  }
  if (GiNaC::is_a<GiNaC::mul>(e)) {
    double p = 1;
    for (std::size_t i = 0; i < e.nops(); ++i) p *= expanded_terms(e.op(i));
    return p;
  }
  if (GiNaC::is_a<GiNaC::power>(e) && GiNaC::is_a<GiNaC::numeric>(e.op(1))) {
    const GiNaC::numeric& n = GiNaC::ex_to<GiNaC::numeric>(e.op(1));
    const GiNaC::ex& base = e.op(0);
    double t = expanded_terms(base);
    if (n.is_pos_integer() && t > 1) {
      double m = n.to_double();
      if (m > 40) return 1e18;  // big binomial coefficients too: never worth expanding
      // A sum of k monomials has C(m + k - 1, k - 1) terms in its m-th power; when its terms are
      // themselves sums, expand() multiplies out t^m products before collecting.
      if (GiNaC::is_a<GiNaC::add>(base) && t == static_cast<double>(base.nops()))
        return std::exp(std::lgamma(m + t) - std::lgamma(t) - std::lgamma(m + 1));
      return std::pow(t, m);
    }
  }
  return 1;
}

std::string print_expr(const GiNaC::ex& e) {
  // Expanded when that is cheap: factored and expanded forms then print alike, and GiNaC's
  // run-dependent choice of which factor carries a sign disappears.
  if (expanded_terms(e) < 300) return pr(e.expand(), 0);
  return pr(e, 0);
}

GiNaC::ex unhold(const GiNaC::ex& e) {
  if (GiNaC::is_a<GiNaC::power>(e)) return GiNaC::pow(unhold(e.op(0)), unhold(e.op(1)));
  if (GiNaC::is_a<GiNaC::function>(e)) {
    const std::string& name = GiNaC::ex_to<GiNaC::function>(e).get_name();
    if (name == "factorial") return GiNaC::factorial(unhold(e.op(0)));
    if (name == "bigpow") return GiNaC::pow(unhold(e.op(0)), unhold(e.op(1)));
  }
  if (GiNaC::is_a<GiNaC::add>(e)) {
    GiNaC::ex s = 0;
    for (std::size_t i = 0; i < e.nops(); ++i) s += unhold(e.op(i));
    return s;
  }
  if (GiNaC::is_a<GiNaC::mul>(e)) {
    GiNaC::ex p = 1;
    for (std::size_t i = 0; i < e.nops(); ++i) p *= unhold(e.op(i));
    return p;
  }
  return e;
}

std::string print(const Value& v) {
  auto join = [](const std::vector<Value>& items, const char* sep) {
    std::string s;
    for (std::size_t i = 0; i < items.size(); ++i) s += (i ? sep : "") + print(items[i]);
    return s;
  };
  auto join_sorted = [](const std::vector<Value>& items, const char* sep) {  // unordered kinds
    std::vector<std::string> parts;
    for (const auto& i : items) parts.push_back(print(i));
    std::sort(parts.begin(), parts.end());
    std::string s;
    for (std::size_t i = 0; i < parts.size(); ++i) s += (i ? sep : "") + parts[i];
    return s;
  };
  switch (v.type) {
    case VType::Empty:
      return "";
    case VType::Scalar:
      return print_expr(v.expr);
    case VType::Relation: {
      std::string s = print(v.items[0]);
      for (std::size_t i = 0; i < v.ops.size(); ++i)
        s += std::string(" ") + op_latex(v.ops[i]) + " " + print(v.items[i + 1]);
      return s;
    }
    case VType::Tuple:
      return "(" + join(v.items, ", ") + ")";
    case VType::Interval:
      return std::string(v.left_closed ? "[" : "(") + join(v.items, ", ") +
             (v.right_closed ? "]" : ")");
    case VType::Union:
      return join(v.items, " \\cup ");
    case VType::Set:
      return "\\{" + join_sorted(v.items, ", ") + "\\}";
    case VType::Matrix: {
      std::string s = "\\begin{pmatrix}";
      for (std::size_t r = 0; r < v.rows.size(); ++r) {
        if (r) s += " \\\\ ";
        s += join(v.rows[r], " & ");
      }
      return s + "\\end{pmatrix}";
    }
    case VType::List:
      return join_sorted(v.items, ", ");
    case VType::Text:
      return v.text;
  }
  return "";
}

}  // namespace metamath::answer::latex
