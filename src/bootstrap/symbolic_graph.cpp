#include "bootstrap/symbolic_graph.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace metamath::bootstrap::symbolic {
namespace {

using GiNaC::ex;
using GiNaC::numeric;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = lower(c);
  return o;
}

// End of the digits number starting at s[i] (a digit or a '.' before a digit): digits, thousands
// groups ("3,000", and after '$' also "$400 000"), decimals, and (when `fraction`) "a/b" of two
// plain integers.
std::size_t match_number(std::string_view s, std::size_t i, bool fraction, bool& is_fraction) {
  is_fraction = false;
  std::size_t j = i, end = s.size();
  while (j < end && is_digit(s[j])) ++j;
  bool plain = true;
  if (j > i && j - i <= 3) {
    const char sep = i > 0 && s[i - 1] == '$' && j < end && s[j] == ' ' ? ' ' : ',';
    while (j + 3 < end && s[j] == sep && is_digit(s[j + 1]) && is_digit(s[j + 2]) &&
           is_digit(s[j + 3]) && (j + 4 >= end || !is_digit(s[j + 4]))) {
      j += 4;
      plain = false;
    }
  }
  if (j + 1 < end && s[j] == '.' && is_digit(s[j + 1])) {
    ++j;
    while (j < end && is_digit(s[j])) ++j;
    plain = false;
  }
  if (fraction && plain && j > i && j + 1 < end && s[j] == '/' && is_digit(s[j + 1])) {
    std::size_t k = j + 1;
    while (k < end && is_digit(s[k])) ++k;
    if (k >= end || (s[k] != '/' && s[k] != '.')) {
      is_fraction = true;
      j = k;
    }
  }
  return j;
}

numeric parse_decimal(std::string_view s) {
  std::string digits;
  int scale = 0;
  bool point = false;
  for (char c : s) {
    if (c == ',' || c == ' ') continue;
    if (c == '.') {
      point = true;
      continue;
    }
    digits.push_back(c);
    if (point) ++scale;
  }
  if (digits.empty()) digits = "0";
  return numeric(digits.c_str()) / numeric(10).power(scale);
}

// ---------------------------------------------------------------------------------------------
// Number words.

const std::map<std::string, int>& unit_words() {
  static const std::map<std::string, int> m = {
      {"one", 1},      {"two", 2},        {"three", 3},     {"four", 4},      {"five", 5},
      {"six", 6},      {"seven", 7},      {"eight", 8},     {"nine", 9},      {"ten", 10},
      {"eleven", 11},  {"twelve", 12},    {"thirteen", 13}, {"fourteen", 14}, {"fifteen", 15},
      {"sixteen", 16}, {"seventeen", 17}, {"eighteen", 18}, {"nineteen", 19}};
  return m;
}
const std::map<std::string, int>& tens_words() {
  static const std::map<std::string, int> m = {{"twenty", 20}, {"thirty", 30}, {"forty", 40},
                                               {"fifty", 50},  {"sixty", 60},  {"seventy", 70},
                                               {"eighty", 80}, {"ninety", 90}};
  return m;
}

struct Word {
  std::size_t begin, end;
  std::string w;  // lower case
};

std::vector<Word> words_of(std::string_view s) {
  std::vector<Word> out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (!is_alpha(s[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && is_alpha(s[j])) ++j;
    out.push_back({i, j, lower(s.substr(i, j - i))});
    i = j;
  }
  return out;
}

// A number written in words starting at words[k]: "five", "twenty-five", "twenty five", "five
// hundred", "a hundred" is not read (the article is not part of the span). Returns the number of
// words used (0: none) and the value.
std::size_t read_number_words(std::string_view q, const std::vector<Word>& ws, std::size_t k,
                              long& value) {
  auto gap_ok = [&](std::size_t a, std::size_t b, bool hyphen_ok) {
    // words a and a+1 joined by one space or (for tens-units) one hyphen
    std::string_view g = q.substr(ws[a].end, ws[b].begin - ws[a].end);
    return g == " " || (hyphen_ok && g == "-");
  };
  std::size_t used = 0;
  long v = 0;
  if (auto t = tens_words().find(ws[k].w); t != tens_words().end()) {
    v = t->second;
    used = 1;
    if (k + 1 < ws.size() && gap_ok(k, k + 1, true)) {
      auto u = unit_words().find(ws[k + 1].w);
      if (u != unit_words().end() && u->second < 10) {
        v += u->second;
        used = 2;
      }
    }
  } else if (auto u = unit_words().find(ws[k].w); u != unit_words().end()) {
    v = u->second;
    used = 1;
  } else {
    return 0;
  }
  std::size_t n = k + used;
  if (n < ws.size() && gap_ok(n - 1, n, false) && (ws[n].w == "hundred" || ws[n].w == "thousand")) {
    v *= ws[n].w == "hundred" ? 100 : 1000;
    ++used;
  }
  value = v;
  return used;
}

// Words standing for a number: value, forms (1/u also), maskability as "x%".
struct NumberWord {
  const char* word;
  int value;
  bool reciprocal;
  // An ordinal as well ("the fifth day"): a number only as a fraction, after "a", a number word
  // or a hyphen ("a fifth", "four fifths", "one-eighth").
  bool ordinal = false;
};
constexpr NumberWord kNumberWords[] = {
    {"half", 2, true},         {"halves", 2, true},        {"twice", 2, false},
    {"double", 2, false},      {"doubles", 2, false},      {"doubled", 2, false},
    {"triple", 3, false},      {"triples", 3, false},      {"tripled", 3, false},
    {"thrice", 3, false},      {"dozen", 12, false},       {"dozens", 12, false},
    {"quarter", 4, true},      {"quarters", 4, true},      {"third", 3, true},
    {"thirds", 3, true},       {"pair", 2, false},         {"pairs", 2, false},
    {"quadruple", 4, false},   {"fourth", 4, true, true},  {"fourths", 4, true, true},
    {"fifth", 5, true, true},  {"fifths", 5, true, true},  {"sixth", 6, true, true},
    {"sixths", 6, true, true}, {"seventh", 7, true, true}, {"sevenths", 7, true, true},
    {"eighth", 8, true, true}, {"eighths", 8, true, true}, {"ninth", 9, true, true},
    {"ninths", 9, true, true}, {"tenth", 10, true, true},  {"tenths", 10, true, true}};

bool question_uses_x(std::string_view q) {
  for (std::size_t i = 0; i < q.size(); ++i) {
    if (q[i] != 'x' && q[i] != 'X') continue;
    auto wordish = [](char c) { return is_alpha(c) || c == '-' || c == '\''; };
    bool before = i > 0 && wordish(q[i - 1]);
    bool after = i + 1 < q.size() && wordish(q[i + 1]);
    if (!before && !after) return true;
  }
  return false;
}

ex u() { return own_value(); }

// A count of a unit written right after a number, converted to the next smaller unit as a
// solution may use it: "1 hour" as 60 minutes, "4 dozen" as 48, "2 weeks" as 14 days.
std::vector<ex> unit_forms(std::string_view after) {
  std::size_t i = 0;
  while (i < after.size() && after[i] == ' ') ++i;
  if (i == 0) return {};
  std::size_t j = i;
  while (j < after.size() && is_alpha(after[j])) ++j;
  const std::string w = lower(after.substr(i, j - i));
  static const std::map<std::string, int> factor = {
      {"hour", 60}, {"hours", 60}, {"minute", 60}, {"minutes", 60}, {"dozen", 12}, {"dozens", 12},
      {"foot", 12}, {"feet", 12},  {"yard", 3},    {"yards", 3},    {"week", 7},   {"weeks", 7},
      {"year", 12}, {"years", 12}, {"day", 24},    {"days", 24},    {"pound", 16}, {"pounds", 16}};
  auto it = factor.find(w);
  if (it == factor.end()) return {};
  return {it->second * u()};
}

}  // namespace

const GiNaC::symbol& unknown() {
  static const GiNaC::symbol x("x");
  return x;
}
const GiNaC::symbol& own_value() {
  static const GiNaC::symbol s("u");
  return s;
}

std::string num_str(const numeric& v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

bool parse_rational(std::string_view s, numeric& out) {
  std::string t;
  for (char c : s)
    if (c != ',' && c != ' ' && c != '$') t.push_back(c);
  if (t.empty()) return false;
  bool neg = false;
  std::size_t i = 0;
  if (t[0] == '-') {
    neg = true;
    i = 1;
  }
  std::string_view r(t);
  r.remove_prefix(i);
  std::size_t slash = r.find('/');
  auto dec_ok = [](std::string_view d) {
    if (d.empty()) return false;
    int points = 0, digits = 0;
    for (char c : d) {
      if (c == '.')
        ++points;
      else if (is_digit(c))
        ++digits;
      else
        return false;
    }
    return points <= 1 && digits > 0;
  };
  numeric v;
  if (slash != std::string_view::npos) {
    std::string_view a = r.substr(0, slash), b = r.substr(slash + 1);
    if (!dec_ok(a) || !dec_ok(b)) return false;
    numeric d = parse_decimal(b);
    if (d.is_zero()) return false;
    v = parse_decimal(a) / d;
  } else {
    if (!dec_ok(r)) return false;
    v = parse_decimal(r);
  }
  out = neg ? -v : v;
  return true;
}

std::string plain(const numeric& v) {
  if (v.is_integer()) return num_str(v);
  numeric den = v.denom();
  numeric d = den;
  int twos = 0, fives = 0;
  while (GiNaC::mod(d, 2).is_zero()) {
    d = d / 2;
    ++twos;
  }
  while (GiNaC::mod(d, 5).is_zero()) {
    d = d / 5;
    ++fives;
  }
  if (!d.is_equal(1)) return num_str(v);
  int digits = std::max(twos, fives);
  numeric scaled = GiNaC::abs(v) * numeric(10).power(digits);
  std::string s = num_str(scaled);  // an integer now
  while (static_cast<int>(s.size()) <= digits) s.insert(s.begin(), '0');
  s.insert(s.end() - digits, '.');
  return (v.is_negative() ? "-" : "") + s;
}

std::vector<QuestionNumber> question_numbers(std::string_view q) {
  std::vector<QuestionNumber> out;
  const bool no_masks = question_uses_x(q);
  const ex x = unknown();
  // Digits.
  for (std::size_t i = 0; i < q.size();) {
    bool starts = is_digit(q[i]) || (q[i] == '.' && i + 1 < q.size() && is_digit(q[i + 1]) &&
                                     (i == 0 || !is_digit(q[i - 1])));
    if (!starts) {
      ++i;
      continue;
    }
    bool frac = false;
    std::size_t j = match_number(q, i, true, frac);
    QuestionNumber n;
    n.offset = i;
    n.length = j - i;
    n.written = std::string(q.substr(i, j - i));
    if (frac) {
      std::size_t slash = n.written.find('/');
      n.value =
          parse_decimal(n.written.substr(0, slash)) / parse_decimal(n.written.substr(slash + 1));
      n.kind = QuestionNumber::Kind::Fraction;
      if (n.value.is_zero()) {
        i = j;
        continue;
      }
    } else {
      n.value = parse_decimal(n.written);
    }
    char before = i > 0 ? q[i - 1] : ' ';
    char after = j < q.size() ? q[j] : ' ';
    char after2 = j + 1 < q.size() ? q[j + 1] : ' ';
    bool maskable = !no_masks;
    if (is_alpha(before) || before == ':' || before == '/' || before == '_') maskable = false;
    if (before == '-' && i >= 2 && is_digit(q[i - 2])) maskable = false;
    if (is_alpha(after) || after == '_') maskable = false;  // "5th", "3pm", "10km"
    if ((after == ':' || after == '/' || after == '-' || after == '.' || after == ',') &&
        is_digit(after2))
      maskable = false;  // times, ranges, dates
    std::string rest = lower(q.substr(j, 12));
    if (after == '%' || rest.starts_with(" percent") || rest.starts_with(" per cent")) {
      n.kind = QuestionNumber::Kind::Percent;
    } else if (rest.starts_with(" cent") || rest.starts_with("\xC2\xA2")) {  // cents, ¢
      n.kind = QuestionNumber::Kind::Cents;
    }
    switch (n.kind) {
      case QuestionNumber::Kind::Percent:
        n.forms = {u(), u() / 100, 1 - u() / 100, 100 - u(), 1 + u() / 100, 100 + u()};
        break;
      case QuestionNumber::Kind::Cents:
        n.forms = {u(), u() / 100};
        break;
      case QuestionNumber::Kind::Fraction:
        n.forms = {u(), 1 / u(), 1 - u()};
        break;
      default:
        n.forms = {u()};
        for (const ex& f : unit_forms(q.substr(j, 12))) n.forms.push_back(f);
        break;
    }
    n.maskable = maskable;
    n.mask_text = "x";
    n.x_value = n.value;
    n.x_plain = plain(n.value);
    if (n.kind == QuestionNumber::Kind::Fraction) n.x_plain = num_str(n.value);
    for (const ex& f : n.forms) n.masked_forms.push_back(f.subs(u() == x));
    out.push_back(std::move(n));
    i = j;
  }
  // Words.
  const std::vector<Word> ws = words_of(q);
  for (std::size_t k = 0; k < ws.size(); ++k) {
    // Not inside a hyphenated or apostrophe word such as "one-third" handled below, "o'clock".
    long v = 0;
    std::size_t used = read_number_words(q, ws, k, v);
    if (used) {
      QuestionNumber n;
      n.kind = QuestionNumber::Kind::Word;
      n.offset = ws[k].begin;
      n.length = ws[k + used - 1].end - ws[k].begin;
      n.written = std::string(q.substr(n.offset, n.length));
      n.value = numeric(v);
      n.forms = {u()};
      std::string rest = lower(q.substr(n.offset + n.length, 12));
      if (rest.starts_with(" percent") || rest.starts_with(" per cent")) {
        n.kind = QuestionNumber::Kind::Percent;
        n.forms = {u(), u() / 100, 1 - u() / 100, 100 - u(), 1 + u() / 100, 100 + u()};
      } else {
        for (const ex& f : unit_forms(q.substr(n.offset + n.length, 12))) n.forms.push_back(f);
      }
      std::string prev = k > 0 ? ws[k - 1].w : "";
      std::string next = k + used < ws.size() ? ws[k + used].w : "";
      char after = n.offset + n.length < q.size() ? q[n.offset + n.length] : ' ';
      char before = n.offset > 0 ? q[n.offset - 1] : ' ';
      bool maskable = !no_masks && after != '-' && before != '-' && after != '\'';
      if (ws[k].w == "one" && used == 1) {
        static const std::set<std::string> det = {"no",   "each",  "every", "any", "some",
                                                  "this", "that",  "which", "the", "a",
                                                  "only", "other", "last"};
        if (det.count(prev) || next == "another" || next == "day" || next == "time" ||
            next == "another's")
          maskable = false;
      }
      n.maskable = maskable;
      n.mask_text = "x";
      n.x_value = n.value;
      n.x_plain = plain(n.value);
      for (const ex& f : n.forms) n.masked_forms.push_back(f.subs(u() == x));
      out.push_back(std::move(n));
      k += used - 1;
      continue;
    }
    for (const NumberWord& nw : kNumberWords) {
      if (ws[k].w != nw.word) continue;
      if (nw.ordinal) {
        std::string prev = k > 0 ? ws[k - 1].w : "";
        long pv = 0;
        bool fraction = prev == "a" || prev == "one" ||
                        (k > 0 && read_number_words(q, ws, k - 1, pv) == 1) ||
                        (ws[k].begin > 0 && q[ws[k].begin - 1] == '-');
        if (!fraction) break;
      }
      QuestionNumber n;
      n.kind = QuestionNumber::Kind::Word;
      n.offset = ws[k].begin;
      n.length = ws[k].end - ws[k].begin;
      n.written = std::string(q.substr(n.offset, n.length));
      n.value = numeric(nw.value);
      n.forms = {u()};
      if (nw.reciprocal) n.forms.push_back(1 / u());
      // "half as ...", "half of ...", "half the ...", "half an hour": masked as "x%" with x = 50
      // (GSM8K_Backward's form); not "in half", "a half", "the second half".
      static const std::set<std::string> noun_use = {"a",     "in",   "the", "first", "second",
                                                     "other", "last", "one", "into"};
      std::string prev = k > 0 ? ws[k - 1].w : "";
      char before = n.offset > 0 ? q[n.offset - 1] : ' ';
      if (ws[k].w == "half" && !noun_use.count(prev) && !no_masks && before != '-' &&
          n.offset + n.length + 1 < q.size() && q[n.offset + n.length] == ' ' &&
          is_alpha(q[n.offset + n.length + 1])) {
        n.maskable = true;
        n.mask_text = "x%";
        n.x_value = numeric(50);
        n.x_plain = "50";
        // u = 2 = 100 / x
        for (const ex& f : n.forms) n.masked_forms.push_back(f.subs(u() == 100 / x));
      } else {
        for (const ex& f : n.forms) n.masked_forms.push_back(f);
      }
      out.push_back(std::move(n));
      break;
    }
  }
  std::sort(out.begin(), out.end(),
            [](const QuestionNumber& a, const QuestionNumber& b) { return a.offset < b.offset; });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Annotation expressions.

namespace {

struct Parser {
  std::string_view s;
  std::size_t i = 0;
  std::vector<Node>& nodes;
  const std::set<std::string>& fractions;  // "a/b" tokens of the question
  bool join = true;

  [[noreturn]] void error(const char* what) { throw std::runtime_error(what); }
  void skip() {
    while (i < s.size() && s[i] == ' ') ++i;
  }
  int add(Node n) {
    nodes.push_back(std::move(n));
    return static_cast<int>(nodes.size()) - 1;
  }
  bool number_at(std::size_t k) const {
    return k < s.size() &&
           (is_digit(s[k]) || (s[k] == '.' && k + 1 < s.size() && is_digit(s[k + 1])));
  }
  std::string number_text() {
    std::size_t b = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && is_digit(s[i])) ++i;
    }
    return std::string(s.substr(b, i - b));
  }
  int expr() {
    int l = term();
    for (;;) {
      skip();
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        char op = s[i++];
        int r = term();
        Node n;
        n.op = op == '+' ? Node::Op::Add : Node::Op::Sub;
        n.a = l;
        n.b = r;
        n.value = op == '+' ? nodes[l].value + nodes[r].value : nodes[l].value - nodes[r].value;
        l = add(std::move(n));
      } else {
        return l;
      }
    }
  }
  int term() {
    int l = unary(false);
    for (;;) {
      skip();
      if (i < s.size() && (s[i] == '*' || s[i] == '/')) {
        char op = s[i++];
        int r = unary(op == '*');
        Node n;
        n.op = op == '*' ? Node::Op::Mul : Node::Op::Div;
        n.a = l;
        n.b = r;
        if (op == '/' && nodes[r].value.is_zero()) error("division by zero");
        n.value = op == '*' ? nodes[l].value * nodes[r].value : nodes[l].value / nodes[r].value;
        l = add(std::move(n));
      } else {
        return l;
      }
    }
  }
  // may_join: a literal here may be the start of a question fraction "a/b".
  int unary(bool may_join_after_mul) {
    skip();
    if (i < s.size() && s[i] == '-') {
      ++i;
      int a = unary(false);
      Node n;
      n.op = Node::Op::Neg;
      n.a = a;
      n.value = -nodes[a].value;
      return add(std::move(n));
    }
    if (i < s.size() && s[i] == '+') {
      ++i;
      return unary(may_join_after_mul);
    }
    return primary(may_join_after_mul);
  }
  int primary(bool) {
    skip();
    if (i < s.size() && s[i] == '(') {
      ++i;
      int e = expr();
      skip();
      if (i >= s.size() || s[i] != ')') error("missing )");
      ++i;
      nodes[e].parens = true;
      return e;
    }
    if (!number_at(i)) error("expected a number");
    std::string a = number_text();
    Node n;
    n.op = Node::Op::Lit;
    n.text = a;
    n.value = parse_decimal(a);
    // "1/2" written in the question: one literal.
    if (join && i + 1 < s.size() && s[i] == '/' && is_digit(s[i + 1]) &&
        a.find('.') == std::string::npos) {
      std::size_t save = i;
      ++i;
      std::string b = number_text();
      bool prev_div = false;
      {
        // the operator before this literal, if any, must not be '/'
        std::size_t k = save - a.size();
        while (k > 0 && s[k - 1] == ' ') --k;
        prev_div = k > 0 && s[k - 1] == '/';
      }
      if (b.find('.') == std::string::npos && fractions.count(a + "/" + b) && !prev_div &&
          !parse_decimal(b).is_zero()) {
        n.text = a + "/" + b;
        n.value = parse_decimal(a) / parse_decimal(b);
      } else {
        i = save;
      }
    }
    return add(std::move(n));
  }
};

bool parse_expression(std::string_view text, const std::set<std::string>& fractions, bool join,
                      std::vector<Node>& nodes, int& root) {
  nodes.clear();
  Parser p{text, 0, nodes, fractions, join};
  try {
    root = p.expr();
    p.skip();
    if (p.i != text.size()) return false;
  } catch (const std::runtime_error&) {
    return false;
  }
  return true;
}

// Unit factors named by words of the question or solution.
std::set<std::string> word_set(std::string_view a, std::string_view b) {
  std::set<std::string> words;
  for (const Word& w : words_of(a)) words.insert(w.w);
  for (const Word& w : words_of(b)) words.insert(w.w);
  return words;
}

std::vector<std::string_view> split_lines(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t e = s.find('\n', start);
    if (e == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, e - start));
    start = e + 1;
  }
}

std::vector<numeric> unit_constants(const std::set<std::string>& words) {
  std::vector<numeric> out;
  auto has = [&](std::initializer_list<const char*> ws) {
    for (const char* w : ws)
      if (words.count(w)) return true;
    return false;
  };
  auto add = [&](std::initializer_list<numeric> vs) {
    for (const numeric& v : vs) out.push_back(v);
  };
  if (has({"hour", "hours", "minute", "minutes", "min", "mins", "hr", "hrs", "hourly"})) add({60});
  if (has({"seconds", "sec", "secs"})) add({60, 3600});
  if (has({"day", "days", "daily"})) add({24, 7});
  if (has({"week", "weeks", "weekly", "weekday", "weekdays", "weekend", "weekends"}))
    add({7, 52, 5, 2});
  if (has({"month", "months", "monthly"})) add({12, 30, 4});
  if (has({"year", "years", "yearly", "annual", "annually"})) add({12, 52, 365});
  if (has({"foot", "feet", "inch", "inches", "ft"})) add({12});
  if (has({"yard", "yards"})) add({3, 36});
  if (has({"pound", "pounds", "lb", "lbs", "ounce", "ounces", "oz"})) add({16});
  if (has({"gallon", "gallons", "quart", "quarts", "pint", "pints", "cup", "cups"}))
    add({4, 2, 8, 16, 128});
  if (has({"dollar", "dollars", "cent", "cents"})) add({100});
  if (has({"quarter", "quarters"})) add({25, numeric(1, 4)});
  if (has({"dime", "dimes"})) add({10, numeric(1, 10)});
  if (has({"nickel", "nickels"})) add({5, numeric(1, 20)});
  if (has({"penny", "pennies"})) add({numeric(1, 100)});
  if (has({"meter", "meters", "centimeter", "centimeters", "cm", "metre", "metres"})) add({100});
  if (has({"kilometer", "kilometers", "km", "kilogram", "kilograms", "kg", "gram", "grams", "liter",
           "liters", "milliliter", "milliliters", "ml", "litre", "litres"}))
    add({1000});
  if (has({"mile", "miles"})) add({5280});
  if (has({"decade", "decades"})) add({10});
  if (has({"century", "centuries"})) add({100});
  if (has({"hundred", "hundreds"})) add({100});
  if (has({"thousand", "thousands"})) add({1000});
  if (has({"million", "millions"})) add({1000000});
  if (has({"ton", "tons"})) add({2000});
  if (has({"pair", "pairs", "twins", "couple", "both", "double", "twice", "half"})) add({2});
  // days of a named month ("may" is left out: mostly the verb)
  if (has({"january", "march", "july", "august", "october", "december"})) add({31});
  if (has({"april", "june", "september", "november"})) add({30});
  if (has({"february"})) add({28});
  return out;
}

bool percent_context(std::string_view question, std::string_view solution) {
  for (std::string_view t : {question, solution}) {
    if (t.find('%') != std::string_view::npos) return true;
    if (lower(t).find("percent") != std::string::npos) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Computations written in the text.

struct Tok {
  enum Kind { Num, Op, LP, RP, Word, Other } kind;
  std::size_t b, e;
  std::string text;  // Num: the number without '$', commas and '%'; Op: + - * /
  bool unit = false;
};

// UTF-8 operator signs at s[i]: length and the operator, or 0.
std::size_t utf8_op(std::string_view s, std::size_t i, char& op) {
  auto at = [&](std::string_view pat) { return s.substr(i, pat.size()) == pat; };
  if (at("\xE2\x88\x92") || at("\xE2\x80\x93")) {  // minus sign, en dash
    op = '-';
    return 3;
  }
  if (at("\xC3\x97")) {  // multiplication sign
    op = '*';
    return 2;
  }
  if (at("\xC3\xB7")) {  // division sign
    op = '/';
    return 2;
  }
  return 0;
}

std::vector<Tok> tokenize(std::string_view s, std::size_t from, std::size_t to) {
  std::vector<Tok> out;
  std::size_t i = from;
  while (i < to) {
    char c = s[i];
    char op = 0;
    if (c == ' ' || c == '\t' || s.substr(i, 2) == "\xC2\xA0") {  // no-break space too
      i += c == ' ' || c == '\t' ? 1 : 2;
      continue;
    }
    if (std::size_t n = utf8_op(s, i, op)) {
      out.push_back({Tok::Op, i, i + n, std::string(1, op)});
      i += n;
      continue;
    }
    bool dollar = c == '$' && i + 1 < to && (is_digit(s[i + 1]) || s[i + 1] == '.');
    std::size_t ns = dollar ? i + 1 : i;
    if (is_digit(s[ns]) || (s[ns] == '.' && ns + 1 < to && is_digit(s[ns + 1]))) {
      bool frac = false;
      std::size_t j = match_number(s.substr(0, to), ns, false, frac);
      std::string t;
      for (std::size_t k = ns; k < j; ++k)
        if (s[k] != ',' && s[k] != ' ') t.push_back(s[k]);
      if (j < to && s[j] == '%') ++j;
      if (j < to && is_alpha(s[j])) {  // "5th", "60g": not a plain number
        out.push_back({Tok::Other, i, j, ""});
        i = j;
        continue;
      }
      out.push_back({Tok::Num, i, j, t});
      i = j;
      continue;
    }
    if (is_alpha(c)) {
      std::size_t j = i;
      while (j < to && (is_alpha(s[j]) || s[j] == '\'' || s[j] == '-' ||
                        (s[j] == '/' && j + 1 < to && is_alpha(s[j + 1]))))
        ++j;
      if (j == i + 1 && (c == 'x' || c == 'X'))
        out.push_back({Tok::Op, i, j, "*"});
      else
        out.push_back({Tok::Word, i, j, ""});
      i = j;
      continue;
    }
    if (c == '/' && i + 1 < to && is_alpha(s[i + 1])) {  // "$50/hour": a unit
      std::size_t j = i + 1;
      while (j < to && is_alpha(s[j])) ++j;
      out.push_back({Tok::Word, i, j, ""});
      i = j;
      continue;
    }
    if (c == '+' || c == '*' || c == '/' || (c == '-' && !(i > from && is_alpha(s[i - 1])))) {
      out.push_back({Tok::Op, i, i + 1, std::string(1, c)});
      ++i;
      continue;
    }
    if (c == '(') {
      out.push_back({Tok::LP, i, i + 1, "("});
      ++i;
      continue;
    }
    if (c == ')') {
      out.push_back({Tok::RP, i, i + 1, ")"});
      ++i;
      continue;
    }
    std::size_t j = i + 1;
    while (j < to && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
    out.push_back({Tok::Other, i, j, ""});
    i = j;
  }
  return out;
}

// Operators written as words between two numbers: "200 minus 174", "3 times 4", "3.65 divided
// by .05", "6 multiplied by 2".
void word_operators(std::string_view s, std::vector<Tok>& toks) {
  auto operand_end = [](const Tok& t) { return t.kind == Tok::Num || t.kind == Tok::RP; };
  auto operand_start = [&](std::size_t i) {
    return i < toks.size() && (toks[i].kind == Tok::Num || toks[i].kind == Tok::LP);
  };
  auto word = [&](std::size_t i) {
    return toks[i].kind == Tok::Word ? lower(s.substr(toks[i].b, toks[i].e - toks[i].b)) : "";
  };
  std::vector<Tok> out;
  for (std::size_t i = 0; i < toks.size(); ++i) {
    const Tok& t = toks[i];
    if (t.kind == Tok::Word && !out.empty() && operand_end(out.back())) {
      const std::string w = word(i);
      char op = w == "plus" ? '+' : w == "minus" ? '-' : w == "times" ? '*' : 0;
      std::size_t next = i + 1;
      if ((w == "divided" || w == "multiplied") && next < toks.size() && word(next) == "by") {
        op = w == "divided" ? '/' : '*';
        ++next;
      }
      if (op && operand_start(next)) {
        out.push_back({Tok::Op, t.b, toks[next - 1].e, std::string(1, op)});
        i = next - 1;
        continue;
      }
    }
    out.push_back(t);
  }
  toks = std::move(out);
}

// A product written without its sign: "2(16)", "(1/4)24", "1/2 (68)".
void implicit_products(std::vector<Tok>& toks) {
  std::vector<Tok> out;
  for (const Tok& t : toks) {
    if (!out.empty()) {
      const Tok& p = out.back();
      bool before = p.kind == Tok::Num || p.kind == Tok::RP;
      bool after = t.kind == Tok::LP || (p.kind == Tok::RP && t.kind == Tok::Num);
      if (before && after) out.push_back({Tok::Op, t.b, t.b, "*"});
    }
    out.push_back(t);
  }
  toks = std::move(out);
}

void add_text_steps(std::string_view sol, const std::set<std::string>& fractions,
                    std::vector<Step>& steps) {
  std::vector<std::pair<std::size_t, std::size_t>> ann;
  for (const Step& st : steps) ann.push_back({st.begin, st.end});
  auto in_ann = [&](std::size_t p) {
    for (auto [b, e] : ann)
      if (p >= b && p < e) return true;
    return false;
  };
  std::vector<Step> found;
  std::size_t ls = 0, line = 0;
  while (ls <= sol.size()) {
    std::size_t le = sol.find('\n', ls);
    if (le == std::string_view::npos) le = sol.size();
    std::size_t seg = ls;  // where the current left side may start
    for (std::size_t e = ls; e < le; ++e) {
      if (in_ann(e)) {
        seg = e + 1;
        continue;
      }
      char c = sol[e];
      if ((c == '.' || c == '?' || c == '!' || c == ':' || c == ';' || c == ',') && e + 1 < le &&
          sol[e + 1] == ' ') {
        seg = e + 1;
        continue;
      }
      // '=' or the word "equals"
      std::size_t eq_end = e + 1;
      if (c == 'e' && e > ls && sol[e - 1] == ' ' && sol.substr(e, 7) == "equals ")
        eq_end = e + 6;
      else if (c != '=')
        continue;
      const std::size_t left_from = seg;
      seg = eq_end;
      // the right side: one number, not followed by more arithmetic or an annotation
      std::size_t k = eq_end;
      while (k < le && sol[k] == ' ') ++k;
      if (k < le && sol[k] == '$') ++k;
      if (sol.substr(k, 2) == "<<") {
        // "16+16 = <<32=32>>32": an annotation that only states its result; the computation
        // before it is the step (the annotation's literal then links to it).
        std::size_t close = sol.find(">>", k);
        if (close == std::string_view::npos || close > le) continue;
        std::string_view body = sol.substr(k + 2, close - k - 2);
        std::size_t q = body.find('=');
        numeric v;
        if (q == std::string_view::npos || body.substr(0, q) != body.substr(q + 1) ||
            !parse_rational(body.substr(0, q), v))
          continue;
        k = close + 2;
        if (k < le && sol[k] == '$') ++k;
      }
      if (k >= le) continue;
      if (!(is_digit(sol[k]) || (sol[k] == '.' && k + 1 < le && is_digit(sol[k + 1])))) continue;
      bool frac = false;
      std::size_t r = match_number(sol.substr(0, le), k, false, frac);
      std::string rt(sol.substr(k, r - k));
      std::size_t rend = r;
      if (rend < le && sol[rend] == '%') ++rend;
      if (rend < le && is_alpha(sol[rend])) continue;
      std::size_t a = rend;
      while (a < le && sol[a] == ' ') ++a;
      char op = 0;
      if (a < le && (sol[a] == '=' || sol[a] == '+' || sol[a] == '*' || sol[a] == '/' ||
                     utf8_op(sol, a, op) || (sol[a] == '-' && a + 1 < le && sol[a + 1] == ' ') ||
                     sol.substr(a, 2) == "<<"))
        continue;
      if (a + 1 < le && (sol[a] == 'x' || sol[a] == 'X') && sol[a + 1] == ' ') continue;
      // the left side
      std::vector<Tok> toks = tokenize(sol, left_from, e);
      word_operators(sol, toks);
      for (std::size_t i = 0; i < toks.size(); ++i)
        if (toks[i].kind == Tok::Word && i > 0 &&
            (toks[i - 1].kind == Tok::Num || (toks[i - 1].kind == Tok::Word && toks[i - 1].unit)))
          toks[i].unit = true;
      std::vector<Tok> kept;
      for (const Tok& t : toks)
        if (!t.unit) kept.push_back(t);
      implicit_products(kept);
      std::size_t first = kept.size();
      while (first > 0 && kept[first - 1].kind != Tok::Word && kept[first - 1].kind != Tok::Other)
        --first;
      numeric result;
      if (!parse_rational(rt, result)) continue;
      for (; first < kept.size(); ++first) {
        if (kept[first].kind != Tok::Num && kept[first].kind != Tok::LP) continue;
        int nums = 0, ops = 0;
        std::string expr;
        for (std::size_t i = first; i < kept.size(); ++i) {
          if (kept[i].kind == Tok::Num) ++nums;
          if (kept[i].kind == Tok::Op) ++ops;
          expr += kept[i].text;
        }
        if (nums < 2 || ops < 1) break;
        Step st;
        if (!parse_expression(expr, fractions, true, st.nodes, st.root)) continue;
        if (!st.nodes[st.root].value.is_equal(result)) {
          if (!parse_expression(expr, fractions, false, st.nodes, st.root) ||
              !st.nodes[st.root].value.is_equal(result))
            continue;
        }
        st.text = true;
        st.begin = kept[first].b;
        st.end = rend;
        st.line = line;
        st.expression = expr;
        st.result_text = rt;
        st.result = result;
        found.push_back(std::move(st));
        break;
      }
    }
    ls = le + 1;
    ++line;
  }
  for (Step& st : found) steps.push_back(std::move(st));
}

// ---------------------------------------------------------------------------------------------
// Context words.

const std::set<std::string>& stop_words() {
  static const std::set<std::string> s = {
      "the",   "a",       "an",   "of",    "and",   "to",     "in",    "for",   "on",     "at",
      "is",    "are",     "was",  "were",  "he",    "she",    "they",  "it",    "his",    "her",
      "their", "each",    "that", "this",  "with",  "as",     "by",    "so",    "be",     "has",
      "have",  "had",     "many", "much",  "how",   "what",   "there", "than",  "more",   "then",
      "if",    "per",     "will", "would", "can",   "from",   "every", "total", "number", "we",
      "which", "who",     "him",  "them",  "its",   "i",      "you",   "do",    "does",   "did",
      "all",   "or",      "but",  "into",  "up",    "out",    "s",     "x",     "one",    "two",
      "three", "four",    "five", "six",   "seven", "eight",  "nine",  "ten",   "times",  "means",
      "since", "because", "now",  "also",  "after", "before", "get",   "gets",  "got"};
  return s;
}

std::string stem(std::string w) {
  if (w.size() > 4 && w.ends_with("ies")) return w.substr(0, w.size() - 3) + "y";
  if (w.size() > 3 && w.ends_with("s") && !w.ends_with("ss")) w.pop_back();
  return w;
}

std::set<std::string> content_words(std::string_view s) {
  std::set<std::string> out;
  for (const Word& w : words_of(s))
    if (!stop_words().count(w.w)) out.insert(stem(w.w));
  return out;
}

// Up to `before` content words before [b, e) and `after` after it, within its sentence.
std::set<std::string> window_words(std::string_view q, std::size_t b, std::size_t e, int before,
                                   int after) {
  auto boundary = [&](std::size_t i) {
    char c = q[i];
    return (c == '.' || c == '?' || c == '!') && (i + 1 >= q.size() || q[i + 1] == ' ');
  };
  std::size_t sb = b;
  while (sb > 0 && !boundary(sb - 1)) --sb;
  std::size_t se = e;
  while (se < q.size() && !boundary(se)) ++se;
  std::set<std::string> out;
  std::vector<Word> pre = words_of(q.substr(sb, b - sb));
  int n = 0;
  for (auto it = pre.rbegin(); it != pre.rend() && n < before; ++it)
    if (!stop_words().count(it->w)) {
      out.insert(stem(it->w));
      ++n;
    }
  n = 0;
  for (const Word& w : words_of(q.substr(e, se - e))) {
    if (n >= after) break;
    if (!stop_words().count(w.w)) {
      out.insert(stem(w.w));
      ++n;
    }
  }
  return out;
}

void resolve_by_context(Graph& g, const std::vector<std::string_view>& lines) {
  std::vector<std::set<std::string>> qctx(g.numbers.size());
  for (std::size_t q = 0; q < g.numbers.size(); ++q)
    qctx[q] = window_words(g.question, g.numbers[q].offset,
                           g.numbers[q].offset + g.numbers[q].length, 3, 4);
  std::vector<std::set<std::string>> lctx(lines.size());
  for (std::size_t l = 0; l < lines.size(); ++l) lctx[l] = content_words(lines[l]);
  std::vector<int> uses(g.numbers.size(), 0);  // literals that may stand for each number
  for (const Literal& lit : g.literals)
    for (const Source& s : lit.sources)
      if (s.kind == Source::Kind::Question) ++uses[s.index];
  for (Literal& lit : g.literals) {
    const Step& st = g.steps[lit.step];
    const std::set<std::string>& line = lctx[st.line];
    auto shared = [&](const std::set<std::string>& a) {
      int n = 0;
      for (const std::string& w : a)
        if (line.count(w)) ++n;
      return n;
    };
    for (const Source& s : lit.sources) {
      if (s.kind == Source::Kind::Constant)
        lit.context.push_back(0);
      else
        lit.context.push_back(s.kind == Source::Kind::Question
                                  ? shared(qctx[s.index])
                                  : shared(lctx[g.steps[s.index].line]));
    }
    int placed = 0;
    for (const Source& s : lit.sources)
      if (s.kind != Source::Kind::Constant) ++placed;
    if (placed < 2) continue;
    int same = 0;
    for (const Node& nd : st.nodes)
      if (nd.op == Node::Op::Lit && nd.value.is_equal(lit.value)) ++same;
    bool all_question = true;
    for (const Source& s : lit.sources)
      if (s.kind == Source::Kind::Step) all_question = false;
    int best = -1, second = -1;
    std::size_t best_i = 0;
    for (std::size_t i = 0; i < lit.sources.size(); ++i) {
      const Source& s = lit.sources[i];
      if (s.kind == Source::Kind::Constant) continue;
      int sc = lit.context[i];
      if (sc > best) {
        second = best;
        best = sc;
        best_i = i;
      } else if (sc > second) {
        second = sc;
      }
    }
    // Several literals of this value in one step may come from different places: only a clear
    // winner among question numbers takes them all.
    if (same > 1 && !all_question) continue;
    if (best < 2 || best < second + 2) continue;
    // A question number that no other literal can stand for is not dropped: the solution uses
    // every number of the question, and the readings of symbolic_backward.h weigh that.
    bool last_use = false;
    for (std::size_t i = 0; i < lit.sources.size(); ++i)
      if (i != best_i && lit.sources[i].kind == Source::Kind::Question &&
          uses[lit.sources[i].index] == 1)
        last_use = true;
    if (last_use) continue;
    for (std::size_t i = 0; i < lit.sources.size(); ++i)
      if (i != best_i && lit.sources[i].kind == Source::Kind::Question)
        --uses[lit.sources[i].index];
    // Constants stay (an implicit count such as the two days of a weekend reads as well).
    std::vector<Source> keep;
    std::vector<int> keep_context;
    for (std::size_t i = 0; i < lit.sources.size(); ++i)
      if (i == best_i || lit.sources[i].kind == Source::Kind::Constant) {
        keep.push_back(lit.sources[i]);
        keep_context.push_back(lit.context[i]);
      }
    lit.sources = std::move(keep);
    lit.context = std::move(keep_context);
    lit.by_context = true;
  }
}

}  // namespace

Graph parse_graph(std::string_view question, std::string_view solution, std::string_view answer) {
  Graph g;
  g.question = std::string(question);
  g.solution = std::string(solution);
  g.numbers = question_numbers(question);
  numeric ans;
  if (!parse_rational(answer, ans)) {
    g.failure = kNoAnswerStep;
    return g;
  }
  g.answer = ans;
  std::set<std::string> fractions;
  for (const QuestionNumber& n : g.numbers)
    if (n.kind == QuestionNumber::Kind::Fraction) fractions.insert(n.written);

  // Annotations.
  std::size_t line = 0, pos = 0;
  for (;;) {
    std::size_t a = solution.find("<<", pos);
    if (a == std::string_view::npos) break;
    std::size_t b = solution.find(">>", a + 2);
    if (b == std::string_view::npos) break;
    for (std::size_t k = pos; k < a; ++k)
      if (solution[k] == '\n') ++line;
    pos = b + 2;
    Step st;
    st.begin = a;
    st.end = b + 2;
    st.line = line;
    std::string_view body = solution.substr(a + 2, b - a - 2);
    for (std::size_t k = a; k < b; ++k)
      if (solution[k] == '\n') ++line;
    std::size_t eq = body.rfind('=');
    if (eq == std::string_view::npos) {
      g.failure = kBadAnnotation;
      return g;
    }
    st.expression = std::string(body.substr(0, eq));
    st.result_text = std::string(body.substr(eq + 1));
    if (!parse_rational(st.result_text, st.result) ||
        !parse_expression(st.expression, fractions, true, st.nodes, st.root)) {
      g.failure = kBadAnnotation;
      return g;
    }
    if (!st.nodes[st.root].value.is_equal(st.result)) {
      // A joined fraction may have changed the reading: try without.
      if (!parse_expression(st.expression, fractions, false, st.nodes, st.root)) {
        g.failure = kBadAnnotation;
        return g;
      }
      if (!st.nodes[st.root].value.is_equal(st.result)) {
        g.failure = kWrongResult;
        return g;
      }
    }
    g.steps.push_back(std::move(st));
  }
  add_text_steps(solution, fractions, g.steps);
  if (g.steps.empty()) {
    g.failure = kNoAnnotations;
    return g;
  }
  std::stable_sort(g.steps.begin(), g.steps.end(),
                   [](const Step& a, const Step& b) { return a.begin < b.begin; });

  // Literals and their sources.
  const std::vector<numeric> units = unit_constants(word_set(question, solution));
  const bool percent = percent_context(question, solution);
  std::vector<std::string_view> lines = split_lines(solution);
  g.constants = units;
  g.constants.push_back(1);
  if (percent) {
    g.constants.push_back(100);
    g.constants.push_back(numeric(1, 100));
  }
  for (int s = 0; s < static_cast<int>(g.steps.size()); ++s) {
    Step& st = g.steps[s];
    // parent of each node, for the contextual constant 1
    std::vector<int> parent(st.nodes.size(), -1);
    for (int k = 0; k < static_cast<int>(st.nodes.size()); ++k) {
      if (st.nodes[k].a >= 0) parent[st.nodes[k].a] = k;
      if (st.nodes[k].b >= 0) parent[st.nodes[k].b] = k;
    }
    for (int k = 0; k < static_cast<int>(st.nodes.size()); ++k) {
      Node& nd = st.nodes[k];
      if (nd.op != Node::Op::Lit) continue;
      Literal lit;
      lit.step = s;
      lit.node = k;
      lit.value = nd.value;
      for (int q = 0; q < static_cast<int>(g.numbers.size()); ++q) {
        const QuestionNumber& qn = g.numbers[q];
        for (int f = 0; f < static_cast<int>(qn.forms.size()); ++f) {
          ex v = qn.forms[f].subs(own_value() == qn.value);
          if (GiNaC::is_a<numeric>(v) && GiNaC::ex_to<numeric>(v).is_equal(nd.value)) {
            lit.sources.push_back({Source::Kind::Question, q, f, {}});
            break;
          }
        }
      }
      for (int p = 0; p < s; ++p) {
        if (g.steps[p].result.is_equal(nd.value))
          lit.sources.push_back({Source::Kind::Step, p, 0, {}});
        else if ((g.steps[p].result / 100).is_equal(nd.value))
          lit.sources.push_back({Source::Kind::Step, p, 1, {}});
      }
      // 1 added ("1 + 1/4", or one more left implicit), subtracted ("7 - 1", one less), 1 less a
      // non-integer ("1 - 0.4"), or a factor or divisor of 1 (which changes nothing wherever it
      // came from).
      if (nd.value.is_equal(1) && parent[k] >= 0) {
        const Node& pn = st.nodes[parent[k]];
        bool one = false;
        if (pn.op == Node::Op::Add) {
          one = true;  // also one more, left implicit: "3 friends + 1" (himself)
        } else if (pn.op == Node::Op::Sub) {
          // "1 - 0.4", or one less ("7 - 1": all but one)
          int other = pn.a == k ? pn.b : pn.a;
          one = pn.b == k || !st.nodes[other].value.is_integer();
        } else if (pn.op == Node::Op::Mul || pn.op == Node::Op::Div) {
          one = true;
        }
        if (one) lit.sources.push_back({Source::Kind::Constant, -1, 1, numeric(1)});
      }
      // 2 is everywhere (two sides, a round trip, the average of two, a pair).
      if (nd.value.is_equal(2)) lit.sources.push_back({Source::Kind::Constant, -1, 1, numeric(2)});
      if (percent && (nd.value.is_equal(100) || nd.value.is_equal(numeric(1, 100))))
        lit.sources.push_back({Source::Kind::Constant, -1, 0, nd.value});
      {
        // a unit factor only where the line names its unit
        const std::vector<numeric> line_units = unit_constants(word_set(lines[st.line], ""));
        for (const numeric& c : line_units)
          if (c.is_equal(nd.value)) {
            lit.sources.push_back({Source::Kind::Constant, -1, 0, c});
            break;
          }
      }
      // Nothing else: a unit factor named anywhere in the problem ("32 x (30/60)" for 32 MPH).
      if (lit.sources.empty())
        for (const numeric& c : units)
          if (c.is_equal(nd.value)) {
            lit.sources.push_back({Source::Kind::Constant, -1, 0, c});
            break;
          }
      nd.literal = static_cast<int>(g.literals.size());
      g.literals.push_back(std::move(lit));
    }
  }

  resolve_by_context(g, lines);

  // The answer and the steps it depends on.
  for (int s = static_cast<int>(g.steps.size()) - 1; s >= 0; --s)
    if (g.steps[s].result.is_equal(g.answer)) {
      g.answer_step = s;
      break;
    }
  if (g.answer_step < 0) {
    g.failure = kNoAnswerStep;
    return g;
  }
  std::vector<bool> in(g.steps.size(), false);
  in[g.answer_step] = true;
  for (int s = g.answer_step; s >= 0; --s) {
    if (!in[s]) continue;
    for (const Node& nd : g.steps[s].nodes) {
      if (nd.op != Node::Op::Lit) continue;
      const Literal& lit = g.literals[nd.literal];
      for (const Source& src : lit.sources)
        if (src.kind == Source::Kind::Step) in[src.index] = true;
      if (lit.sources.empty()) g.unlinked.push_back(fmt::format("step {}: {}", s + 1, nd.text));
    }
  }
  for (int s = 0; s < static_cast<int>(g.steps.size()); ++s)
    if (in[s]) g.cone.push_back(s);
  if (!g.unlinked.empty()) g.failure = kUnlinked;
  return g;
}

}  // namespace metamath::bootstrap::symbolic
