// The LaTeX answer parser proper (see latex.h): a scannerless recursive-descent parser from
// cleaned-up answer text (latex_clean.cpp) to GiNaC expressions inside the Value structure tree.
// Every arithmetic step goes through the guarded operations of latex_arith.cpp; depth, node count
// and the deadline are checked as it reads. Malformed input throws SyntaxError (the caller turns
// it into a Text value); limit violations throw ParseError.
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "answer/latex.h"
#include "answer/latex_internal.h"
#include "core/text.h"

namespace metamath::answer::latex {

using namespace internal;
using GiNaC::ex;
using GiNaC::numeric;

namespace {

// ---------------------------------------------------------------------------------------------
// The parser. Grammar (loosest first):
//   answer   := item ((',' | '\lor') item)*
//   item     := matrix | set | bracket-structure ('\cup' item)* | inequality (or inequality)*
//               | relation                                  or := '\lor' | '\vee' | '\cup'
// ("or" in words reaches the parser as \lor, see latex.cpp: "x < -2 or x > 3" is a union of
// solution sets; between answers that are not inequalities, "2 or 3", it separates answers.)
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
    while (eat(',') || eat_command("lor") || eat_command("vee")) {
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
    if (is_inequality_relation(v) && is_or(command())) {
      Value u;
      u.type = VType::Union;
      u.items.push_back(std::move(v));
      while (eat_command("lor") || eat_command("vee") || eat_command("cup"))
        u.items.push_back(relation());
      return u;
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

  static bool is_or(const std::string& cmd) { return cmd == "lor" || cmd == "vee" || cmd == "cup"; }
  static bool is_inequality_relation(const Value& v) {
    if (v.type != VType::Relation) return false;
    for (const auto& op : v.ops)
      if (op != "=" && op != "in") return true;
    return false;
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
    if (c == '!' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '=') {
      pos_ += 2;
      return "!=";
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
          "cdot", "times", "div",    "pm",  "mp",  "le",       "leq",      "ge",      "geq",
          "lt",   "gt",    "ne",     "neq", "in",  "cup",      "cap",      "lor",     "vee",
          "end",  "begin", "approx", "to",  "ast", "leqslant", "geqslant", "setminus"};
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
      while (factorial_follows()) {
        ++pos_;
        r = safe_factorial(r);
      }
      return r;
    }
    return base;
  }

  // A '!' that is a factorial, not the start of "!=".
  bool factorial_follows() {
    return peek() == '!' && !(pos_ + 1 < s_.size() && s_[pos_ + 1] == '=');
  }

  ex postfix() {
    ex p = primary();
    while (factorial_follows()) {
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

}  // namespace

namespace internal {

Value parse_math(const std::string& s, const ParseLimits& lim, const Deadline& deadline) {
  Parser p(s, lim, deadline);
  return p.parse_all();
}

}  // namespace internal
}  // namespace metamath::answer::latex
