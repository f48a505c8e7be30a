#include "bootstrap/symbolic_solution.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <stdexcept>

#include "bootstrap/metamathqa.h"

namespace metamath::bootstrap::symbolic {
namespace {

using GiNaC::ex;
using GiNaC::ex_to;
using GiNaC::is_a;
using GiNaC::numeric;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// A printed expression and how tightly it binds: 1 a sum (or a negative), 2 a product or quotient,
// 3 an atom (x, a non-negative number).
struct P {
  std::string s;
  int prec = 3;
};

std::string wrap(const P& p, int need) { return p.prec < need ? "(" + p.s + ")" : p.s; }

bool terminating(const numeric& v) {
  numeric d = v.denom();
  while (GiNaC::mod(d, 2).is_zero()) d = d / 2;
  while (GiNaC::mod(d, 5).is_zero()) d = d / 5;
  return d.is_equal(1);
}

P print_number(const numeric& v) {
  P p;
  p.s = plain(v);
  p.prec = v.is_negative() ? 1 : (terminating(v) ? 3 : 2);
  return p;
}

// The least common denominator of a polynomial's coefficients.
numeric coefficient_denominator(const ex& p) {
  const GiNaC::symbol& x = unknown();
  numeric d = 1;
  for (int k = p.ldegree(x); k <= p.degree(x); ++k) {
    ex c = p.coeff(x, k);
    if (is_a<numeric>(c)) d = GiNaC::lcm(d, ex_to<numeric>(c).denom());
  }
  return d;
}

P print_terms(const ex& p);

// A polynomial in x with rational coefficients: "1.5x - 50000", "x/4 + 3", "120 - x"; with
// thirds and such, over their common denominator: "(x - 32)/3".
P print_poly(const ex& poly) {
  ex p = GiNaC::expand(poly);
  if (is_a<numeric>(p)) return print_number(ex_to<numeric>(p));
  numeric d = coefficient_denominator(p);
  if (!terminating(numeric(1) / d)) {
    P n = print_terms(GiNaC::expand(p * d));
    P out;
    out.s = (n.prec == 1 ? "(" + n.s + ")" : n.s) + "/" + plain(d);
    out.prec = 2;
    return out;
  }
  return print_terms(p);
}

P print_terms(const ex& p) {
  const GiNaC::symbol& x = unknown();
  int deg = p.degree(x);
  std::string s;
  int terms = 0;
  bool first_negative = false;
  // "120 - x" rather than "-x + 120"
  ex c0 = p.coeff(x, 0);
  bool constant_first = deg >= 1 && ex_to<numeric>(p.lcoeff(x)).is_negative() &&
                        is_a<numeric>(c0) && ex_to<numeric>(c0).is_positive();
  if (constant_first) {
    s = plain(ex_to<numeric>(c0));
    terms = 1;
  }
  for (int k = deg; k >= (constant_first ? 1 : 0); --k) {
    ex ce = p.coeff(x, k);
    if (ce.is_zero()) continue;
    if (!is_a<numeric>(ce)) throw std::runtime_error("not a polynomial in x");
    numeric c = ex_to<numeric>(ce);
    bool neg = c.is_negative();
    numeric a = GiNaC::abs(c);
    std::string t;
    if (k == 0) {
      t = plain(a);
    } else {
      std::string xs = k == 1 ? "x" : fmt::format("x^{}", k);
      if (a.is_equal(1)) {
        t = xs;
      } else if (a.numer().is_equal(1)) {
        t = xs + "/" + num_str(a.denom());
      } else if (terminating(a)) {
        t = plain(a) + xs;
      } else {
        t = "(" + num_str(a) + ")" + xs;
      }
    }
    if (terms == 0) {
      s = neg ? "-" + t : t;
      first_negative = neg;
    } else {
      s += neg ? " - " : " + ";
      s += t;
    }
    ++terms;
  }
  P out;
  out.s = s;
  if (terms > 1 || first_negative) {
    out.prec = 1;
  } else {
    out.prec = s == "x" ? 3 : 2;
  }
  return out;
}

P print(const ex& e) {
  const GiNaC::symbol& x = unknown();
  ex n = GiNaC::normal(e);
  if (is_a<numeric>(n)) return print_number(ex_to<numeric>(n));
  ex num = GiNaC::numer(n), den = GiNaC::denom(n);
  if (!den.has(x)) return print_poly(GiNaC::expand(n));
  P a = print_poly(GiNaC::expand(num)), b = print_poly(GiNaC::expand(den));
  P out;
  if (a.s.starts_with("-") && a.prec == 1 && a.s.find(' ') == std::string::npos) {
    // "-120/x"
    out.s = a.s + "/" + wrap(b, 3);
    out.prec = 1;
    return out;
  }
  out.s = wrap(a, 2) + "/" + wrap(b, 3);
  out.prec = 2;
  return out;
}

bool same(const ex& a, const ex& b) { return GiNaC::normal(a - b).is_zero(); }

bool holds_at(const ex& lhs, const ex& rhs, const numeric& n) {
  ex l = GiNaC::normal(lhs.subs(unknown() == n));
  ex r = GiNaC::normal(rhs.subs(unknown() == n));
  return is_a<numeric>(l) && is_a<numeric>(r) && ex_to<numeric>(l).is_equal(ex_to<numeric>(r));
}

std::string literal_text(const std::string& t) {
  if (!t.empty() && t[0] == '.') return "0" + t;
  return t;
}

struct Writer {
  const Graph& g;
  const MaskOutcome& o;
  const QuestionNumber& q;
  numeric n;  // x's value

  // The restated expression of a step's node.
  P render(int s, int k) const {
    const Step& st = g.steps[s];
    const Node& nd = st.nodes[k];
    const ex& val = o.node_values[s][k];
    P out;
    switch (nd.op) {
      case Node::Op::Lit:
        if (val.has(unknown())) {
          out = print(val);
        } else {
          out.s = literal_text(nd.text);
          out.prec = nd.text.find('/') != std::string::npos ? 2 : 3;
        }
        return out;
      case Node::Op::Add: {
        P a = render(s, nd.a), b = render(s, nd.b);
        out.s = a.s + " + " + (b.s.starts_with("-") ? "(" + b.s + ")" : b.s);
        out.prec = 1;
        break;
      }
      case Node::Op::Sub: {
        P a = render(s, nd.a), b = render(s, nd.b);
        out.s = a.s + " - " + wrap(b, 2);
        out.prec = 1;
        break;
      }
      case Node::Op::Mul: {
        P a = render(s, nd.a), b = render(s, nd.b);
        out.s = wrap(a, 2) + " * " + wrap(b, 3);
        out.prec = 2;
        break;
      }
      case Node::Op::Div: {
        P a = render(s, nd.a), b = render(s, nd.b);
        out.s = wrap(a, 2) + "/" + wrap(b, 3);
        out.prec = 2;
        break;
      }
      case Node::Op::Neg: {
        P a = render(s, nd.a);
        out.s = "-" + wrap(a, 3);
        out.prec = 1;
        break;
      }
    }
    if (nd.parens && out.prec < 3) {
      out.s = "(" + out.s + ")";
      out.prec = 3;
    }
    return out;
  }

  // "E = S", or "S" when they read the same; checked.
  std::optional<std::string> restate(int s) const {
    if (!o.known[s]) return std::nullopt;  // a step the answer does not need, unresolved
    const Step& st = g.steps[s];
    P e = render(s, st.root);
    P v = print(o.values[s]);
    if (!same(o.node_values[s][st.root], o.values[s])) return std::nullopt;
    if (!holds_at(o.values[s], st.result, n)) return std::nullopt;
    if (e.s == v.s) return e.s;
    return e.s + " = " + v.s;
  }

  // What a number written in the solution's prose stands for under the mask: nullopt when it
  // cannot be told (no source, or sources that disagree).
  std::optional<ex> prose_value(const numeric& v) const {
    std::vector<ex> cands;
    bool unknown_source = false;
    for (int k = 0; k < static_cast<int>(g.numbers.size()); ++k) {
      const QuestionNumber& qn = g.numbers[k];
      for (std::size_t f = 0; f < qn.forms.size(); ++f) {
        ex fv = qn.forms[f].subs(own_value() == qn.value);
        if (is_a<numeric>(fv) && ex_to<numeric>(fv).is_equal(v)) {
          cands.push_back(k == o.number ? qn.masked_forms[f] : ex(v));
          break;
        }
      }
    }
    for (int s = 0; s < static_cast<int>(g.steps.size()); ++s) {
      const numeric& r = g.steps[s].result;
      bool direct = r.is_equal(v), hundredth = (r / 100).is_equal(v);
      if (!direct && !hundredth) continue;
      if (!o.known[s]) {
        unknown_source = true;
        continue;
      }
      cands.push_back(direct ? o.values[s] : o.values[s] / 100);
    }
    for (const numeric& c : g.constants)
      if (c.is_equal(v)) cands.push_back(c);
    if (unknown_source || cands.empty()) return std::nullopt;
    for (std::size_t i = 1; i < cands.size(); ++i)
      if (!same(cands[0], cands[i])) return std::nullopt;
    return cands[0];
  }

  // Does another number of the question have the masked value?
  bool value_shared() const {
    for (int k = 0; k < static_cast<int>(g.numbers.size()); ++k)
      if (k != o.number && g.numbers[k].value.is_equal(q.value)) return true;
    return false;
  }

  // The prose of a line with its numbers kept or restated; nullopt when a number is unclear or
  // the text uses x for itself.
  std::optional<std::string> prose(std::string_view t) const {
    std::string out;
    std::size_t i = 0;
    auto prev_nonspace = [&](std::size_t at) {
      while (at > 0 && t[at - 1] == ' ') --at;
      return at > 0 ? t[at - 1] : ' ';
    };
    while (i < t.size()) {
      char c = t[i];
      bool num_start = is_digit(c) || (c == '.' && i + 1 < t.size() && is_digit(t[i + 1]) &&
                                       (i == 0 || !is_digit(t[i - 1])));
      if (num_start && (i == 0 || !is_alpha(t[i - 1]))) {
        std::size_t j = i;
        while (j < t.size() && is_digit(t[j])) ++j;
        while (j + 3 < t.size() && t[j] == ',' && is_digit(t[j + 1]) && is_digit(t[j + 2]) &&
               is_digit(t[j + 3]) && (j + 4 >= t.size() || !is_digit(t[j + 4])))
          j += 4;
        if (j + 1 < t.size() && t[j] == '.' && is_digit(t[j + 1])) {
          ++j;
          while (j < t.size() && is_digit(t[j])) ++j;
        }
        if (j < t.size() && is_alpha(t[j]) &&
            !(t[j] == 'x' && (j + 1 >= t.size() || !is_alpha(t[j + 1])))) {
          // "1st", "3pm": not a quantity of the problem; kept unless it is the masked value.
          numeric v;
          if (parse_rational(t.substr(i, j - i), v) && v.is_equal(q.value)) return std::nullopt;
          out.append(t.substr(i, j - i));
          i = j;
          continue;
        }
        numeric v;
        if (!parse_rational(t.substr(i, j - i), v)) return std::nullopt;
        auto val = prose_value(v);
        if (!val) return std::nullopt;
        if (val->has(unknown())) {
          P p = print(*val);
          out += p.prec == 1 ? "(" + p.s + ")" : p.s;
        } else {
          out.append(t.substr(i, j - i));
        }
        i = j;
        continue;
      }
      if (is_alpha(c)) {
        std::size_t j = i;
        while (j < t.size() && is_alpha(t[j])) ++j;
        std::string w(t.substr(i, j - i));
        std::string lw = w;
        for (char& ch : lw) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (lw == "x") {
          // "0.2 x 50": times; anything else is a letter x that the response cannot use.
          char before = prev_nonspace(i);
          std::size_t k = j;
          while (k < t.size() && t[k] == ' ') ++k;
          char after = k < t.size() ? t[k] : ' ';
          if ((is_digit(before) || before == ')' || before == '%') &&
              (is_digit(after) || after == '(' || after == '$' || after == '.')) {
            out += "*";
            i = j;
            continue;
          }
          return std::nullopt;
        }
        // A number word equal to the masked value ("for the next three meals" with 3 masked)
        // cannot be told apart: the line is restated plainly.
        if (q.kind != QuestionNumber::Kind::Word || q.mask_text != "x") {
          for (const QuestionNumber& wn : question_numbers(w))
            if (wn.kind == QuestionNumber::Kind::Word && wn.value.is_equal(q.x_value))
              return std::nullopt;
        }
        // The masked number written as a word (when no other number of the question has its
        // value: "three times" and "in three years" cannot be told apart in the prose).
        if (q.kind == QuestionNumber::Kind::Word) {
          std::string lq = q.written;
          for (char& ch : lq) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          if (lw == lq || lw == lq.substr(0, lq.find(' '))) {
            if (q.mask_text != "x" || value_shared()) return std::nullopt;
            if (lw != lq) return std::nullopt;  // part of a multi-word number
            out += "x";
            i = j;
            continue;
          }
        }
        out += w;
        i = j;
        continue;
      }
      out.push_back(c);
      ++i;
    }
    return out;
  }

  struct Span {
    std::size_t begin, end;  // in the solution
    int step;
    bool visible;  // the visible expression before the annotation is part of the span
  };

  // The span of an annotation with its visible expression ("48/2 = <<48/2=24>>24") and result.
  Span span_of(int s) const {
    const std::string& t = g.solution;
    const Step& st = g.steps[s];
    Span sp{st.begin, st.end, s, false};
    // the displayed result
    std::size_t r = st.end;
    while (r < t.size() && (is_digit(t[r]) || t[r] == ',' || t[r] == '.')) ++r;
    while (r > st.end && (t[r - 1] == '.' || t[r - 1] == ',')) --r;
    sp.end = r;
    // the visible expression
    std::size_t b = st.begin;
    std::size_t line_start = t.rfind('\n', st.begin == 0 ? 0 : st.begin - 1);
    line_start = line_start == std::string::npos ? 0 : line_start + 1;
    if (st.begin == 0) line_start = 0;
    std::size_t k = b;
    while (k > line_start && (t[k - 1] == ' ' || t[k - 1] == '$')) --k;
    if (k > line_start && t[k - 1] == '=') {
      std::size_t eq = k - 1;
      std::size_t v = eq;
      auto expr_char = [](char c) {
        return is_digit(c) || c == '.' || c == ',' || c == '+' || c == '-' || c == '*' ||
               c == '/' || c == 'x' || c == '(' || c == ')' || c == '$' || c == ' ' || c == '%';
      };
      while (v > line_start && expr_char(t[v - 1])) --v;
      // "box 5 * 2": the run may start inside a word; begin at a digit, '(', '.' or '$'.
      while (v < eq && !(is_digit(t[v]) || t[v] == '(' || t[v] == '.' || t[v] == '$')) ++v;
      if (v < eq && (v == line_start || !is_alpha(t[v - 1]))) {
        std::string vis = t.substr(v, eq - v);
        // its numbers must be the step's literals
        std::vector<numeric> seen, want;
        for (std::size_t i = 0; i < vis.size();) {
          if (is_digit(vis[i]) || (vis[i] == '.' && i + 1 < vis.size() && is_digit(vis[i + 1]))) {
            std::size_t j = i;
            while (j < vis.size() &&
                   (is_digit(vis[j]) || vis[j] == '.' ||
                    (vis[j] == ',' && j + 1 < vis.size() && is_digit(vis[j + 1]))))
              ++j;
            numeric x;
            if (parse_rational(vis.substr(i, j - i), x)) seen.push_back(x);
            i = j;
          } else {
            ++i;
          }
        }
        for (const Node& nd : st.nodes) {
          if (nd.op != Node::Op::Lit) continue;
          std::size_t slash = nd.text.find('/');
          if (slash != std::string::npos) {
            numeric a, c;
            parse_rational(nd.text.substr(0, slash), a);
            parse_rational(nd.text.substr(slash + 1), c);
            want.push_back(a);
            want.push_back(c);
          } else {
            want.push_back(nd.value);
          }
        }
        auto less = [](const numeric& a, const numeric& c) { return a < c; };
        std::sort(seen.begin(), seen.end(), less);
        std::sort(want.begin(), want.end(), less);
        bool match = seen.size() == want.size();
        for (std::size_t i = 0; match && i < seen.size(); ++i)
          if (!seen[i].is_equal(want[i])) match = false;
        if (match) {
          sp.begin = v;
          sp.visible = true;
        }
      }
    }
    return sp;
  }

  std::vector<std::string> forward_lines(std::string& why) const {
    std::vector<std::string> out;
    const std::string& t = g.solution;
    std::vector<bool> in_cone(g.steps.size(), false);
    for (int s : g.cone) in_cone[s] = true;
    const std::size_t last_line = g.steps[g.answer_step].line;
    std::size_t start = 0, line = 0;
    while (start <= t.size() && line <= last_line) {
      std::size_t end = t.find('\n', start);
      if (end == std::string::npos) end = t.size();
      std::string_view text(t.data() + start, end - start);
      std::vector<int> steps;
      for (int s = 0; s < static_cast<int>(g.steps.size()); ++s)
        if (g.steps[s].line == line) steps.push_back(s);
      bool any_cone = std::any_of(steps.begin(), steps.end(), [&](int s) { return in_cone[s]; });
      std::string_view trimmed = text;
      while (!trimmed.empty() && trimmed.front() == ' ') trimmed.remove_prefix(1);
      while (!trimmed.empty() && trimmed.back() == ' ') trimmed.remove_suffix(1);
      if (trimmed.empty() || trimmed.starts_with("####")) {
        // nothing
      } else if (steps.empty()) {
        if (auto p = prose(trimmed)) out.push_back(*p);
      } else if (any_cone) {
        std::string w;
        bool ok = true;
        std::size_t cur = start;
        for (int s : steps) {
          Span sp = span_of(s);
          if (sp.begin < cur) {
            ok = false;
            break;
          }
          auto p = prose(std::string_view(t.data() + cur, sp.begin - cur));
          auto r = restate(s);
          if (!p || !r) {
            ok = false;
            break;
          }
          w += *p;
          if (sp.visible) {
            w += *r;
          } else {
            // the prose already shows the computation: only its value
            w += print(o.values[s]).s;
          }
          cur = sp.end;
        }
        if (ok) {
          auto p = prose(std::string_view(t.data() + cur, end - cur));
          if (!p)
            ok = false;
          else
            w += *p;
        }
        if (!ok) {
          // a plain restatement of the steps that matter (a step that only states the value
          // of the one before it, "16+16 = <<32=32>>32", is not restated twice)
          bool restated = false;
          for (int s : steps) {
            if (!in_cone[s] || (restated && g.steps[s].nodes.size() == 1)) continue;
            restated = true;
            auto r = restate(s);
            if (!r) {
              why = fmt::format("step {} could not be restated", s + 1);
              return {};
            }
            if (r->find(" = ") == std::string::npos) *r = "That is " + *r;
            out.push_back(*r + ".");
          }
        } else {
          std::string_view ws = w;
          while (!ws.empty() && ws.front() == ' ') ws.remove_prefix(1);
          while (!ws.empty() && ws.back() == ' ') ws.remove_suffix(1);
          out.emplace_back(ws);
        }
      }
      start = end + 1;
      ++line;
    }
    return out;
  }

  std::string eq(const ex& l, const ex& r) const {
    if (!holds_at(l, r, n)) throw std::runtime_error("an equation does not hold at x");
    return print(l).s + " = " + print(r).s;
  }

  // Solving k*x + c = r (numbers k, c, r) one operation at a time.
  void solve_linear(const numeric& k, const numeric& c, const numeric& r,
                    std::vector<std::string>& out) const {
    const ex x = unknown();
    numeric rhs = r;
    if (!c.is_zero()) {
      rhs = r - c;
      if (c.is_positive())
        out.push_back(
            fmt::format("Subtracting {} from both sides, we get: {}.", plain(c), eq(k * x, rhs)));
      else
        out.push_back(
            fmt::format("Adding {} to both sides, we get: {}.", plain(-c), eq(k * x, rhs)));
    }
    if (k.is_equal(1)) return;
    numeric inv = k.inverse();
    if (k.is_equal(-1)) {
      out.push_back(fmt::format("Multiplying both sides by -1, we get: {}.", eq(x, rhs * inv)));
    } else if (!k.is_integer() && (inv.is_integer() || !terminating(k))) {
      out.push_back(
          fmt::format("Multiplying both sides by {}, we get: {}.", plain(inv), eq(x, rhs * inv)));
    } else {
      out.push_back(
          fmt::format("Dividing both sides by {}, we get: {}.", plain(k), eq(x, rhs * inv)));
    }
  }

  std::string product(const ex& fac) const {
    // content * (f1)^k1 * (f2) ... printed as "2(x - 4)(x + 4)"
    std::vector<ex> factors;
    if (is_a<GiNaC::mul>(fac))
      for (std::size_t i = 0; i < fac.nops(); ++i) factors.push_back(fac.op(i));
    else
      factors.push_back(fac);
    // GiNaC's factor order varies between runs: the factor holding x's value first, then by
    // degree and text.
    auto key = [&](const ex& f) {
      ex base = is_a<GiNaC::power>(f) ? f.op(0) : f;
      bool root = !is_a<numeric>(base) && GiNaC::expand(base).subs(unknown() == n).is_zero();
      int deg = is_a<numeric>(base) ? -1 : GiNaC::expand(base).degree(unknown());
      return std::make_tuple(is_a<numeric>(f) ? 0 : (root ? 1 : 2), deg, print_poly(base).s);
    };
    std::sort(factors.begin(), factors.end(),
              [&](const ex& a, const ex& b) { return key(a) < key(b); });
    std::string coef, rest;
    for (const ex& f : factors) {
      if (is_a<numeric>(f)) {
        coef = plain(ex_to<numeric>(f));
        if (coef == "1") coef.clear();
        if (coef == "-1") coef = "-";
        continue;
      }
      ex base = f;
      int power = 1;
      if (is_a<GiNaC::power>(f) && is_a<numeric>(f.op(1))) {
        base = f.op(0);
        power = static_cast<int>(ex_to<numeric>(f.op(1)).to_int());
      }
      P p = print_poly(base);
      rest += p.s == "x" ? "x" : "(" + p.s + ")";
      if (power != 1) rest += fmt::format("^{}", power);
    }
    return coef + rest;
  }

  bool solving(const std::string& answer, BackwardType type, std::vector<std::string>& out,
               std::string& why) const {
    const GiNaC::symbol& x = unknown();
    numeric A;
    if (!parse_rational(answer, A)) {
      why = "the answer is not a number";
      return false;
    }
    const ex f = o.f;
    std::string setup = eq(f, A);
    if (type == BackwardType::FOBAR)
      out.push_back(
          fmt::format("We are given that the answer to the question is {}, so we can write: {}.",
                      answer, setup));
    else
      out.push_back(
          fmt::format("We know that the result is {}, so we can write: {}.", answer, setup));
    ex nf = GiNaC::normal(f);
    ex num = GiNaC::expand(GiNaC::numer(nf)), den = GiNaC::expand(GiNaC::denom(nf));
    ex lhs = f, rhs = A;
    if (den.has(x)) {
      lhs = num;
      rhs = GiNaC::expand(A * den);
      P d = print_poly(den);
      out.push_back(fmt::format("Multiplying both sides by {}, we get: {}.", d.s, eq(lhs, rhs)));
    }
    ex diff = GiNaC::expand(lhs - rhs);
    int deg = diff.degree(x);
    if (deg == 1) {
      ex l = GiNaC::expand(lhs), r = GiNaC::expand(rhs);
      if (r.has(x) || l.degree(x) != 1) {
        numeric k = ex_to<numeric>(diff.coeff(x, 1));
        numeric c = ex_to<numeric>(-diff.coeff(x, 0));
        if (k.is_negative()) {
          k = -k;
          c = -c;
        }
        out.push_back(fmt::format("Rearranging, we get: {}.", eq(k * x, c)));
        solve_linear(k, 0, c, out);
      } else {
        numeric d = coefficient_denominator(l);
        if (!terminating(numeric(1) / d)) {
          l = GiNaC::expand(l * d);
          r = GiNaC::expand(r * d);
          out.push_back(
              fmt::format("Multiplying both sides by {}, we get: {}.", plain(d), eq(l, r)));
        }
        solve_linear(ex_to<numeric>(l.coeff(x, 1)), ex_to<numeric>(l.coeff(x, 0)),
                     ex_to<numeric>(r), out);
      }
      return true;
    }
    // Non-linear.
    out.insert(out.end() - (den.has(x) ? 1 : 0), "This equation is not linear in x.");
    ex poly = GiNaC::expand(GiNaC::numer(GiNaC::normal(diff)));
    if (ex_to<numeric>(poly.lcoeff(x)).is_negative()) poly = GiNaC::expand(-poly);
    if (!holds_at(poly, 0, n)) {
      why = "the polynomial does not vanish at x";
      return false;
    }
    out.push_back(fmt::format("Rearranging, we get: {} = 0.", print_poly(poly).s));
    ex fac = GiNaC::factor(poly);
    std::string fs = product(fac);
    if (fs != print_poly(poly).s && fs != "(" + print_poly(poly).s + ")")
      out.push_back(fmt::format("Factoring, we get: {} = 0.", fs));
    std::vector<ex> factors;
    if (is_a<GiNaC::mul>(fac))
      for (std::size_t i = 0; i < fac.nops(); ++i) factors.push_back(fac.op(i));
    else
      factors.push_back(fac);
    std::sort(factors.begin(), factors.end(), [](const ex& a, const ex& b) {
      return print_poly(is_a<numeric>(a) ? a : GiNaC::expand(a)).s <
             print_poly(is_a<numeric>(b) ? b : GiNaC::expand(b)).s;
    });
    std::vector<numeric> roots;
    std::vector<std::string> notes;
    for (ex f : factors) {
      if (is_a<numeric>(f)) continue;
      if (is_a<GiNaC::power>(f)) f = f.op(0);
      f = GiNaC::expand(f);
      if (f.degree(x) == 1) {
        numeric r = ex_to<numeric>(-f.coeff(x, 0) / f.coeff(x, 1));
        if (std::none_of(roots.begin(), roots.end(),
                         [&](const numeric& z) { return z.is_equal(r); }))
          roots.push_back(r);
        continue;
      }
      int all = count_real_roots(f, std::nullopt);
      int pos = count_real_roots(f, numeric(0));
      if (all == 0) {
        notes.push_back(fmt::format("{} = 0 has no real solution.", print_poly(f).s));
      } else if (pos == 0) {
        notes.push_back(fmt::format("{} = 0 has no positive solution.", print_poly(f).s));
      } else {
        why = "a factor has another positive root";
        return false;
      }
    }
    std::sort(roots.begin(), roots.end(),
              [&](const numeric& a, const numeric& b) { return a.is_equal(n) && !b.is_equal(n); });
    if (roots.empty() || !roots[0].is_equal(n)) {
      why = "x is not a root of a linear factor";
      return false;
    }
    bool others = roots.size() > 1 || !notes.empty();
    for (const std::string& s : notes) out.push_back(s);
    if (roots.size() > 1) {
      std::string list;
      for (std::size_t i = 0; i < roots.size(); ++i) {
        if (i) list += i + 1 == roots.size() ? " or " : ", ";
        list += "x = " + plain(roots[i]);
        if (i > 0 && roots[i].is_positive()) {
          why = "another positive rational root";
          return false;
        }
      }
      out.push_back(fmt::format("So {}.", list));
    }
    if (others && roots.size() > 1)
      out.push_back(fmt::format("Since x must be positive, x = {}.", plain(n)));
    else
      out.push_back(fmt::format("So x = {}.", plain(n)));
    return true;
  }
};

}  // namespace

std::string format_expr(const ex& e) { return print(e).s; }

Written write_solution(const Graph& g, const MaskOutcome& o, BackwardType type,
                       const std::string& answer) {
  Written w;
  if (!o.verified()) {
    w.reason = o.cause;
    return w;
  }
  const QuestionNumber& q = g.numbers[o.number];
  Writer wr{g, o, q, q.x_value};
  std::vector<std::string> lines;
  try {
    if (type == BackwardType::SV)
      lines.push_back("To solve this problem, we need to determine the value of x.");
    std::vector<std::string> fw = wr.forward_lines(w.reason);
    if (!w.reason.empty()) return w;
    lines.insert(lines.end(), fw.begin(), fw.end());
    if (!wr.solving(answer, type, lines, w.reason)) return w;
  } catch (const std::exception& e) {
    w.reason = e.what();
    return w;
  }
  lines.push_back(fmt::format("The value of x is {}.", q.x_plain));
  for (const std::string& l : lines) {
    w.text += l;
    w.text += '\n';
  }
  w.text = metamathqa_response(w.text, q.x_plain, answer::Style::Gsm8k);
  w.ok = true;
  return w;
}

}  // namespace metamath::bootstrap::symbolic
