// Safe GiNaC arithmetic for the LaTeX answer parser (latex.h, "Safety"): every operation that
// could build a huge exact number (integer powers, factorials, binomials, long literals) is
// size-checked before GiNaC evaluates it, so adversarial input fails fast with ParseError instead
// of hanging. Exact powers and factorials that are big but allowed stay unevaluated ("held") until
// unhold(); expanded_terms() bounds the work expand() would do. Declared in latex_internal.h.
#include <cln/integer.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "answer/latex.h"
#include "answer/latex_internal.h"

namespace metamath::answer::latex {

// An exact power too big to print usefully ("2^{2008}"), kept as an opaque function so GiNaC's
// automatic evaluation does not expand it; unhold() turns it into a real power when comparing.
DECLARE_FUNCTION_2P(bigpow)
REGISTER_FUNCTION(bigpow, dummy())

using namespace internal;
using GiNaC::ex;
using GiNaC::numeric;

namespace {

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

}  // namespace

namespace internal {

void reset_held_bits() { held_bits = 0; }

void check_size(const ex& e) {
  if (GiNaC::is_a<numeric>(e)) {
    const numeric& n = GiNaC::ex_to<numeric>(e);
    if (n.is_rational() && bit_length(n) > kMaxBits) throw ParseError("number too large");
    if (!n.is_rational() && (bit_length(n.real()) > kMaxBits || bit_length(n.imag()) > kMaxBits))
      throw ParseError("number too large");
  }
}

// expand() turns base^(c + rest) into base^c * base^rest and evaluates base^c exactly, so the
// numeric terms of a symbolic exponent get the bounds of a numeric one: 3^{10^{36} - n} would
// otherwise pass the parser and hang the comparison inside CLN's exact power.
void check_split_exponent(const ex& base, const ex& expo) {
  if (GiNaC::is_a<numeric>(expo)) return;
  // The exponent as expand() sees it; one too big to expand cheaply is refused outright.
  if (expanded_terms(expo) > 2000) throw ParseError("exponent too large");
  const ex e = expo.expand();
  if (!GiNaC::is_a<GiNaC::add>(e)) return;
  for (std::size_t i = 0; i < e.nops(); ++i) {
    if (!GiNaC::is_a<numeric>(e.op(i))) continue;
    const numeric& x = GiNaC::ex_to<numeric>(e.op(i));
    if (!x.is_rational() || GiNaC::abs(x) > kMaxExponent) throw ParseError("exponent too large");
    if (GiNaC::is_a<numeric>(base)) {
      const numeric& b = GiNaC::ex_to<numeric>(base);
      const double bits = static_cast<double>(bit_length(b.real()) + bit_length(b.imag()) + 1) *
                          GiNaC::abs(x).to_double();
      if (bits > static_cast<double>(kMaxBits)) throw ParseError("power too large");
    }
  }
}

ex safe_pow(const ex& base, const ex& expo) {
  bool trivial = base.is_zero() || base.is_equal(1) || base.is_equal(-1);
  if (!trivial && has_held(expo)) throw ParseError("exponent too large");
  if (!trivial) check_split_exponent(base, expo);
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
      } else if (GiNaC::is_a<GiNaC::mul>(base) && x.is_integer()) {
        // GiNaC distributes an integer power over a product: (c y)^n computes c^n at once.
        double bits = 0;
        for (std::size_t i = 0; i < base.nops(); ++i)
          if (GiNaC::is_a<numeric>(base.op(i))) {
            const numeric& c = GiNaC::ex_to<numeric>(base.op(i));
            bits += static_cast<double>(bit_length(c.real()) + bit_length(c.imag()) + 1);
          }
        if (bits * GiNaC::abs(x).to_double() > static_cast<double>(kMaxBits))
          throw ParseError("power too large");
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

}  // namespace internal

namespace {

// Bits of the largest coefficient expand() could produce: products add their factors' sizes, an
// integer power multiplies its base's, a sum keeps its largest term's. (A fuzzed gold cubed a sum
// holding a 145k-bit coefficient: 1.6 s in GMP for one normalize_math call.)
double coefficient_bits(const GiNaC::ex& e) {
  if (GiNaC::is_a<numeric>(e)) {
    const numeric& n = GiNaC::ex_to<numeric>(e);
    return static_cast<double>(bit_length(n.real()) + bit_length(n.imag()));
  }
  if (GiNaC::is_a<GiNaC::power>(e)) {
    const double b = coefficient_bits(e.op(0));
    if (GiNaC::is_a<numeric>(e.op(1)) && GiNaC::ex_to<numeric>(e.op(1)).is_pos_integer())
      return b * GiNaC::ex_to<numeric>(e.op(1)).to_double();
    return b;
  }
  double bits = 0;
  for (std::size_t i = 0; i < e.nops(); ++i) {
    const double c = coefficient_bits(e.op(i));
    bits = GiNaC::is_a<GiNaC::mul>(e) ? bits + c : std::max(bits, c);
  }
  return bits;
}

// Coefficients past this many bits (~20k digits) make expand() slow however few its terms.
constexpr double kMaxExpandBits = 65536;

// term_count(e, most) is the number of terms of e multiplied out; `most` gets the largest such
// count over e's subexpressions too, since expand() multiplies out every base, exponent and
// function argument on its way, even where the result is one term again ("(s)^{x-68}" with a
// (x-69)^{977} deep inside s).
double term_count(const GiNaC::ex& e, double& most);

// Terms of base^n multiplied out, n a positive integer.
double power_terms(const GiNaC::ex& base, const GiNaC::numeric& n, double& most) {
  double t = term_count(base, most);
  if (t <= 1) return 1;
  double m = n.to_double();
  if (m > 40) return 1e18;  // big binomial coefficients too: never worth expanding
  // A sum of k monomials has C(m + k - 1, k - 1) terms in its m-th power; when its terms are
  // themselves sums, expand() multiplies out t^m products before collecting.
  if (GiNaC::is_a<GiNaC::add>(base) && t == static_cast<double>(base.nops()))
    return std::exp(std::lgamma(m + t) - std::lgamma(t) - std::lgamma(m + 1));
  return std::pow(t, m);
}

// Whether e holds a sum raised to a symbolic power ("(x-69)^{x-68}").
bool has_sum_under_symbolic_power(const GiNaC::ex& e) {
  if (GiNaC::is_a<GiNaC::power>(e) && GiNaC::is_a<GiNaC::add>(e.op(0)) &&
      !GiNaC::is_a<GiNaC::numeric>(e.op(1)))
    return true;
  for (std::size_t i = 0; i < e.nops(); ++i)
    if (has_sum_under_symbolic_power(e.op(i))) return true;
  return false;
}

double term_count_of_power(const GiNaC::ex& e, double& most) {
  const GiNaC::ex& base = e.op(0);
  // A symbolic power of a base that holds a symbolic power of a sum: expand() multiplies the
  // exponents, (s^{x-68})^{x-68} = s^{(x-68)^2}, and then splits off s^{4624} ("(58 (x-69)^{x-68})
  // ^{x-68}" took 2.6 s). Never expanded.
  if (!GiNaC::is_a<GiNaC::numeric>(e.op(1)) && has_sum_under_symbolic_power(base)) return 1e18;
  if (GiNaC::is_a<GiNaC::numeric>(e.op(1))) {
    const GiNaC::numeric& n = GiNaC::ex_to<GiNaC::numeric>(e.op(1));
    if (n.is_pos_integer()) return power_terms(base, n, most);
    term_count(base, most);
    return 1;
  }
  // expand() splits a sum in an (expanded) exponent, a^(x + n) = a^x a^n, and multiplies a^n out
  // ("(b+1)^{99 \cdot 25 (c+4)}" holds (b+1)^9900).
  if (term_count(base, most) <= 1) return 1;
  GiNaC::ex x = e.op(1);
  if (term_count(x, most) > 300 || coefficient_bits(x) > 4096) return 1e18;
  x = x.expand();
  if (!GiNaC::is_a<GiNaC::add>(x)) return 1;
  for (std::size_t i = 0; i < x.nops(); ++i)
    if (GiNaC::is_a<GiNaC::numeric>(x.op(i)) &&
        GiNaC::ex_to<GiNaC::numeric>(x.op(i)).is_pos_integer())
      return power_terms(base, GiNaC::ex_to<GiNaC::numeric>(x.op(i)), most);
  return 1;
}

double term_count(const GiNaC::ex& e, double& most) {
  double t = 1;
  if (GiNaC::is_a<GiNaC::add>(e)) {
    t = 0;
    for (std::size_t i = 0; i < e.nops(); ++i) t += term_count(e.op(i), most);
  } else if (GiNaC::is_a<GiNaC::mul>(e)) {
    for (std::size_t i = 0; i < e.nops(); ++i) t *= term_count(e.op(i), most);
  } else if (GiNaC::is_a<GiNaC::power>(e)) {
    t = term_count_of_power(e, most);
  } else {  // functions: their arguments are multiplied out; the call stays one term
    for (std::size_t i = 0; i < e.nops(); ++i) term_count(e.op(i), most);
  }
  most = std::max(most, t);
  return t;
}

}  // namespace

double expanded_terms(const GiNaC::ex& e) {
  if (coefficient_bits(e) > kMaxExpandBits) return 1e18;  // as if too many terms: never expanded
  double most = 0;
  term_count(e, most);
  return most;
}

namespace {

// The distinct factors a term of e multiplied out can hold: symbols, constants (\pi), and powers
// or functions that expand() keeps whole ("99^x", "\sin x"); numbers are not counted.
// The extra work units one numeric radical costs each term that expand() forms: GiNaC evaluates
// the power again for every product (an exact root test in CLN), measured per term at about 0.3 us
// for a square root, 5-12 us for a higher root of an integer and 45 us for a higher root of a
// fraction ("(82/125)^{1/6}"), against about 0.5 us per work unit.
double radical_weight(const GiNaC::ex& base, const GiNaC::ex& exponent) {
  if (!GiNaC::is_a<numeric>(base) || !GiNaC::is_a<numeric>(exponent)) return 0;
  const numeric& x = GiNaC::ex_to<numeric>(exponent);
  if (x.is_integer()) return 0;
  if (x.is_rational() && x.denom() == 2) return 2;
  return GiNaC::ex_to<numeric>(base).is_integer() ? 24 : 100;
}

// The distinct factors a term of e multiplied out can hold (symbols, constants, functions,
// symbolic powers), and the per-term weight of its distinct numeric radicals.
void collect_atoms(const GiNaC::ex& e, GiNaC::exset& atoms, double& radicals) {
  if (GiNaC::is_a<GiNaC::numeric>(e)) return;
  if (GiNaC::is_a<GiNaC::symbol>(e) || GiNaC::is_a<GiNaC::constant>(e) ||
      GiNaC::is_a<GiNaC::function>(e) ||
      (GiNaC::is_a<GiNaC::power>(e) && !GiNaC::is_a<GiNaC::numeric>(e.op(1)))) {
    atoms.insert(e);
    return;
  }
  if (GiNaC::is_a<GiNaC::power>(e) && GiNaC::is_a<GiNaC::numeric>(e.op(0))) {
    if (atoms.insert(e).second) radicals += radical_weight(e.op(0), e.op(1));
    return;
  }
  for (std::size_t i = 0; i < e.nops(); ++i) collect_atoms(e.op(i), atoms, radicals);
}

}  // namespace

double expand_work(const GiNaC::ex& e) {
  const double terms = expanded_terms(e);
  if (terms >= 1e18) return terms;
  GiNaC::exset atoms;
  double radicals = 0;
  collect_atoms(e, atoms, radicals);
  // Each term's coefficient is computed too: one more unit per 64-bit limb past the first.
  const double limbs = std::floor(coefficient_bits(e) / 64);
  return terms * std::max<double>(1, static_cast<double>(atoms.size()) + radicals + limbs);
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

}  // namespace metamath::answer::latex
