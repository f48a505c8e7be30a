// Canonical printer for parsed LaTeX answers (see latex.h): prints a Value, or one GiNaC
// expression, in the LaTeX dialect parse_answer reads back. GiNaC's term order and sign placement
// vary between runs, so terms and factors are sorted by their printed form and sums inside
// products get a positive leading term; a printed form then does not change from run to run.
#include <algorithm>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "answer/latex.h"

namespace metamath::answer::latex {

using GiNaC::ex;
using GiNaC::numeric;

namespace {

// ---------------------------------------------------------------------------------------------
// Printer.

std::string num_str(const numeric& n) {
  std::ostringstream os;
  os << n;
  return os.str();
}

std::string pr(const ex& e, int prec);

// The deadline of the print() call running on this thread, if it has one.
thread_local const Deadline* t_deadline = nullptr;

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
  // GiNaC distributes the -1 over the sum itself; expand() also multiplies out the terms, which
  // is only affordable for small ones ("x - (x-1)^3 (z+2)^{301}" would take 50 ms).
  b = expanded_terms(b) < 300 && expand_work(b) < kMaxExpandWork ? (-b).expand() : -b;
  return true;
}

std::string pr(const ex& e, int prec) {
  if (t_deadline && t_deadline->expired()) throw ParseError("time limit exceeded while printing");
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

std::string print_expr(const GiNaC::ex& e) {
  // Expanded when that is cheap: factored and expanded forms then print alike, and GiNaC's
  // run-dependent choice of which factor carries a sign disappears.
  if (expanded_terms(e) < 300 && expand_work(e) < kMaxExpandWork) return pr(e.expand(), 0);
  return pr(e, 0);
}

std::string print(const Value& v, const Deadline* deadline) {
  if (deadline) {
    struct Scope {  // the outermost call with a deadline sets it for the nested ones
      const Deadline* saved = t_deadline;
      explicit Scope(const Deadline* d) { t_deadline = d; }
      ~Scope() { t_deadline = saved; }
    } scope(deadline);
    return print(v, nullptr);
  }
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
