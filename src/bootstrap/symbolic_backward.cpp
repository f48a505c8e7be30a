#include "bootstrap/symbolic_backward.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "bootstrap/metamathqa.h"

namespace metamath::bootstrap::symbolic {
namespace {

using GiNaC::ex;
using GiNaC::ex_to;
using GiNaC::is_a;
using GiNaC::numeric;

bool same_value(const ex& a, const ex& b) {
  if (is_a<numeric>(a) && is_a<numeric>(b)) return ex_to<numeric>(a).is_equal(ex_to<numeric>(b));
  if (a.is_equal(b)) return true;
  return GiNaC::normal(a - b).is_zero();
}

// The value a source gives a literal when number `m` is masked.
ex source_value(const Graph& g, const Source& s, int m, const std::vector<ex>& values) {
  switch (s.kind) {
    case Source::Kind::Question: {
      const QuestionNumber& q = g.numbers[s.index];
      if (s.index == m) return q.masked_forms[s.form];
      return q.forms[s.form].subs(own_value() == q.value);
    }
    case Source::Kind::Step:
      return s.form == 0 ? values[s.index] : values[s.index] / 100;
    case Source::Kind::Constant:
      return s.value;
  }
  return s.value;
}

std::string describe(const Graph& g, const Source& s) {
  switch (s.kind) {
    case Source::Kind::Question:
      return fmt::format("question \"{}\"", g.numbers[s.index].written);
    case Source::Kind::Step:
      return fmt::format("step {}{}", s.index + 1, s.form ? " / 100" : "");
    case Source::Kind::Constant:
      return "a constant";
  }
  return "?";
}

int sign_at(const ex& p, const numeric& a) {
  ex v = p.subs(unknown() == a);
  const numeric& n = ex_to<numeric>(v);
  return n.is_zero() ? 0 : (n.is_positive() ? 1 : -1);
}

int sign_at_infinity(const ex& p, bool negative) {
  const ex x = unknown();
  int d = p.degree(x);
  ex lc = p.lcoeff(x);
  int s = ex_to<numeric>(lc).is_positive() ? 1 : -1;
  if (negative && d % 2 == 1) s = -s;
  return s;
}

int changes(const std::vector<int>& signs) {
  int c = 0, last = 0;
  for (int s : signs) {
    if (s == 0) continue;
    if (last != 0 && s != last) ++c;
    last = s;
  }
  return c;
}

struct Eval {
  std::vector<ex> values;
  std::vector<std::vector<ex>> node_values;
  std::vector<bool> known;
  bool bad = false;          // a step of the cone could not be evaluated (division by zero)
  int ambiguous = -1;        // the first literal of the cone whose sources disagree
  std::vector<int> choices;  // its sources with distinct values
  std::string detail;
};

// Every step whose literals all resolve gets a value (the solution writer restates them); a
// literal in `choice` takes the value of that source only.
Eval evaluate(const Graph& g, int m, const std::map<int, int>& choice,
              const std::vector<bool>& in_cone) {
  Eval out;
  out.values.assign(g.steps.size(), ex());
  out.known.assign(g.steps.size(), false);
  out.node_values.assign(g.steps.size(), {});
  for (int s = 0; s < static_cast<int>(g.steps.size()); ++s) {
    const Step& st = g.steps[s];
    std::vector<ex> v(st.nodes.size());
    bool ok = true;
    // Nodes are created children first, so index order is an evaluation order.
    for (std::size_t k = 0; k < st.nodes.size() && ok; ++k) {
      const Node& nd = st.nodes[k];
      switch (nd.op) {
        case Node::Op::Lit: {
          const Literal& lit = g.literals[nd.literal];
          if (lit.sources.empty()) {
            ok = false;
            break;
          }
          if (auto it = choice.find(nd.literal); it != choice.end()) {
            const Source& src = lit.sources[it->second];
            if (src.kind == Source::Kind::Step && !out.known[src.index]) {
              ok = false;
              break;
            }
            v[k] = source_value(g, src, m, out.values);
            break;
          }
          for (const Source& src : lit.sources)
            if (src.kind == Source::Kind::Step && !out.known[src.index]) ok = false;
          if (!ok) break;
          ex val = source_value(g, lit.sources[0], m, out.values);
          std::vector<int> distinct = {0};
          std::vector<ex> seen = {val};
          for (std::size_t c = 1; c < lit.sources.size(); ++c) {
            ex vc = source_value(g, lit.sources[c], m, out.values);
            if (std::none_of(seen.begin(), seen.end(),
                             [&](const ex& z) { return same_value(z, vc); })) {
              if (distinct.size() == 1)
                out.detail = fmt::format("step {}: {} is {} and {}", s + 1, nd.text,
                                         describe(g, lit.sources[0]), describe(g, lit.sources[c]));
              distinct.push_back(static_cast<int>(c));
              seen.push_back(vc);
            }
          }
          if (distinct.size() > 1) {
            if (in_cone[s]) {
              out.ambiguous = nd.literal;
              out.choices = distinct;
              return out;
            }
            ok = false;
            break;
          }
          v[k] = val;
          break;
        }
        case Node::Op::Add:
          v[k] = v[nd.a] + v[nd.b];
          break;
        case Node::Op::Sub:
          v[k] = v[nd.a] - v[nd.b];
          break;
        case Node::Op::Mul:
          v[k] = v[nd.a] * v[nd.b];
          break;
        case Node::Op::Div:
          if (GiNaC::normal(v[nd.b]).is_zero()) {
            ok = false;
            break;
          }
          v[k] = v[nd.a] / v[nd.b];
          break;
        case Node::Op::Neg:
          v[k] = -v[nd.a];
          break;
      }
    }
    if (!ok) {
      if (in_cone[s]) {
        out.bad = true;
        return out;
      }
      continue;
    }
    for (ex& e : v) e = GiNaC::normal(e);
    out.values[s] = v[st.root];
    out.node_values[s] = std::move(v);
    out.known[s] = true;
  }
  return out;
}

// Does a step of the cone multiply the masked number by itself ("4 x 4")? A question's number is
// rarely squared by a gold solution; when a step seems to, one of the two is usually another
// quantity of the same value that the question leaves implicit (four people named, not counted).
// A literal of `choice` stands for its chosen source only.
bool self_product(const Graph& g, int m, const std::map<int, int>& choice) {
  for (int s : g.cone) {
    const Step& st = g.steps[s];
    std::function<bool(int)> uses = [&](int k) {
      const Node& nd = st.nodes[k];
      if (nd.op == Node::Op::Lit) {
        const std::vector<Source>& sources = g.literals[nd.literal].sources;
        auto is_m = [&](const Source& src) {
          return src.kind == Source::Kind::Question && src.index == m;
        };
        if (auto it = choice.find(nd.literal); it != choice.end()) return is_m(sources[it->second]);
        return std::any_of(sources.begin(), sources.end(), is_m);
      }
      return (nd.a >= 0 && uses(nd.a)) || (nd.b >= 0 && uses(nd.b));
    };
    for (const Node& nd : st.nodes)
      if (nd.op == Node::Op::Mul && uses(nd.a) && uses(nd.b)) return true;
  }
  return false;
}

// Solves f(x) = A (o.f set): fills cause, kind, real_roots and other_roots.
void solve(const Graph& g, const QuestionNumber& q, MaskOutcome& o) {
  if (!o.f.has(unknown())) {
    o.cause = kNoDependence;
    return;
  }
  const GiNaC::symbol& x = unknown();
  ex e = GiNaC::normal(o.f - g.answer);
  ex num = GiNaC::expand(GiNaC::numer(e)), den = GiNaC::expand(GiNaC::denom(e));
  if (num.is_zero()) {
    o.cause = kNoDependence;
    return;
  }
  const numeric n = q.x_value;
  if (!num.subs(x == n).is_zero() || den.subs(x == n).is_zero()) {
    o.cause = kNotASolution;
    return;
  }
  int deg = num.degree(x);
  ex fden = GiNaC::denom(o.f);
  bool poly_f = !fden.has(x);
  if (deg == 1) {
    o.kind = poly_f && o.f.degree(x) == 1 ? EquationKind::Linear : EquationKind::Denominator;
    o.real_roots = 1;
    return;
  }
  o.kind = EquationKind::Nonlinear;
  o.real_roots = count_real_roots(num, std::nullopt);
  if (o.real_roots == 1) return;
  if (n.is_positive() && count_real_roots(num, numeric(0)) == 1) {
    // The other real roots are not positive; name the rational ones.
    ex fac = GiNaC::factor(num);
    auto note = [&](const ex& f) {
      ex ff = GiNaC::expand(f);
      if (ff.degree(x) == 1) {
        numeric r = ex_to<numeric>(-ff.coeff(x, 0) / ff.coeff(x, 1));
        if (!r.is_equal(n) &&
            std::find_if(o.other_roots.begin(), o.other_roots.end(),
                         [&](const numeric& z) { return z.is_equal(r); }) == o.other_roots.end())
          o.other_roots.push_back(r);
      }
    };
    if (is_a<GiNaC::mul>(fac)) {
      for (std::size_t i = 0; i < fac.nops(); ++i) {
        ex f = fac.op(i);
        if (is_a<GiNaC::power>(f)) f = f.op(0);
        note(f);
      }
    } else {
      note(is_a<GiNaC::power>(fac) ? fac.op(0) : fac);
    }
    return;
  }
  o.cause = kNotUnique;
}

// The largest number of distinct question numbers and steps that the literals of the steps up
// to the answer can stand for, each literal taking one of its sources (a maximum bipartite
// matching); a literal of `choice` may take only the sources that give it the chosen source's
// value under this reading. GSM8K's gold solutions use every number of the question and every
// step they compute, so of the readings of an ambiguous link those that leave the fewest of them
// unused are the plausible ones.
int coverage(const Graph& g, int m, const std::map<int, int>& choice, const Eval& r) {
  const int nq = static_cast<int>(g.numbers.size());
  std::vector<std::vector<int>> allowed;  // per literal: source keys (question q, step nq + s)
  for (int li = 0; li < static_cast<int>(g.literals.size()); ++li) {
    const Literal& lit = g.literals[li];
    if (lit.step > g.answer_step) continue;
    std::optional<ex> held;
    if (auto it = choice.find(li); it != choice.end())
      held = source_value(g, lit.sources[it->second], m, r.values);
    std::vector<int> keys;
    for (const Source& src : lit.sources) {
      if (src.kind == Source::Kind::Constant) continue;
      if (held && !(src.kind == Source::Kind::Step && !r.known[src.index]) &&
          !same_value(source_value(g, src, m, r.values), *held))
        continue;
      keys.push_back(src.kind == Source::Kind::Question ? src.index : nq + src.index);
    }
    if (!keys.empty()) allowed.push_back(std::move(keys));
  }
  std::vector<int> owner(nq + g.steps.size(), -1);  // source key -> literal
  std::function<bool(int, std::vector<bool>&)> augment = [&](int l, std::vector<bool>& seen) {
    for (int k : allowed[l]) {
      if (seen[k]) continue;
      seen[k] = true;
      if (owner[k] < 0 || augment(owner[k], seen)) {
        owner[k] = l;
        return true;
      }
    }
    return false;
  };
  int matched = 0;
  for (int l = 0; l < static_cast<int>(allowed.size()); ++l) {
    std::vector<bool> seen(owner.size(), false);
    if (augment(l, seen)) ++matched;
  }
  return matched;
}

// One reading of the links: the choices of the ambiguous literals and the replay under them.
struct Reading {
  std::map<int, int> choice;
  Eval eval;
};

// Every reading of the ambiguous literals of the cone (each taking one of its sources with a
// distinct value), but those that divide by zero (a quantity less itself as a divisor cannot be
// what the solution meant); false when there are more than kMaxReadings or none.
bool all_readings(const Graph& g, int m, const std::vector<bool>& in_cone,
                  std::vector<Reading>& out) {
  bool ok = true;
  std::function<void(std::map<int, int>&)> dfs = [&](std::map<int, int>& choice) {
    if (!ok) return;
    Eval r = evaluate(g, m, choice, in_cone);
    if (r.bad) return;
    if (r.ambiguous < 0) {
      if (out.size() >= static_cast<std::size_t>(kMaxReadings)) {
        ok = false;
        return;
      }
      out.push_back({choice, std::move(r)});
      return;
    }
    for (int c : r.choices) {
      choice[r.ambiguous] = c;
      dfs(choice);
      choice.erase(r.ambiguous);
      if (!ok) return;
    }
  };
  std::map<int, int> choice;
  dfs(choice);
  return ok && !out.empty();
}

// The outcome of one reading: f, the solution and the policy checks.
void judge(const Graph& g, int m, Reading& r, MaskOutcome& o) {
  const QuestionNumber& q = g.numbers[m];
  if (self_product(g, m, r.choice)) {
    o.cause = kSelfProduct;
    return;
  }
  o.values = std::move(r.eval.values);
  o.node_values = std::move(r.eval.node_values);
  o.known = std::move(r.eval.known);
  o.f = o.values[g.answer_step];
  solve(g, q, o);
  if (o.verified() && o.kind == EquationKind::Nonlinear) {
    // x times x: only for a percentage (growth compounded over steps), and only when no other
    // number of the question shares the masked value. Elsewhere a square is usually two
    // quantities read as one: the masked number and an implicit count of the same value.
    if (q.kind != QuestionNumber::Kind::Percent && q.mask_text != "x%") o.cause = kNonlinearCount;
    for (int k = 0; k < static_cast<int>(g.numbers.size()); ++k)
      if (k != m && g.numbers[k].value.is_equal(q.value)) o.cause = kNonlinearShared;
  }
}

}  // namespace

const char* equation_kind_name(EquationKind k) {
  switch (k) {
    case EquationKind::Linear:
      return "linear";
    case EquationKind::Denominator:
      return "x in a denominator";
    case EquationKind::Nonlinear:
      return "non-linear";
  }
  return "?";
}

int count_real_roots(const ex& poly, const std::optional<numeric>& lo) {
  const GiNaC::symbol& x = unknown();
  ex p = GiNaC::expand(poly);
  if (p.is_zero() || p.degree(x) < 1) return 0;
  // Square-free part.
  ex g = GiNaC::gcd(p, GiNaC::diff(p, x));
  if (g.degree(x) > 0) p = GiNaC::quo(p, g, x);
  if (lo) {
    // a root at lo itself is outside (lo, inf)
    while (p.degree(x) > 0 && sign_at(p, *lo) == 0) p = GiNaC::quo(p, x - *lo, x);
    if (p.degree(x) < 1) return 0;
  }
  std::vector<ex> seq = {p, GiNaC::diff(p, x)};
  while (seq.back().degree(x) > 0) {
    ex r = GiNaC::expand(-GiNaC::rem(seq[seq.size() - 2], seq.back(), x));
    if (r.is_zero()) break;
    seq.push_back(r);
  }
  std::vector<int> at_lo, at_hi;
  for (const ex& s : seq) {
    at_hi.push_back(sign_at_infinity(s, false));
    at_lo.push_back(lo ? sign_at(s, *lo) : sign_at_infinity(s, true));
  }
  return changes(at_lo) - changes(at_hi);
}

namespace {

// An ambiguous link: every reading is replayed; those of the largest coverage are the plausible
// ones, and the mask is kept when each of them verifies (the first one's values are kept for the
// written solution). Otherwise the cause is kAmbiguous, and `determined` says whether every
// reading, plausible or not, gives x = the masked number as its only solution.
MaskOutcome resolve_readings(const Graph& g, int m, const std::vector<bool>& in_cone,
                             const std::string& detail, MaskOutcome o) {
  o.cause = kAmbiguous;
  o.detail = detail;
  std::vector<Reading> readings;
  if (!all_readings(g, m, in_cone, readings)) return o;
  const std::size_t n = readings.size();
  // Plausible: the largest coverage, then the fewest literals read through a derived form of
  // their source (a percentage's complement, a reciprocal, a step's result / 100) rather than
  // its own value.
  auto derived = [&](const Reading& r) {
    int k = 0;
    for (auto [li, c] : r.choice)
      if (g.literals[li].sources[c].kind != Source::Kind::Constant &&
          g.literals[li].sources[c].form != 0)
        ++k;
    return k;
  };
  // How well the chosen sources' words match the literals' lines.
  auto fit = [&](const Reading& r) {
    int k = 0;
    for (auto [li, c] : r.choice) k += g.literals[li].context[c];
    return k;
  };
  std::vector<std::pair<int, int>> rank(n);  // (coverage, -derived): larger is more plausible
  std::vector<int> fits(n);
  std::vector<MaskOutcome> leaves(n);
  bool all_ok = true;
  for (std::size_t i = 0; i < n; ++i) {
    rank[i] = {coverage(g, m, readings[i].choice, readings[i].eval), -derived(readings[i])};
    fits[i] = fit(readings[i]);
    leaves[i].number = m;
    judge(g, m, readings[i], leaves[i]);
    all_ok = all_ok && leaves[i].verified();
  }
  o.readings = static_cast<int>(n);
  o.determined = all_ok;
  const std::pair<int, int> best = *std::max_element(rank.begin(), rank.end());
  int best_fit = -1, chosen = -1, plausible = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (rank[i] == best) best_fit = std::max(best_fit, fits[i]);
  // Every plausible reading within 1 of the best fit must verify (the margin of 2 that
  // parse_graph asks of a choice by context); the best-fitting one is written.
  for (std::size_t i = 0; i < n; ++i) {
    if (rank[i] != best || fits[i] < best_fit - 1) continue;
    if (!leaves[i].verified()) return o;
    ++plausible;
    if (chosen < 0 || fits[i] > fits[chosen]) chosen = static_cast<int>(i);
  }
  MaskOutcome& w = leaves[chosen];
  w.masked_question = std::move(o.masked_question);
  w.readings = plausible;
  w.determined = true;
  return std::move(w);
}

}  // namespace

MaskOutcome replay(const Graph& g, int m) {
  MaskOutcome o;
  o.number = m;
  const QuestionNumber& q = g.numbers[m];
  o.masked_question =
      g.question.substr(0, q.offset) + q.mask_text + g.question.substr(q.offset + q.length);
  if (!q.maskable) {
    o.cause = kNotMaskable;
    return o;
  }
  if (!g.linked()) {
    o.cause = kGraphNotLinked;
    return o;
  }
  // Is the number a source of a literal in the cone at all?
  bool used = false;
  for (int s : g.cone)
    for (const Node& nd : g.steps[s].nodes)
      if (nd.op == Node::Op::Lit)
        for (const Source& src : g.literals[nd.literal].sources)
          if (src.kind == Source::Kind::Question && src.index == m) used = true;
  if (!used) {
    o.cause = kNotUsed;
    return o;
  }
  std::vector<bool> in_cone(g.steps.size(), false);
  for (int s : g.cone) in_cone[s] = true;
  Eval e = evaluate(g, m, {}, in_cone);
  if (e.bad) {
    o.cause = kNotASolution;
    return o;
  }
  if (e.ambiguous < 0) {
    Reading only{{}, std::move(e)};
    judge(g, m, only, o);
    o.readings = 1;
    o.determined = o.verified();
    return o;
  }
  return resolve_readings(g, m, in_cone, e.detail, std::move(o));
}

std::vector<MaskOutcome> backward_masks(const Graph& g) {
  std::vector<MaskOutcome> out;
  for (int m = 0; m < static_cast<int>(g.numbers.size()); ++m) {
    const QuestionNumber& q = g.numbers[m];
    if (!q.maskable && q.kind == QuestionNumber::Kind::Word) continue;
    out.push_back(replay(g, m));
  }
  return out;
}

std::string fobar_question(std::string_view masked_question, std::string_view answer) {
  return fobar_query(masked_question, answer, answer::Style::Gsm8k);
}

// ---------------------------------------------------------------------------------------------
// SV statements.

namespace {

struct Verb {
  std::string third, past;
};

const std::map<std::string, Verb>& verbs() {
  static const std::map<std::string, Verb> table = [] {
    std::map<std::string, Verb> t;
    // base:third:past for irregular forms.
    const char* irregular[] = {"have:has:had",
                               "do:does:did",
                               "go:goes:went",
                               "make:makes:made",
                               "buy:buys:bought",
                               "sell:sells:sold",
                               "get:gets:got",
                               "give:gives:gave",
                               "take:takes:took",
                               "eat:eats:ate",
                               "spend:spends:spent",
                               "pay:pays:paid",
                               "read:reads:read",
                               "write:writes:wrote",
                               "run:runs:ran",
                               "see:sees:saw",
                               "find:finds:found",
                               "bring:brings:brought",
                               "catch:catches:caught",
                               "teach:teaches:taught",
                               "think:thinks:thought",
                               "keep:keeps:kept",
                               "leave:leaves:left",
                               "lose:loses:lost",
                               "win:wins:won",
                               "build:builds:built",
                               "send:sends:sent",
                               "feed:feeds:fed",
                               "grow:grows:grew",
                               "throw:throws:threw",
                               "draw:draws:drew",
                               "drink:drinks:drank",
                               "ride:rides:rode",
                               "drive:drives:drove",
                               "swim:swims:swam",
                               "sing:sings:sang",
                               "fly:flies:flew",
                               "hold:holds:held",
                               "put:puts:put",
                               "cut:cuts:cut",
                               "set:sets:set",
                               "hit:hits:hit",
                               "sleep:sleeps:slept",
                               "lend:lends:lent",
                               "meet:meets:met",
                               "sit:sits:sat",
                               "wear:wears:wore",
                               "break:breaks:broke",
                               "choose:chooses:chose",
                               "steal:steals:stole",
                               "say:says:said",
                               "tell:tells:told",
                               "know:knows:knew",
                               "blow:blows:blew",
                               "come:comes:came",
                               "shoot:shoots:shot",
                               "dig:digs:dug",
                               "hang:hangs:hung",
                               "feel:feels:felt",
                               "forget:forgets:forgot",
                               "hide:hides:hid",
                               "bite:bites:bit",
                               "cost:costs:cost",
                               "lay:lays:laid",
                               "spin:spins:spun",
                               "sweep:sweeps:swept",
                               "bake:bakes:baked",
                               "fight:fights:fought",
                               "stand:stands:stood",
                               "speak:speaks:spoke",
                               "wake:wakes:woke",
                               "become:becomes:became",
                               "freeze:freezes:froze",
                               "split:splits:split",
                               "shut:shuts:shut",
                               "deal:deals:dealt",
                               "mean:means:meant",
                               "bleed:bleeds:bled",
                               "light:lights:lit",
                               "slide:slides:slid",
                               "bet:bets:bet",
                               "quit:quits:quit",
                               "spread:spreads:spread",
                               "weep:weeps:wept",
                               "creep:creeps:crept",
                               "seek:seeks:sought",
                               "swing:swings:swung",
                               "stick:sticks:stuck",
                               "shake:shakes:shook",
                               "tear:tears:tore",
                               "ring:rings:rang",
                               "sink:sinks:sank",
                               "drag:drags:dragged",
                               "plan:plans:planned",
                               "shop:shops:shopped",
                               "drop:drops:dropped",
                               "stop:stops:stopped",
                               "jog:jogs:jogged",
                               "hop:hops:hopped",
                               "ship:ships:shipped",
                               "chop:chops:chopped",
                               "knit:knits:knitted",
                               "skip:skips:skipped",
                               "step:steps:stepped",
                               "tap:taps:tapped",
                               "hug:hugs:hugged",
                               "beg:begs:begged",
                               "fit:fits:fit",
                               "grab:grabs:grabbed",
                               "wrap:wraps:wrapped",
                               "trim:trims:trimmed",
                               "mop:mops:mopped",
                               "scrub:scrubs:scrubbed",
                               "pin:pins:pinned",
                               "travel:travels:traveled",
                               "refer:refers:referred",
                               "admit:admits:admitted",
                               "net:nets:netted",
                               "bag:bags:bagged",
                               "can:cans:canned"};
    for (const char* s : irregular) {
      std::string_view v(s);
      std::size_t a = v.find(':'), b = v.rfind(':');
      t[std::string(v.substr(0, a))] = {std::string(v.substr(a + 1, b - a - 1)),
                                        std::string(v.substr(b + 1))};
    }
    const char* regular[] = {
        "need",     "want",    "use",      "collect",  "save",     "earn",       "pick",
        "plant",    "score",   "walk",     "cook",     "pack",     "fix",        "wash",
        "watch",    "miss",    "pass",     "add",      "count",    "order",      "receive",
        "own",      "raise",   "charge",   "owe",      "deliver",  "visit",      "finish",
        "complete", "donate",  "purchase", "rent",     "borrow",   "fill",       "print",
        "type",     "paint",   "answer",   "solve",    "practice", "study",      "carry",
        "try",      "fry",     "dry",      "copy",     "hurry",    "empty",      "play",
        "stay",     "enjoy",   "produce",  "create",   "prepare",  "serve",      "invite",
        "attend",   "consume", "require",  "contain",  "include",  "remove",     "mix",
        "weigh",    "measure", "cover",    "fold",     "harvest",  "hatch",      "gather",
        "sort",     "store",   "stack",    "water",    "mail",     "recycle",    "crack",
        "kick",     "push",    "pull",     "jump",     "climb",    "clean",      "cross",
        "finish",   "learn",   "burn",     "work",     "return",   "load",       "open",
        "close",    "fold",    "sew",      "mow",      "lift",     "bounce",     "toss",
        "roll",     "bake",    "slice",    "share",    "divide",   "distribute", "sew",
        "host",     "invest",  "deposit",  "withdraw", "spend",    "record",     "post",
        "download", "upload",  "watch",    "listen",   "train",    "rescue",     "adopt",
        "hire",     "employ",  "sign",     "need",     "lose",     "waste",      "recover",
        "replace",  "repair",  "install",  "decorate", "dance",    "shovel",     "rake",
        "milk",     "lay",     "hunt",     "fish",     "bike",     "hike",       "jog",
        "skate",    "ski",     "row",      "sail",     "hammer",   "nail",       "glue",
        "tape",     "color",   "frost",    "ice",      "fill",     "arrange",    "assemble",
        "pour",     "squeeze", "peel",     "chop",     "grill",    "roast",      "boil",
        "heat",     "freeze",  "melt",     "cool",     "pay",      "tip",        "offer",
        "rescue",   "grade",   "test",     "attempt",  "shoot",    "miss",       "hand",
        "order",    "treat",   "eat",      "expect",   "plant",    "weed",       "harvest",
        "irrigate", "wish",    "spray",    "clip",     "mark",     "text",       "call",
        "email",    "answer",  "visit"};
    for (const char* s : regular) {
      std::string b(s);
      if (t.count(b)) continue;
      auto vowel = [](char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; };
      Verb v;
      char last = b.back();
      char prev = b.size() > 1 ? b[b.size() - 2] : ' ';
      if (last == 'y' && !vowel(prev)) {
        v.third = b.substr(0, b.size() - 1) + "ies";
        v.past = b.substr(0, b.size() - 1) + "ied";
      } else {
        bool es = last == 's' || last == 'x' || last == 'z' || last == 'o' ||
                  (last == 'h' && (prev == 's' || prev == 'c'));
        v.third = b + (es ? "es" : "s");
        v.past = b + (last == 'e' ? "d" : "ed");
      }
      t[b] = v;
    }
    return t;
  }();
  return table;
}

const std::set<std::string>& money_verbs() {
  static const std::set<std::string> s = {
      "spend",  "pay",     "earn",     "make", "save", "cost", "charge", "owe",    "lose",
      "raise",  "collect", "receive",  "get",  "need", "have", "donate", "borrow", "lend",
      "invest", "deposit", "withdraw", "give", "take", "win",  "sell"};
  return s;
}

bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
std::string lower_word(std::string_view w) {
  std::string o(w);
  for (char& c : o)
    if (is_upper(c)) c = static_cast<char>(c - 'A' + 'a');
  return o;
}

std::vector<std::string> split_words(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string join(const std::vector<std::string>& w, std::size_t from, std::size_t to) {
  std::string o;
  for (std::size_t i = from; i < to && i < w.size(); ++i) {
    if (!o.empty()) o += ' ';
    o += w[i];
  }
  return o;
}

const std::set<std::string>& be_words() {
  static const std::set<std::string> s = {"is", "are", "was", "were"};
  return s;
}
const std::set<std::string>& do_words() {
  static const std::set<std::string> s = {"do", "does", "did"};
  return s;
}
const std::set<std::string>& modal_words() {
  static const std::set<std::string> s = {"will",   "can",  "could", "would",
                                          "should", "must", "might", "may"};
  return s;
}
const std::set<std::string>& pronouns() {
  static const std::set<std::string> s = {"he", "she", "it", "they", "we", "you", "i"};
  return s;
}

// The subject after an auxiliary: words[from..v) where words[v] is a known verb (base form).
// Returns v, or 0 when no verb follows within four words or a subject word looks wrong.
std::size_t find_verb(const std::vector<std::string>& w, std::size_t from) {
  for (std::size_t v = from + 1; v < w.size() && v <= from + 4; ++v) {
    std::string lw = lower_word(w[v]);
    if (verbs().count(lw)) {
      for (std::size_t k = from; k < v; ++k) {
        std::string s = lower_word(w[k]);
        if (s.find_first_of(",;:") != std::string::npos || s == "not" || s == "there" ||
            be_words().count(s) || do_words().count(s) || modal_words().count(s))
          return 0;
      }
      return v;
    }
  }
  return 0;
}

std::string inflect(const std::string& verb, const std::string& aux, bool pronoun_plural) {
  auto it = verbs().find(verb);
  if (it == verbs().end()) return verb;
  if (aux == "did") return it->second.past;
  if (aux == "does") return it->second.third;
  (void)pronoun_plural;
  return verb;  // "do"
}

// "72 clips", "$72", "72".
std::string amount(const std::string& answer, const std::string& noun, bool money) {
  if (money) return "$" + answer;
  return noun.empty() ? answer : answer + " " + noun;
}

bool participle_like(const std::string& w) {
  static const std::set<std::string> s = {
      "left",      "remaining", "needed",  "required", "in",     "on",      "at",    "inside",
      "available", "missing",   "there",   "sold",     "eaten",  "used",    "made",  "given",
      "broken",    "bought",    "lost",    "saved",    "wasted", "spent",   "added", "not",
      "still",     "out",       "already", "born",     "taken",  "written", "read",  "won",
      "grown",     "built",     "thrown",  "drawn",    "driven", "flown",   "worn",  "torn"};
  std::string lw = lower_word(w);
  if (s.count(lw)) return true;
  return lw.size() > 3 && lw.ends_with("ed");
}

std::optional<std::string> statement(const std::vector<std::string>& w, const std::string& A) {
  if (w.size() < 2) return std::nullopt;
  std::string w0 = lower_word(w[0]), w1 = lower_word(w[1]);
  auto rest_from = [&](std::size_t k) { return join(w, k, w.size()); };
  auto glue = [](std::initializer_list<std::string> parts) {
    std::string o;
    for (const std::string& p : parts) {
      if (p.empty()) continue;
      if (!o.empty()) o += ' ';
      o += p;
    }
    return o;
  };
  if (w0 == "how" && (w1 == "many" || w1 == "much")) {
    bool much = w1 == "much";
    std::size_t k = 2;
    std::string noun;
    bool money = false;
    if (much) {
      if (k < w.size() && lower_word(w[k]) == "money") {
        money = true;
        ++k;
      }
    } else {
      std::size_t start = k;
      while (k < w.size() && k < start + 5) {
        std::string lw = lower_word(w[k]);
        if (be_words().count(lw) || do_words().count(lw) || modal_words().count(lw)) break;
        ++k;
      }
      noun = join(w, start, k);
    }
    if (k >= w.size()) return std::nullopt;
    std::string aux = lower_word(w[k]);
    if (be_words().count(aux)) {
      if (much) return std::nullopt;
      if (k + 1 < w.size() && lower_word(w[k + 1]) == "there")
        return glue({"there", aux, amount(A, noun, false), rest_from(k + 2)});
      if (k + 1 < w.size() && participle_like(w[k + 1]))
        return glue({amount(A, noun, false), aux, rest_from(k + 1)});
      return std::nullopt;
    }
    bool is_do = do_words().count(aux) > 0, is_modal = modal_words().count(aux) > 0;
    if (!is_do && !is_modal) return std::nullopt;
    std::size_t v = find_verb(w, k + 1);
    if (v == 0) return std::nullopt;
    std::string verb = lower_word(w[v]);
    if (much && !money) {
      if (!money_verbs().count(verb)) return std::nullopt;
      money = true;
    }
    std::string subject = join(w, k + 1, v);
    std::string verb_phrase = is_do ? inflect(verb, aux, false) : aux + " " + verb;
    return glue({subject, verb_phrase, amount(A, noun, money), rest_from(v + 1)});
  }
  if (w0 == "what" && w.size() >= 3) {
    std::size_t k = 2;
    std::string aux = w1;
    if (w1 == "will" && lower_word(w[2]) == "be") {
      aux = "will be";
      k = 3;
    } else if (w1 != "is" && w1 != "was") {
      return std::nullopt;
    }
    if (k >= w.size()) return std::nullopt;
    std::string d = lower_word(w[k]);
    static const std::set<std::string> det = {"the", "his", "her", "their",
                                              "its", "our", "my",  "your"};
    if (!det.count(d) && !d.ends_with("'s") && !d.ends_with("\xE2\x80\x99s")) return std::nullopt;
    for (std::size_t i = k; i < w.size(); ++i) {
      std::string lw = lower_word(w[i]);
      if (lw == "x" || be_words().count(lw) || do_words().count(lw) || modal_words().count(lw))
        return std::nullopt;
    }
    return glue({rest_from(k), aux, A});
  }
  if (w0 == "how" && w1 == "old" && w.size() >= 4) {
    std::string aux = lower_word(w[2]);
    static const std::set<std::string> stop = {"now", "when", "in", "after", "before", "today",
                                               "if",  "at",   "by", "on",    "this",   "next"};
    if (aux == "is" || aux == "was") {
      std::size_t e = 3;
      while (e < w.size() && !stop.count(lower_word(w[e]))) ++e;
      if (e == 3 || e > 7) return std::nullopt;
      return glue({join(w, 3, e), aux, A, "years old", rest_from(e)});
    }
    if (aux == "will" || aux == "would") {
      std::size_t e = 3;
      while (e < w.size() && lower_word(w[e]) != "be") ++e;
      if (e == w.size() || e == 3 || e > 7) return std::nullopt;
      return glue({join(w, 3, e), aux, "be", A, "years old", rest_from(e + 1)});
    }
  }
  return std::nullopt;
}

bool abbreviation_before(std::string_view s, std::size_t dot) {
  static const char* abbr[] = {"Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "vs", "etc", "No"};
  for (const char* a : abbr) {
    std::size_t n = std::string_view(a).size();
    if (dot >= n && s.substr(dot - n, n) == a && (dot == n || s[dot - n - 1] == ' ')) return true;
  }
  return false;
}

}  // namespace

std::optional<std::string> sv_question(std::string_view masked_question, std::string_view answer) {
  std::string_view q = masked_question;
  while (!q.empty() && (q.back() == ' ' || q.back() == '\n')) q.remove_suffix(1);
  while (!q.empty() && (q.front() == ' ' || q.front() == '\n')) q.remove_prefix(1);
  if (q.empty() || q.back() != '?') return std::nullopt;
  // The last sentence.
  std::size_t start = 0;
  for (std::size_t i = q.size() - 1; i-- > 0;) {
    char c = q[i];
    if (c == '\n') {
      start = i + 1;
      break;
    }
    if ((c == '.' || c == '?' || c == '!') && i + 1 < q.size() && q[i + 1] == ' ') {
      if (c == '.' && abbreviation_before(q, i)) continue;
      start = i + 1;
      break;
    }
  }
  std::string_view head = q.substr(0, start);
  std::string_view sentence = q.substr(start, q.size() - 1 - start);
  while (!sentence.empty() && sentence.front() == ' ') sentence.remove_prefix(1);
  if (sentence.find('?') != std::string_view::npos) return std::nullopt;
  // An "If ..., " clause before the question is kept.
  std::string prefix;
  std::string_view clause = sentence;
  std::string low = lower_word(sentence);
  for (const char* wh : {", how ", ", what "}) {
    std::size_t p = low.rfind(wh);
    if (p != std::string::npos) {
      prefix = std::string(sentence.substr(0, p + 2));
      clause = sentence.substr(p + 2);
      break;
    }
  }
  std::vector<std::string> w = split_words(clause);
  std::string A(answer);
  auto st = statement(w, A);
  if (!st || st->empty()) return std::nullopt;
  std::string s = *st;
  if (prefix.empty()) {
    if (s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  } else {
    // "If ..., she should read 42 pages": a pronoun subject stays lower case.
    std::vector<std::string> sw = split_words(s);
    if (!sw.empty() && (pronouns().count(lower_word(sw[0])) || lower_word(sw[0]) == "there") &&
        s[0] >= 'A' && s[0] <= 'Z')
      s[0] = static_cast<char>(s[0] - 'A' + 'a');
    s = prefix + s;
  }
  while (!s.empty() && (s.back() == ',' || s.back() == ' ')) s.pop_back();
  std::string out(head);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (!out.empty()) out += ' ';
  out += s + ". What is the value of unknown variable x?";
  return out;
}

}  // namespace metamath::bootstrap::symbolic
