// Answer equivalence over parsed LaTeX values (latex.h) and GSM8K numbers (numeric.h).
//
// Rules for two scalars, in order (the reason string names the rule that decided):
//   1. "exact": both evaluate to exact rationals (or complex rationals) -> compared exactly.
//   2. "symbolic": expand(a - b) is 0 (then normal(a - b) when the expression is small).
//   3. constants: "numeric": both evaluated in double precision agree to 1e-9 relative (this only
//      absorbs float noise between two exact forms such as sqrt(8) and 2 sqrt(2)).
//   4. free variables: "random points": equal to 1e-6 relative at every one of 6 fixed
//      pseudo-random points (variables drawn from [0.5, 2.5], where sqrt/log are real).
//   5. "decimal rounds exact value": one side is a lone decimal literal with d decimals, the other
//      side's exact value needs rounding at d decimals, and the decimal is within 10^-d (rounding
//      or truncation) and within 1e-4 relative. So 0.3333 == 1/3 and 3.1416 == pi, but
//      0.333 != 1/3 (1e-3 relative) and 18.0001 != 18 (18 needs no rounding).
// Infinity only ever equals itself with the same sign.
//
// Relations: "name = value" (one variable or a segment name "AB" on the left; a chain
// "x = 5+5+1 = 11" gives its last side) stands for its value; any other equation is compared with
// equations only, by solution set (sides proportional: "2x + 2y = 2" is "x + y = 1"). An
// inequality in one variable is the set of reals it describes ("-x > -1" is "x < 1" is
// "(-\infty, 1)"; "x \ne 3" is "(-\infty, 3) \cup (3, \infty)"): linear ones exactly, rational
// functions of degree up to 4 by the signs between their real roots ("x^2 < 4" is "(-2, 2)"), and
// "x < -2 or x > 3" is the union of its parts. An inequality in several variables equals a
// positive multiple of itself ("a - b < 0" is "2b > 2a").
//
// GiNaC is not thread-safe (non-atomic reference counts on shared constants), so every public
// entry point here holds one process-wide mutex.
#include "answer/equiv.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <complex>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "answer/latex.h"
#include "answer/numeric.h"
#include "core/text.h"

namespace metamath::answer {
namespace {

using GiNaC::ex;
using GiNaC::numeric;
using latex::Value;
using latex::VType;
using cplx = std::complex<double>;

std::mutex& ginac_mutex() {
  static std::mutex m;
  return m;
}

struct Outcome {
  bool equal;
  std::string rule;
};

struct Ctx {
  const latex::Deadline& dl;
  void check() const {
    if (dl.expired()) throw latex::ParseError("time limit exceeded");
  }
};

// ---------------------------------------------------------------------------------------------
// Double-precision evaluation of a GiNaC expression at a point (symbols -> values). Used for the
// numeric rules; never allocates big numbers, so it is safe on anything the parser accepted.

using Point = std::function<double(const GiNaC::symbol&)>;

cplx eval(const ex& e, const Point& at) {
  if (GiNaC::is_a<numeric>(e)) {
    const numeric& n = GiNaC::ex_to<numeric>(e);
    return {n.real().to_double(), n.imag().to_double()};
  }
  if (GiNaC::is_a<GiNaC::symbol>(e)) {
    const auto& s = GiNaC::ex_to<GiNaC::symbol>(e);
    if (s.get_name() == "\\infty") return {NAN, 0};
    return {at(s), 0};
  }
  if (GiNaC::is_a<GiNaC::constant>(e)) return {e.is_equal(GiNaC::Pi) ? M_PI : NAN, 0};
  if (GiNaC::is_a<GiNaC::add>(e)) {
    cplx s = 0;
    for (std::size_t i = 0; i < e.nops(); ++i) s += eval(e.op(i), at);
    return s;
  }
  if (GiNaC::is_a<GiNaC::mul>(e)) {
    cplx p = 1;
    for (std::size_t i = 0; i < e.nops(); ++i) p *= eval(e.op(i), at);
    return p;
  }
  if (GiNaC::is_a<GiNaC::power>(e)) {
    cplx b = eval(e.op(0), at), x = eval(e.op(1), at);
    if (x.imag() == 0 && b.imag() == 0) {
      double xr = x.real(), br = b.real();
      if (xr == std::round(xr)) return std::pow(br, xr);
      if (br >= 0) return std::pow(br, xr);
    }
    return std::pow(b, x);
  }
  if (GiNaC::is_a<GiNaC::function>(e)) {
    const std::string name = GiNaC::ex_to<GiNaC::function>(e).get_name();
    cplx a = e.nops() > 0 ? eval(e.op(0), at) : cplx(NAN, 0);
    if (name == "sin") return std::sin(a);
    if (name == "cos") return std::cos(a);
    if (name == "tan") return std::tan(a);
    if (name == "asin") return std::asin(a);
    if (name == "acos") return std::acos(a);
    if (name == "atan") return std::atan(a);
    if (name == "sinh") return std::sinh(a);
    if (name == "cosh") return std::cosh(a);
    if (name == "tanh") return std::tanh(a);
    if (name == "exp") return std::exp(a);
    if (name == "bigpow") return std::pow(a, eval(e.op(1), at));
    if (name == "log") return std::log(a);
    if (name == "abs") return std::abs(a);
    if (name == "factorial") return std::tgamma(a.real() + 1);
    if (name == "binomial") {
      double n = a.real(), k = eval(e.op(1), at).real();
      return std::exp(std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1));
    }
  }
  return {NAN, 0};
}

bool finite(cplx z) { return std::isfinite(z.real()) && std::isfinite(z.imag()); }

bool close(cplx a, cplx b, double rel, double abs_floor) {
  double d = std::abs(a - b);
  double m = std::max(std::abs(a), std::abs(b));
  return d <= rel * m || d <= abs_floor;
}

void collect_symbols(const ex& e, std::set<std::string>& names, std::vector<GiNaC::symbol>& out) {
  if (GiNaC::is_a<GiNaC::symbol>(e)) {
    const auto& s = GiNaC::ex_to<GiNaC::symbol>(e);
    if (names.insert(s.get_name()).second) out.push_back(s);
    return;
  }
  for (std::size_t i = 0; i < e.nops(); ++i) collect_symbols(e.op(i), names, out);
}

// Deterministic pseudo-random value of a symbol at point k, in [0.5, 2.5].
double point_value(const std::string& name, int k) {
  std::uint64_t h = std::hash<std::string>{}(name) ^ (0x9E3779B97F4A7C15ull * (k + 1));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return 0.5 + 2.0 * static_cast<double>(h % 1000003) / 1000003.0;
}

// Sums of products of rational numbers and symbols with natural exponents.
bool rational_polynomial(const ex& e) {
  if (GiNaC::is_a<numeric>(e)) {
    const numeric& n = GiNaC::ex_to<numeric>(e);
    return n.real().is_rational() && n.imag().is_rational();
  }
  if (GiNaC::is_a<GiNaC::symbol>(e)) return true;
  if (GiNaC::is_a<GiNaC::power>(e))
    return GiNaC::is_a<GiNaC::symbol>(e.op(0)) && GiNaC::is_a<numeric>(e.op(1)) &&
           GiNaC::ex_to<numeric>(e.op(1)).is_pos_integer();
  if (GiNaC::is_a<GiNaC::add>(e) || GiNaC::is_a<GiNaC::mul>(e)) {
    for (std::size_t i = 0; i < e.nops(); ++i)
      if (!rational_polynomial(e.op(i))) return false;
    return true;
  }
  return false;
}

std::size_t node_count(const ex& e) {
  std::size_t n = 1;
  for (std::size_t i = 0; i < e.nops(); ++i) n += node_count(e.op(i));
  return n;
}

// ---------------------------------------------------------------------------------------------
// Scalars.

bool needs_rounding(const ex& x, int d) {
  if (!GiNaC::is_a<numeric>(x)) return true;  // irrational constant (pi, sqrt 2, ...)
  const numeric& n = GiNaC::ex_to<numeric>(x);
  if (!n.is_rational()) return true;
  return !(n * GiNaC::pow(numeric(10), numeric(d))).is_integer();
}

std::optional<Outcome> decimal_rule(const Value& a, const Value& b) {
  const Value* dec = nullptr;
  const Value* other = nullptr;
  if (a.decimals > 0 && b.decimals < 0) {
    dec = &a;
    other = &b;
  } else if (b.decimals > 0 && a.decimals < 0) {
    dec = &b;
    other = &a;
  }
  if (!dec || dec->decimals > 30) return std::nullopt;
  Point none = [](const GiNaC::symbol&) { return NAN; };
  cplx vd = eval(dec->expr, none), vx = eval(other->expr, none);
  if (!finite(vd) || !finite(vx) || vx.imag() != 0) return std::nullopt;
  double diff = std::abs(vd - vx);
  bool ok = needs_rounding(other->expr, dec->decimals) &&
            diff <= std::pow(10.0, -dec->decimals) * (1 + 1e-9) && diff <= 1e-4 * std::abs(vx);
  if (ok) return Outcome{true, "decimal rounds exact value (1e-4 relative)"};
  return std::nullopt;
}

// Does e hold a sum raised to an integer power above 8 in size (positive or negative)?
bool has_high_power_of_sum(const ex& e) {
  if (GiNaC::is_a<GiNaC::power>(e) && GiNaC::is_a<GiNaC::add>(e.op(0)) &&
      GiNaC::is_a<numeric>(e.op(1)) && GiNaC::ex_to<numeric>(e.op(1)).is_integer() &&
      GiNaC::abs(GiNaC::ex_to<numeric>(e.op(1))) > 8)
    return true;
  for (std::size_t i = 0; i < e.nops(); ++i)
    if (has_high_power_of_sum(e.op(i))) return true;
  return false;
}

// Whether a - b can be multiplied out within the time limit: expand() cannot be interrupted, so
// its work is bounded before it starts (latex::expand_work).
bool cheap_to_expand(const ex& a, const ex& b) {
  return latex::expanded_terms(a) + latex::expanded_terms(b) < 2000 &&
         latex::expand_work(a) + latex::expand_work(b) < latex::kMaxExpandWork;
}

Outcome compare_scalar(const Value& a, const Value& b, const Ctx& ctx) {
  ctx.check();
  const ex ea = latex::unhold(a.expr);
  const ex eb = latex::unhold(b.expr);
  const auto& inf = latex::infinity_symbol();
  if (ea.has(inf) || eb.has(inf)) {
    bool eq = cheap_to_expand(ea, eb) ? (ea - eb).expand().is_zero() : ea.is_equal(eb);
    return {eq, "infinity"};
  }
  if (GiNaC::is_a<numeric>(ea) && GiNaC::is_a<numeric>(eb)) {
    if (ea.is_equal(eb)) return {true, "exact"};
    if (auto d = decimal_rule(a, b)) return *d;
    return {false, "exact"};
  }
  ex diff = ea - eb;
  if (cheap_to_expand(ea, eb)) {
    ex d = diff.expand();
    if (d.is_zero()) return {true, "symbolic"};
    // An expanded polynomial with rational coefficients is a canonical form: a nonzero one means
    // the answers differ, even where random points could not tell (x^30 vs x^30 + 1).
    if (rational_polynomial(d)) return {false, "symbolic (polynomial difference is not 0)"};
    ctx.check();
    // normal() (polynomial gcds) cannot be interrupted: keep it small, and away from high powers
    // of sums, which it multiplies out ("(7p+4e+5333333)^{-28}": 200 ms).
    if (node_count(d) < 60 && !has_high_power_of_sum(d)) {
      ex n = GiNaC::normal(d);
      if (n.is_zero()) return {true, "symbolic (normal)"};
      ctx.check();
    }
  }
  std::set<std::string> names;
  std::vector<GiNaC::symbol> syms;
  collect_symbols(ea, names, syms);
  collect_symbols(eb, names, syms);
  if (syms.empty()) {
    Point none = [](const GiNaC::symbol&) { return NAN; };
    cplx va = eval(ea, none), vb = eval(eb, none);
    if (!finite(va) || !finite(vb)) return {false, "numeric: value not finite"};
    if (close(va, vb, 1e-9, 1e-14)) return {true, "numeric (1e-9 relative)"};
    if (auto d = decimal_rule(a, b)) return *d;
    return {false, "numeric value differs"};
  }
  int valid = 0;
  for (int k = 0; k < 6; ++k) {
    ctx.check();
    Point at = [k](const GiNaC::symbol& s) { return point_value(s.get_name(), k); };
    cplx va = eval(ea, at), vb = eval(eb, at);
    if (!finite(va) || !finite(vb)) continue;
    ++valid;
    if (!close(va, vb, 1e-6, 1e-12)) return {false, "differs at a random point"};
  }
  if (valid < 2) return {false, "could not evaluate at random points"};
  return {true, "random points (1e-6 relative)"};
}

// ---------------------------------------------------------------------------------------------
// Structures.

Outcome compare(const Value& a, const Value& b, const Ctx& ctx);

Outcome compare_ordered(const std::vector<Value>& a, const std::vector<Value>& b, const Ctx& ctx,
                        const char* what) {
  if (a.size() != b.size()) return {false, std::string(what) + ": different sizes"};
  for (std::size_t i = 0; i < a.size(); ++i) {
    Outcome o = compare(a[i], b[i], ctx);
    if (!o.equal)
      return {false, std::string(what) + ": element " + std::to_string(i + 1) + " " + o.rule};
  }
  return {true, std::string(what) + ": all elements equal"};
}

Outcome compare_unordered(const std::vector<Value>& a, const std::vector<Value>& b, const Ctx& ctx,
                          const char* what) {
  if (a.size() != b.size()) return {false, std::string(what) + ": different number of elements"};
  std::vector<bool> used(b.size(), false);
  for (const auto& x : a) {
    bool found = false;
    for (std::size_t j = 0; j < b.size() && !found; ++j) {
      if (used[j]) continue;
      if (compare(x, b[j], ctx).equal) used[j] = found = true;
    }
    if (!found) return {false, std::string(what) + ": an element has no match"};
  }
  return {true, std::string(what) + ": same elements (any order)"};
}

bool is_bare_symbol(const Value& v) {
  return v.type == VType::Scalar && GiNaC::is_a<GiNaC::symbol>(v.expr) &&
         !v.expr.is_equal(latex::infinity_symbol());
}

// A name a value can be given: one variable ("x", "a_{1}", "\theta") or a segment or figure named
// by capital letters ("AB", "ABC").
bool is_name(const Value& v) {
  if (is_bare_symbol(v)) return true;
  if (v.type != VType::Scalar || !GiNaC::is_a<GiNaC::mul>(v.expr)) return false;
  for (std::size_t i = 0; i < v.expr.nops(); ++i) {
    const ex& f = v.expr.op(i);
    if (!GiNaC::is_a<GiNaC::symbol>(f)) return false;
    const std::string& n = GiNaC::ex_to<GiNaC::symbol>(f).get_name();
    if (n.size() != 1 || !std::isupper(static_cast<unsigned char>(n[0]))) return false;
  }
  return true;
}

bool has_symbol(const ex& e) {
  if (GiNaC::is_a<GiNaC::symbol>(e)) return true;
  for (std::size_t i = 0; i < e.nops(); ++i)
    if (has_symbol(e.op(i))) return true;
  return false;
}

// A number: a scalar with no variable in it ("0.56", "56\%", "2+3", "\pi").
bool is_constant(const Value& v) { return v.type == VType::Scalar && !has_symbol(v.expr); }

// The value an equation stands for when it is compared with a bare answer: "x = 5" -> 5,
// "x = 5+5+1 = 11" -> 11 (a chain gives its last side), "5 = x" -> 5, "x \in [1,2]" -> [1,2],
// and a chain of numbers its last side ("0.56 = 56\%" -> 56\%: a wrong chain such as "2 = 3"
// then stands for 3, as a worked answer that ends "... = 3" does). Only these qualify:
// "7 = 11a + c" and "a + 3z = 0" stand for no value.
const Value* equation_value(const Value& r) {
  if (r.ops.size() == 1 && r.ops[0] == "in") return &r.items[1];
  for (const auto& op : r.ops)
    if (op != "=") return nullptr;
  if (is_name(r.items[0])) return &r.items.back();
  if (std::all_of(r.items.begin(), r.items.end(), is_constant)) return &r.items.back();
  if (r.ops.size() == 1 && is_name(r.items[1])) return &r.items[0];
  return nullptr;
}

std::string flip(const std::string& op) {
  if (op == "<") return ">";
  if (op == ">") return "<";
  if (op == "<=") return ">=";
  if (op == ">=") return "<=";
  return op;
}

bool is_inequality(const std::string& op) {
  return op == "<" || op == "<=" || op == ">" || op == ">=" || op == "!=";
}

// ---------------------------------------------------------------------------------------------
// Sets of real numbers: what an inequality in one variable, an interval or a union describes.
// A RealSet is a sorted list of disjoint pieces with constant ends (+-\infty for unbounded ones);
// after normalisation every set has exactly one such form, so two sets are equal when their
// pieces are.

// Longest chain or union turned into a set: the pairwise work stays small under the time limit.
constexpr std::size_t kMaxSetPieces = 32;

struct Piece {
  ex lo, hi;
  bool lo_closed = false, hi_closed = false;
};
using RealSet = std::vector<Piece>;

// Thrown while building a RealSet for an end that is not a real constant (it then cannot be
// ordered); the caller falls back to the other relation rules.
struct NotARealSet {};

// -1, 0, +1 for an infinite end (-\infty, finite, +\infty).
int infinite_sign(const ex& e) {
  const auto& inf = latex::infinity_symbol();
  if (e.is_equal(inf)) return 1;
  if (e.is_equal(-inf)) return -1;
  if (e.has(inf)) throw NotARealSet{};
  return 0;
}

// Order of two constant ends: exact for rationals, else in double precision (1e-9 relative, as
// the "numeric" scalar rule).
int order(const ex& a, const ex& b) {
  int ia = infinite_sign(a), ib = infinite_sign(b);
  if (ia != 0 || ib != 0) return ia == ib ? 0 : (ia < ib ? -1 : 1);
  ex d = a - b;
  if (GiNaC::is_a<numeric>(d)) {
    const numeric& n = GiNaC::ex_to<numeric>(d);
    if (!n.is_real()) throw NotARealSet{};
    return n.is_zero() ? 0 : (n.is_negative() ? -1 : 1);
  }
  Point none = [](const GiNaC::symbol&) { return NAN; };
  cplx va = eval(a, none), vb = eval(b, none);
  if (!finite(va) || !finite(vb) || std::abs(va.imag()) > 1e-12 || std::abs(vb.imag()) > 1e-12)
    throw NotARealSet{};
  if (close(va, vb, 1e-9, 1e-14)) return 0;
  return va.real() < vb.real() ? -1 : 1;
}

bool piece_empty(const Piece& p) {
  int o = order(p.lo, p.hi);
  return o > 0 || (o == 0 && !(p.lo_closed && p.hi_closed));
}

// Sorts the pieces and merges those that overlap or touch ("(1,2] \cup (2,3)" is "(1,3)").
RealSet normalize_set(RealSet s) {
  std::erase_if(s, piece_empty);
  for (auto& p : s) {  // an infinite end is never included
    if (infinite_sign(p.lo) != 0) p.lo_closed = false;
    if (infinite_sign(p.hi) != 0) p.hi_closed = false;
  }
  for (std::size_t i = 1; i < s.size(); ++i)  // insertion sort: sets are a few pieces long
    for (std::size_t j = i; j > 0; --j) {
      int o = order(s[j - 1].lo, s[j].lo);
      if (o < 0 || (o == 0 && s[j - 1].lo_closed)) break;
      std::swap(s[j - 1], s[j]);
    }
  RealSet out;
  for (auto& p : s) {
    if (!out.empty()) {
      Piece& last = out.back();
      int touch = order(p.lo, last.hi);
      if (touch < 0 || (touch == 0 && (p.lo_closed || last.hi_closed))) {
        int o = order(p.hi, last.hi);
        if (o > 0 || (o == 0 && p.hi_closed)) {
          last.hi = p.hi;
          last.hi_closed = p.hi_closed || (o == 0 && last.hi_closed);
        }
        continue;
      }
    }
    out.push_back(p);
  }
  return out;
}

RealSet intersect(const RealSet& a, const RealSet& b) {
  RealSet out;
  for (const auto& p : a)
    for (const auto& q : b) {
      Piece r;
      int lo = order(p.lo, q.lo), hi = order(p.hi, q.hi);
      r.lo = lo >= 0 ? p.lo : q.lo;
      r.lo_closed = lo > 0 ? p.lo_closed : lo < 0 ? q.lo_closed : (p.lo_closed && q.lo_closed);
      r.hi = hi <= 0 ? p.hi : q.hi;
      r.hi_closed = hi < 0 ? p.hi_closed : hi > 0 ? q.hi_closed : (p.hi_closed && q.hi_closed);
      out.push_back(r);
    }
  return normalize_set(out);
}

// The set {x : x op c}.
RealSet solution_set(const std::string& op, const ex& c) {
  const ex inf = latex::infinity_symbol();
  if (op == "<") return {{-inf, c, false, false}};
  if (op == "<=") return {{-inf, c, false, true}};
  if (op == ">") return {{c, inf, false, false}};
  if (op == ">=") return {{c, inf, true, false}};
  if (op == "=") return {{c, c, true, true}};
  if (op == "!=") return {{-inf, c, false, false}, {c, inf, false, false}};
  throw NotARealSet{};
}

// Highest degree in x of the numerator and of the denominator of a non-linear inequality.
constexpr int kMaxSolveDegree = 4;

// The real roots of the polynomial p in x (constant coefficients), unsorted, possibly repeated:
// factors of degree 1 and 2 are solved exactly (a quadratic through its discriminant); above
// degree 2 p is first factored over the rationals. Throws NotARealSet for an irreducible factor
// of degree 3 or more, or irrational coefficients in a polynomial of degree 3 or more.
std::vector<ex> real_roots(const ex& p, const ex& x) {
  std::vector<ex> roots;
  auto solve_factor = [&](const ex& f) {
    ex e = f.expand();
    int deg = e.degree(x);
    if (deg == 0) return;
    if (deg > 2) throw NotARealSet{};
    if (deg == 1) {
      roots.push_back(-e.coeff(x, 0) / e.coeff(x, 1));
      return;
    }
    ex a = e.coeff(x, 2), b = e.coeff(x, 1), c = e.coeff(x, 0);
    ex disc = (b * b - 4 * a * c).expand();
    int o = order(disc, 0);
    if (o == 0) roots.push_back(-b / (2 * a));
    if (o > 0) {
      roots.push_back((-b - GiNaC::sqrt(disc)) / (2 * a));
      roots.push_back((-b + GiNaC::sqrt(disc)) / (2 * a));
    }
  };
  ex e = p.expand();
  if (e.degree(x) <= 2) {
    solve_factor(e);
    return roots;
  }
  for (int k = 0; k <= e.degree(x); ++k) {  // factor() wants small rational coefficients
    ex c = e.coeff(x, k);
    if (!GiNaC::is_a<numeric>(c) || !GiNaC::ex_to<numeric>(c).is_rational()) throw NotARealSet{};
    const numeric& n = GiNaC::ex_to<numeric>(c);
    if (n.numer().int_length() > 128 || n.denom().int_length() > 128) throw NotARealSet{};
  }
  ex f = GiNaC::factor(e);
  std::vector<ex> factors;
  if (GiNaC::is_a<GiNaC::mul>(f)) {
    for (std::size_t i = 0; i < f.nops(); ++i) factors.push_back(f.op(i));
  } else {
    factors.push_back(f);
  }
  for (ex g : factors) solve_factor(GiNaC::is_a<GiNaC::power>(g) ? g.op(0) : g);
  return roots;
}

// Whether "v op 0" holds for a value of sign v (-1, 0, +1).
bool sign_holds(int v, const std::string& op) {
  return op == "<"    ? v < 0
         : op == "<=" ? v <= 0
         : op == ">"  ? v > 0
         : op == ">=" ? v >= 0
         : op == "="  ? v == 0
                      : v != 0;
}

// {x : d op 0} for a rational function d = n / m of x (degrees up to kMaxSolveDegree), by sign
// analysis: between consecutive real roots of n and m the sign of d is constant, so it is read at
// one test point per gap (in double precision: the gaps hold no root); at a root of n, d is 0; at
// a root of m, d is undefined and the point is never in the set. "x^2 < 4" is (-2, 2).
RealSet solve_by_signs(const ex& d, const std::string& op, const ex& x) {
  // numer_denom() (polynomial gcds) cannot be interrupted: the same bounds as normal() above.
  if (node_count(d) >= 60 || has_high_power_of_sum(d)) throw NotARealSet{};
  ex nd = GiNaC::numer_denom(d);
  ex num = nd.op(0), den = nd.op(1);
  if (!num.is_polynomial(x) || !den.is_polynomial(x) || num.degree(x) > kMaxSolveDegree ||
      den.degree(x) > kMaxSolveDegree)
    throw NotARealSet{};
  std::vector<ex> num_roots = real_roots(num, x), den_roots = real_roots(den, x);
  std::vector<ex> crit = num_roots;
  crit.insert(crit.end(), den_roots.begin(), den_roots.end());
  std::sort(crit.begin(), crit.end(), [](const ex& a, const ex& b) { return order(a, b) < 0; });
  crit.erase(std::unique(crit.begin(), crit.end(),
                         [](const ex& a, const ex& b) { return order(a, b) == 0; }),
             crit.end());
  auto sign_at = [&](const ex& t) {
    Point none = [](const GiNaC::symbol&) { return NAN; };
    cplx v = eval(num.subs(x == t), none) / eval(den.subs(x == t), none);
    if (!finite(v)) throw NotARealSet{};
    return v.real() < 0 ? -1 : (v.real() > 0 ? 1 : 0);
  };
  auto is_root_of = [](const std::vector<ex>& roots, const ex& r) {
    return std::any_of(roots.begin(), roots.end(), [&](const ex& q) { return order(q, r) == 0; });
  };
  const ex inf = latex::infinity_symbol();
  RealSet out;
  for (std::size_t i = 0; i <= crit.size(); ++i) {
    ex lo = i == 0 ? -inf : crit[i - 1], hi = i == crit.size() ? inf : crit[i];
    ex t = crit.empty()       ? ex(0)
           : i == 0           ? crit[0] - 1
           : i == crit.size() ? crit.back() + 1
                              : (lo + hi) / 2;
    if (sign_holds(sign_at(t), op)) out.push_back({lo, hi, false, false});
    if (i < crit.size() && !is_root_of(den_roots, crit[i]) && sign_holds(0, op))
      out.push_back({crit[i], crit[i], true, true});
  }
  return normalize_set(out);
}

// {x : lhs op rhs} when lhs - rhs is linear in x with constant coefficients: a x + b op 0 becomes
// x op -b/a, the inequality flipping when a < 0 (so -x > -1 is x < 1); other rational functions
// of x go to solve_by_signs.
RealSet solve_one_variable(const ex& lhs, const std::string& op, const ex& rhs, const ex& x) {
  ex d = lhs - rhs;
  if (latex::expanded_terms(d) > 200) throw NotARealSet{};
  if (op != "=" && op != "<" && op != "<=" && op != ">" && op != ">=" && op != "!=")
    throw NotARealSet{};
  ex full = d;
  d = d.expand();
  ex a = d.coeff(x, 1), b = d.coeff(x, 0);
  if (a.has(x) || b.has(x) || !(d - a * x - b).expand().is_zero())
    return solve_by_signs(full, op, x);
  int sign = order(a, 0);
  if (sign == 0) {  // no x left: "b op 0" holds for every x or for none
    if (!sign_holds(order(b, 0), op)) return {};
    return {{-latex::infinity_symbol(), latex::infinity_symbol(), false, false}};
  }
  return solution_set(sign < 0 ? flip(op) : op, -b / a);
}

std::optional<RealSet> as_real_set(const Value& v, std::optional<ex>& var, const Ctx& ctx);

// The symbols in e other than \infty, as expressions (a GiNaC::symbol copy would lose the
// realsymbol type, and with it equality to the symbol in the expression).
void collect_variables(const ex& e, std::vector<ex>& out) {
  if (GiNaC::is_a<GiNaC::symbol>(e)) {
    if (e.is_equal(latex::infinity_symbol())) return;
    for (const auto& s : out)
      if (s.is_equal(e)) return;
    out.push_back(e);
    return;
  }
  for (std::size_t i = 0; i < e.nops(); ++i) collect_variables(e.op(i), out);
}

// The one variable in the sides of a relation, or nullopt.
std::optional<ex> single_variable(const std::vector<Value>& sides) {
  std::vector<ex> vars;
  for (const auto& s : sides) {
    if (s.type != VType::Scalar) return std::nullopt;
    collect_variables(latex::unhold(s.expr), vars);
  }
  if (vars.size() != 1) return std::nullopt;
  return vars[0];
}

// A relation in one variable with at least one inequality ("-x > -1", "1 < x \le 3", "x \ne 3",
// "x^2 \ge 9", "x \in [1, 2)") as the set it describes; a chain is the intersection of its
// links. In a union ("x < 1 or x = 3") an equation alone is a set too (in_union).
std::optional<RealSet> relation_set(const Value& r, std::optional<ex>& var, bool in_union,
                                    const Ctx& ctx) {
  if (r.ops.size() == 1 && r.ops[0] == "in") {
    if (!is_bare_symbol(r.items[0])) return std::nullopt;
    var = r.items[0].expr;
    std::optional<ex> inner;
    return as_real_set(r.items[1], inner, ctx);
  }
  if (r.ops.size() > kMaxSetPieces ||
      (!in_union && std::none_of(r.ops.begin(), r.ops.end(), is_inequality)))
    return std::nullopt;
  for (const auto& op : r.ops)
    if (op == "in") return std::nullopt;
  auto x = single_variable(r.items);
  if (!x) return std::nullopt;
  var = *x;
  RealSet s = {{-latex::infinity_symbol(), latex::infinity_symbol(), false, false}};
  for (std::size_t i = 0; i < r.ops.size(); ++i) {
    ctx.check();  // each link is a sign analysis: a long chain must not outrun the limit
    s = intersect(s, solve_one_variable(latex::unhold(r.items[i].expr), r.ops[i],
                                        latex::unhold(r.items[i + 1].expr), *x));
  }
  return s;
}

// A constant end of an interval ("\infty" included).
ex set_end(const Value& v) {
  if (v.type != VType::Scalar) throw NotARealSet{};
  ex e = latex::unhold(v.expr);
  infinite_sign(e);  // throws for a non-constant use of \infty
  std::vector<ex> vars;
  collect_variables(e, vars);
  if (!vars.empty()) throw NotARealSet{};
  return e;
}

// Intervals, unions (of intervals, or of relations: "x < -2 or x > 3"), finite sets of constants
// and one-variable relations as RealSets; `var` gets the relations' variable. nullopt for anything
// else (symbolic ends, equations, relations in different variables, degree-5 inequalities).
std::optional<RealSet> as_real_set(const Value& v, std::optional<ex>& var, const Ctx& ctx) {
  if (v.items.size() > kMaxSetPieces) return std::nullopt;
  try {
    switch (v.type) {
      case VType::Interval:
      case VType::Tuple:  // "(1, 2)" read as a pair: the open interval
        if (v.items.size() != 2) return std::nullopt;
        return normalize_set(
            {{set_end(v.items[0]), set_end(v.items[1]), v.left_closed, v.right_closed}});
      case VType::Set: {
        RealSet s;
        for (const auto& i : v.items) s.push_back({set_end(i), set_end(i), true, true});
        return normalize_set(s);
      }
      case VType::Union: {
        RealSet s;
        for (const auto& i : v.items) {
          ctx.check();
          std::optional<ex> inner;
          auto p = i.type == VType::Relation ? relation_set(i, inner, true, ctx)
                                             : as_real_set(i, inner, ctx);
          if (!p) return std::nullopt;
          if (inner && var && !var->is_equal(*inner)) return std::nullopt;
          if (inner) var = inner;
          s.insert(s.end(), p->begin(), p->end());
        }
        return normalize_set(s);
      }
      case VType::Relation:
        return relation_set(v, var, false, ctx);
      default:
        return std::nullopt;
    }
  } catch (const NotARealSet&) {
    return std::nullopt;
  } catch (const latex::ParseError&) {
    throw;
  } catch (const std::exception&) {  // GiNaC arithmetic errors: not a set we can reason about
    return std::nullopt;
  }
}

bool same_set(const RealSet& a, const RealSet& b) {
  if (a.size() != b.size()) return false;
  try {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (order(a[i].lo, b[i].lo) != 0 || order(a[i].hi, b[i].hi) != 0 ||
          a[i].lo_closed != b[i].lo_closed || a[i].hi_closed != b[i].hi_closed)
        return false;
  } catch (const NotARealSet&) {
    return false;
  }
  return true;
}

// Compares a one-variable relation with a set or another relation by the sets they describe;
// nullopt when either is not such a set (or the relations name different variables).
std::optional<Outcome> compare_as_sets(const Value& a, const Value& b, const Ctx& ctx) {
  ctx.check();
  std::optional<ex> va, vb;
  auto sa = as_real_set(a, va, ctx);
  if (!sa) return std::nullopt;
  auto sb = as_real_set(b, vb, ctx);
  if (!sb) return std::nullopt;
  if (va && vb && !va->is_equal(*vb)) return Outcome{false, "relation: different variables"};
  if (same_set(*sa, *sb)) return Outcome{true, "relation: same solution set"};
  return Outcome{false, "relation: different solution sets"};
}

// The ratio da / db when one is a nonzero constant multiple of the other (checked symbolically,
// then at random points); nullopt otherwise.
std::optional<cplx> constant_ratio(const ex& da, const ex& db, const Ctx& ctx) {
  if (da.is_zero() || db.is_zero()) return std::nullopt;
  if (cheap_to_expand(da, db) && (da - db).expand().is_zero()) return cplx(1, 0);
  std::set<std::string> names;
  std::vector<GiNaC::symbol> syms;
  collect_symbols(da, names, syms);
  collect_symbols(db, names, syms);
  if (syms.empty()) return std::nullopt;
  std::optional<cplx> ratio;
  int valid = 0;
  for (int k = 0; k < 6; ++k) {
    ctx.check();
    Point at = [k](const GiNaC::symbol& s) { return point_value(s.get_name(), k); };
    cplx va = eval(da, at), vb = eval(db, at);
    if (!finite(va) || !finite(vb) || std::abs(vb) < 1e-12) continue;
    cplx r = va / vb;
    if (!finite(r) || std::abs(r) < 1e-12) return std::nullopt;
    if (ratio && !close(*ratio, r, 1e-6, 0)) return std::nullopt;
    ratio = r;
    ++valid;
  }
  if (valid < 2) return std::nullopt;
  return ratio;
}

bool all_scalar(const Value& r) {
  return std::all_of(r.items.begin(), r.items.end(),
                     [](const Value& v) { return v.type == VType::Scalar; });
}

// One relation "lhs op rhs" as "d op' 0" with op' one of =, <, <=, != (">" is turned around).
std::pair<ex, std::string> against_zero(const Value& r) {
  const std::string& op = r.ops[0];
  ex d = r.items[0].expr - r.items[1].expr;
  if (op == ">" || op == ">=") return {-d, flip(op)};
  return {d, op};
}

Outcome compare_relation(const Value& a, const Value& b, const Ctx& ctx) {
  if (a.ops.size() == b.ops.size()) {
    if (a.ops == b.ops && compare_ordered(a.items, b.items, ctx, "relation").equal)
      return {true, "relation: same sides"};
    std::vector<std::string> fl;
    for (auto it = b.ops.rbegin(); it != b.ops.rend(); ++it) fl.push_back(flip(*it));
    std::vector<Value> rev(b.items.rbegin(), b.items.rend());
    if (a.ops == fl && compare_ordered(a.items, rev, ctx, "relation").equal)
      return {true, "relation: same sides, reversed"};
  }
  if (auto o = compare_as_sets(a, b, ctx)) return *o;
  // One relation each, in any number of variables: the same when (lhs - rhs) of one is a constant
  // multiple of the other's (y = 2x + 3 and 2y - 4x = 6), positive for an inequality
  // (a - b < 0 and 2b > 2a).
  if (a.ops.size() == 1 && b.ops.size() == 1 && a.ops[0] != "in" && b.ops[0] != "in" &&
      all_scalar(a) && all_scalar(b)) {
    auto [da, opa] = against_zero(a);
    auto [db, opb] = against_zero(b);
    if (opa != opb) return {false, "relation: different kinds of relation"};
    auto ratio = constant_ratio(latex::unhold(da), latex::unhold(db), ctx);
    if (!ratio) return {false, "relation: sides not proportional"};
    if (opa == "=" || opa == "!=") return {true, "equation: proportional (random points)"};
    if (std::abs(ratio->imag()) < 1e-9 && ratio->real() > 0)
      return {true, "inequality: positive multiple (random points)"};
    return {false, "inequality: negative multiple"};
  }
  return {false, "relation differs"};
}

bool is_vector(const Value& m, std::size_t n) {
  return m.type == VType::Matrix && ((m.rows.size() == n && m.rows[0].size() == 1) ||
                                     (m.rows.size() == 1 && m.rows[0].size() == n));
}

std::vector<Value> vector_items(const Value& m) {
  std::vector<Value> out;
  for (auto& r : m.rows)
    for (auto& x : r) out.push_back(x);
  return out;
}

Outcome compare(const Value& a, const Value& b, const Ctx& ctx) {
  ctx.check();
  // A relation against a bare answer: an inequality against the interval or union it describes,
  // "x = 5" against its value.
  if (a.type == VType::Relation && b.type != VType::Relation) {
    if (b.type == VType::Interval || b.type == VType::Union || b.type == VType::Tuple ||
        b.type == VType::Set) {
      if (auto o = compare_as_sets(a, b, ctx)) return *o;
    }
    if (const Value* v = equation_value(a)) {
      Outcome o = compare(*v, b, ctx);
      return {o.equal, "equation vs value: " + o.rule};
    }
    return {false, "relation vs value"};
  }
  if (b.type == VType::Relation && a.type != VType::Relation) return compare(b, a, ctx);
  switch (a.type) {
    case VType::Scalar:
      if (b.type == VType::Scalar) return compare_scalar(a, b, ctx);
      break;
    case VType::Relation:
      return compare_relation(a, b, ctx);
    case VType::Tuple:
      if (b.type == VType::Tuple) return compare_ordered(a.items, b.items, ctx, "tuple");
      if (b.type == VType::Interval && !b.left_closed && !b.right_closed)
        return compare_ordered(a.items, b.items, ctx, "open interval / pair");
      if (is_vector(b, a.items.size()))
        return compare_ordered(a.items, vector_items(b), ctx, "tuple / vector");
      break;
    case VType::Interval:
      if (b.type == VType::Interval) {
        if (a.left_closed != b.left_closed || a.right_closed != b.right_closed)
          return {false, "interval: different open/closed ends"};
        return compare_ordered(a.items, b.items, ctx, "interval");
      }
      if (b.type == VType::Tuple) return compare(b, a, ctx);
      if (b.type == VType::Union) return compare(b, a, ctx);
      break;
    case VType::Union:
      if (auto o = compare_as_sets(a, b, ctx)) return *o;
      if (b.type == VType::Union) return compare_unordered(a.items, b.items, ctx, "union");
      break;
    case VType::Set:
    case VType::List:
      if (b.type == VType::Set || b.type == VType::List)
        return compare_unordered(a.items, b.items, ctx,
                                 a.type == VType::Set ? "set" : "list of answers");
      break;
    case VType::Matrix:
      if (b.type == VType::Matrix) {
        if (a.rows.size() != b.rows.size() || a.rows[0].size() != b.rows[0].size())
          return {false, "matrix: different shapes"};
        for (std::size_t r = 0; r < a.rows.size(); ++r) {
          Outcome o = compare_ordered(a.rows[r], b.rows[r], ctx, "matrix");
          if (!o.equal) return o;
        }
        return {true, "matrix: all entries equal"};
      }
      if (b.type == VType::Tuple) return compare(b, a, ctx);
      break;
    case VType::Text:
    case VType::Empty:
      if (b.type == a.type) return {a.text == b.text, "text"};
      break;
  }
  return {false, "different kinds of answer"};
}

Kind kind_of(const Value& v) {
  switch (v.type) {
    case VType::Empty:
      return Kind::Empty;
    case VType::Scalar: {
      std::set<std::string> names;
      std::vector<GiNaC::symbol> syms;
      collect_symbols(v.expr, names, syms);
      for (auto& s : syms)
        if (s.get_name() != "\\infty") return Kind::Expression;
      return Kind::Number;
    }
    case VType::Relation:
      return Kind::Equation;
    case VType::Tuple:
      return Kind::Tuple;
    case VType::Interval:
    case VType::Union:
      return Kind::Interval;
    case VType::Set:
      return Kind::Set;
    case VType::Matrix:
      return Kind::Matrix;
    case VType::List:
      return Kind::List;
    case VType::Text:
      return Kind::Text;
  }
  return Kind::Text;
}

latex::ParseLimits parse_limits(const Limits& lim) {
  latex::ParseLimits p;
  p.max_input = lim.max_input;
  p.max_expr_nodes = lim.max_expr_nodes;
  return p;
}

std::string squeeze(std::string_view s) {
  std::string out;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) out += c;
  return out;
}

Result math_equivalent(std::string_view pred, std::string_view gold, const Limits& lim) {
  if (squeeze(pred) == squeeze(gold)) {
    return {Verdict::Equal, text::trim(gold).empty() ? "both empty" : "identical text"};
  }
  if (text::trim(pred).empty()) return {Verdict::Unparsable, "empty prediction"};
  if (text::trim(gold).empty()) return {Verdict::Unparsable, "empty gold answer"};
  latex::Deadline dl(lim.time_ms);
  Ctx ctx{dl};
  latex::ParseLimits pl = parse_limits(lim);
  Value a, b;
  try {
    a = latex::parse_answer(pred, pl, dl);
  } catch (const std::exception& e) {
    return {Verdict::Unparsable, std::string("prediction: ") + e.what()};
  }
  try {
    b = latex::parse_answer(gold, pl, dl);
  } catch (const std::exception& e) {
    return {Verdict::Unparsable, std::string("gold: ") + e.what()};
  }
  // Text values carry their normalised text; anything else is normalised from the raw string.
  bool text_equal = (a.type == VType::Text ? a.text : latex::normalize_text(pred)) ==
                    (b.type == VType::Text ? b.text : latex::normalize_text(gold));
  if (a.type == VType::Text || b.type == VType::Text) {
    if (text_equal) return {Verdict::Equal, "normalised text"};
    if (!a.error.empty()) return {Verdict::Unparsable, "prediction: " + a.error};
    if (!b.error.empty()) return {Verdict::Unparsable, "gold: " + b.error};
    return {Verdict::NotEqual, "normalised text differs"};
  }
  try {
    Outcome o = compare(a, b, ctx);
    if (o.equal) return {Verdict::Equal, o.rule};
    if (text_equal) return {Verdict::Equal, "normalised text"};
    return {Verdict::NotEqual, o.rule};
  } catch (const latex::ParseError& e) {
    return {Verdict::Unparsable, e.what()};
  } catch (const std::exception& e) {
    return {Verdict::Unparsable, std::string("math error: ") + e.what()};
  }
}

// GSM8K-style golds that are clock times or ratios (see equiv.h); nullopt when the gold is
// neither or the prediction is none of number, time, ratio (then compared as math).
std::optional<Result> compare_time_or_ratio(std::string_view pred, std::string_view gold,
                                            const std::optional<Number>& pred_number) {
  std::optional<ClockTime> gold_time = parse_time(gold);
  std::optional<Number> gold_ratio = parse_ratio(gold);
  if (!gold_time && !gold_ratio) return std::nullopt;
  std::optional<ClockTime> pred_time = parse_time(pred);
  std::optional<Number> pred_ratio = parse_ratio(pred);
  if (gold_time && pred_time && same_time(*pred_time, *gold_time))
    return Result{Verdict::Equal, "gsm8k: same time of day " + gold_time->str()};
  if (gold_ratio && pred_ratio && *pred_ratio == *gold_ratio)
    return Result{Verdict::Equal, "gsm8k: same ratio " + gold_ratio->str()};
  if (gold_ratio && pred_number && *pred_number == *gold_ratio)
    return Result{Verdict::Equal, "gsm8k: ratio written as the number " + gold_ratio->str()};
  if (!pred_time && !pred_ratio && !pred_number) return std::nullopt;
  return Result{Verdict::NotEqual,
                std::string("gsm8k: ") + (gold_time ? "time" : "ratio") + " differs"};
}

}  // namespace

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::Equal:
      return "equal";
    case Verdict::NotEqual:
      return "not_equal";
    case Verdict::Unparsable:
      return "unparsable";
  }
  return "?";
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Number:
      return "number";
    case Kind::Expression:
      return "expression";
    case Kind::Equation:
      return "equation";
    case Kind::Tuple:
      return "tuple";
    case Kind::Interval:
      return "interval";
    case Kind::Set:
      return "set";
    case Kind::Matrix:
      return "matrix";
    case Kind::List:
      return "list";
    case Kind::Text:
      return "text";
    case Kind::Empty:
      return "empty";
    case Kind::Time:
      return "time";
    case Kind::Ratio:
      return "ratio";
  }
  return "?";
}

Result equivalent(std::string_view pred, std::string_view gold, Style style, const Limits& lim) {
  if (pred.size() > lim.max_input) return {Verdict::Unparsable, "prediction longer than limit"};
  if (gold.size() > lim.max_input) return {Verdict::Unparsable, "gold longer than limit"};
  std::lock_guard<std::mutex> lock(ginac_mutex());
  try {
    if (style == Style::Gsm8k) {
      auto pa = parse_number(pred);
      auto pb = parse_number(gold);
      if (pa && pb) {
        if (*pa == *pb) return {Verdict::Equal, "gsm8k: same number " + pb->str()};
        return {Verdict::NotEqual, "gsm8k: " + pa->str() + " != " + pb->str()};
      }
      if (auto r = compare_time_or_ratio(pred, gold, pa)) return *r;
      Result r = math_equivalent(pred, gold, lim);
      r.reason = "gsm8k (not a plain number, compared as math): " + r.reason;
      return r;
    }
    // MATH has ratio golds too ("3:1"), which the LaTeX parser does not read (only a gold with a
    // colon can be one, so the common case pays nothing for it).
    if (gold.find(':') != std::string_view::npos)
      if (auto r = compare_time_or_ratio(pred, gold, parse_number(pred))) return *r;
    return math_equivalent(pred, gold, lim);
  } catch (const std::exception& e) {
    return {Verdict::Unparsable, std::string("internal error: ") + e.what()};
  }
}

Normalized normalize_math(std::string_view input, const Limits& lim) {
  std::lock_guard<std::mutex> lock(ginac_mutex());
  Normalized n;
  try {
    if (input.size() > lim.max_input) throw latex::ParseError("input longer than the limit");
    latex::Deadline dl(lim.time_ms);
    Value v = latex::parse_answer(input, parse_limits(lim), dl);
    n.kind = kind_of(v);
    n.canonical = latex::print(v, &dl);
    n.error = v.error;
  } catch (const std::exception& e) {
    n.kind = Kind::Text;
    n.canonical = latex::normalize_text(input.substr(0, std::min(input.size(), lim.max_input)));
    n.error = e.what();
  }
  return n;
}

Kind answer_kind(std::string_view answer, Style style, const Limits& lim) {
  {
    std::lock_guard<std::mutex> lock(ginac_mutex());
    if (style == Style::Gsm8k && parse_number(answer)) return Kind::Number;
    if (parse_time(answer)) return Kind::Time;
    if (parse_ratio(answer)) return Kind::Ratio;
  }
  return normalize_math(answer, lim).kind;
}

}  // namespace metamath::answer
