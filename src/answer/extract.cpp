#include "answer/extract.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/text.h"

namespace metamath::answer {

Style parse_style(std::string_view name) {
  std::string n = text::to_lower(name);
  if (n == "gsm8k" || n == "gsm" || n == "gsm8k_backward" || n == "svamp" || n == "asdiv")
    return Style::Gsm8k;
  if (n == "math" || n == "math500") return Style::Math;
  fail("unknown answer style \"{}\" (expected gsm8k or math)", name);
}

const char* method_name(Method m) {
  switch (m) {
    case Method::None:
      return "none";
    case Method::Hashes:
      return "hashes";
    case Method::AnswerIs:
      return "answer_is";
    case Method::FinalAnswer:
      return "final_answer";
    case Method::Boxed:
      return "boxed";
    case Method::ValueOfX:
      return "value_of_x";
    case Method::MathSpan:
      return "math_span";
    case Method::LastNumber:
      return "last_number";
    case Method::Bare:
      return "bare";
  }
  return "none";
}

namespace {

bool is_num_char(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && text::to_lower(s.substr(s.size() - suffix.size())) == suffix;
}

// ---- Cleaning the answer after a marker ----

// Drops what follows an answer on its line but is not part of it: spaces, final periods, and the
// minerva_math sign-off " I hope it is correct." ("18." -> "18").
std::string_view drop_sign_off(std::string_view s) {
  for (;;) {
    s = text::trim(s);
    std::size_t before = s.size();
    for (std::string_view sign_off : {"i hope it is correct.", "i hope it is correct"})
      if (ends_with_ci(s, sign_off)) s.remove_suffix(sign_off.size());
    while (!s.empty() && (s.back() == '.' || s.back() == ' ')) s.remove_suffix(1);
    if (s.size() == before) return s;
  }
}

struct Delimiter {
  std::string_view open, close;
};
// Longest first, so "$$" is tried before "$".
constexpr Delimiter kDelimiters[] = {{"$$", "$$"}, {"\\[", "\\]"}, {"\\(", "\\)"}, {"$", "$"}};

// Position of `close` in t at or after `from`, skipping backslash escapes ("\$", "\\"); npos if
// none.
std::size_t find_closer(std::string_view t, std::size_t from, std::string_view close) {
  std::size_t i = from;
  while (i < t.size()) {
    if (t.substr(i, close.size()) == close) return i;
    i += t[i] == '\\' ? 2 : 1;
  }
  return std::string_view::npos;
}

// "$X$", "$$X$$", "\(X\)", "\[X\]" as the whole of s -> X (a lone "$" pair is checked by its ends
// only, as MetaMath answers always were).
std::string_view strip_whole_delimiters(std::string_view s) {
  for (const Delimiter& d : kDelimiters) {
    if (s.size() >= d.open.size() + d.close.size() && text::starts_with(s, d.open) &&
        text::ends_with(s, d.close))
      return text::trim(s.substr(d.open.size(), s.size() - d.open.size() - d.close.size()));
  }
  return s;
}

std::optional<std::string> boxed_answer(std::string_view t, bool combine);

std::string unbox(std::string_view s, bool combine) {
  if (auto boxed = boxed_answer(s, combine)) return *boxed;
  return std::string(s);
}

// A tail that opens with a math delimiter whose closer comes before anything but punctuation and a
// sign-off: the span's content, even across lines ("$$\begin{pmatrix}...\n...\end{pmatrix}$$.").
std::optional<std::string> delimited_answer(std::string_view s, bool stop_at_sentence,
                                            bool combine) {
  for (const Delimiter& d : kDelimiters) {
    if (!text::starts_with(s, d.open)) continue;
    std::size_t close = find_closer(s, d.open.size(), d.close);
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view rest = s.substr(close + d.close.size());
    rest = rest.substr(0, rest.find('\n'));
    if (stop_at_sentence) rest = rest.substr(0, rest.find(". "));
    rest = drop_sign_off(rest);
    if (!rest.empty() && rest != ",") return std::nullopt;
    return unbox(text::trim(s.substr(d.open.size(), close - d.open.size())), combine);
  }
  return std::nullopt;
}

// The end of the line that `s` starts on, where a line break inside an open brace group does not
// count ("90\text{ square\nunits}" is one answer); with unbalanced braces, the first line break.
std::size_t line_end(std::string_view s) {
  int depth = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      ++i;  // an escaped character: "\{" opens nothing
    } else if (s[i] == '{') {
      ++depth;
    } else if (s[i] == '}') {
      if (--depth < 0) return s.find('\n');
    } else if (s[i] == '\n' && depth == 0) {
      return i;
    }
  }
  return depth == 0 ? std::string_view::npos : s.find('\n');
}

// Cleans the tail of a marker: up to the end of the line (or of a math span that opens it),
// without a final period, sign-off or math delimiters; a \boxed{} inside is unwrapped.
std::string clean_tail(std::string_view s, bool stop_at_sentence, bool combine) {
  s = text::trim(s);
  if (auto d = delimited_answer(s, stop_at_sentence, combine)) return *d;
  std::size_t nl = line_end(s);
  if (nl != std::string_view::npos) s = s.substr(0, nl);
  if (stop_at_sentence) {
    std::size_t dot = s.find(". ");
    if (dot != std::string_view::npos) s = s.substr(0, dot);
  }
  s = strip_whole_delimiters(drop_sign_off(s));
  return unbox(text::trim(s), combine);
}

// What every finder looks at. `lenient` is extract()'s allow_last_number: heuristics on (math
// spans, last number, and joining adjacent boxed answers into a list).
struct Input {
  std::string_view text;
  std::string lower;
  bool lenient;
};

// ---- Markers ----

struct Marker {
  std::string_view needle;  // lower case
  Method method;
};

// The last occurrence of any needle (case-insensitive): the text after it and its method.
// On a tie (same start) the earlier-listed needle wins, so list longer needles first.
std::optional<std::pair<std::string_view, Method>> last_marker(std::string_view t,
                                                               const std::string& lower,
                                                               std::initializer_list<Marker> ms) {
  std::size_t best = std::string::npos;
  const Marker* found = nullptr;
  for (const Marker& m : ms) {
    std::size_t p = lower.rfind(m.needle);
    if (p != std::string::npos && (best == std::string::npos || p > best)) {
      best = p;
      found = &m;
    }
  }
  if (found == nullptr) return std::nullopt;
  return std::pair{t.substr(best + found->needle.size()), found->method};
}

std::optional<Extracted> find_answer_is(const Input& in) {
  auto m = last_marker(in.text, in.lower,
                       {{"the answer is:", Method::AnswerIs},
                        {"the answer is", Method::AnswerIs},
                        {"the final answer is:", Method::FinalAnswer},
                        {"the final answer is", Method::FinalAnswer},
                        {"final answer:**", Method::FinalAnswer},
                        {"final answer**:", Method::FinalAnswer},
                        {"final answer:", Method::FinalAnswer}});
  if (!m) return std::nullopt;
  std::string a = clean_tail(m->first, false, in.lenient);
  if (a.empty()) return std::nullopt;
  return Extracted{a, m->second};
}

std::optional<Extracted> find_value_of_x(const Input& in) {
  auto m = last_marker(in.text, in.lower,
                       {{"value of x is", Method::ValueOfX},
                        {"variable x is", Method::ValueOfX},
                        {"value of unknown variable x is", Method::ValueOfX},
                        {"value of the unknown variable x is", Method::ValueOfX},
                        // the unknown in math mode, as MATH backward solutions write it
                        {"value of $x$ is", Method::ValueOfX},
                        {"variable $x$ is", Method::ValueOfX},
                        {"value of \\(x\\) is", Method::ValueOfX}});
  if (!m) return std::nullopt;
  std::string_view tail = text::trim(m->first);
  if (!tail.empty() && tail.front() == ':') tail.remove_prefix(1);
  std::string a = clean_tail(tail, true, in.lenient);
  if (a.empty()) return std::nullopt;
  return Extracted{a, Method::ValueOfX};
}

std::optional<Extracted> find_hashes(const Input& in) {
  auto h = text::after_hashes(in.text);
  if (!h) return std::nullopt;
  std::string a = clean_tail(*h, false, in.lenient);
  if (a.empty()) return std::nullopt;
  return Extracted{a, Method::Hashes};
}

// ---- \boxed{} ----

struct Box {
  std::size_t begin, end;  // the whole "\boxed{...}"
  std::string_view content;
};

// Every brace-matched \boxed{...} and \fbox{...}, in text order.
std::vector<Box> boxes_in(std::string_view t) {
  std::vector<Box> out;
  for (std::size_t i = t.find('\\'); i != std::string_view::npos; i = t.find('\\', i + 1)) {
    for (std::string_view name : {"\\boxed", "\\fbox"}) {
      std::size_t open = i + name.size();
      if (t.substr(i, name.size()) != name || open >= t.size() || t[open] != '{') continue;
      std::size_t close = text::match_brace(t, open);
      if (close != std::string_view::npos)
        out.push_back({i, close + 1, t.substr(open + 1, close - open - 1)});
    }
  }
  return out;
}

// Only whitespace, commas, '$' and the word "and" between two boxed answers.
bool is_list_separator(std::string_view gap) {
  for (std::size_t i = 0; i < gap.size();) {
    if (is_space(gap[i]) || gap[i] == ',' || gap[i] == '$') {
      ++i;
    } else if (text::to_lower(gap.substr(i, 3)) == "and" &&
               (i + 3 == gap.size() || !is_alpha(gap[i + 3]))) {
      i += 3;
    } else {
      return false;
    }
  }
  return true;
}

// The last \boxed{} (as text::last_boxed finds it); with `combine`, joined with the boxed answers
// right before it that are separated only by list separators: "\boxed{1} and \boxed{2}" -> "1, 2".
// Without it, the last box alone: the MATH gold rule, which strict extraction must match.
std::optional<std::string> boxed_answer(std::string_view t, bool combine) {
  std::optional<std::string> last = text::last_boxed(t);
  if (!last) return std::nullopt;
  if (!combine) return std::string(text::trim(*last));
  std::vector<Box> boxes = boxes_in(t);
  // Join only when text::last_boxed's pick (the last "\\boxed"/"\\fbox", whatever its form) is the
  // last brace-matched box; npos + 1 == 0 makes a missing name lose the max.
  std::size_t last_pos = std::max(t.rfind("\\boxed") + 1, t.rfind("\\fbox") + 1) - 1;
  if (boxes.empty() || boxes.back().begin != last_pos) return std::string(text::trim(*last));
  std::size_t first = boxes.size() - 1;
  while (
      first > 0 && boxes[first - 1].end <= boxes[first].begin &&
      is_list_separator(t.substr(boxes[first - 1].end, boxes[first].begin - boxes[first - 1].end)))
    --first;
  std::string out;
  for (std::size_t k = first; k < boxes.size(); ++k) {
    std::string_view c = text::trim(boxes[k].content);
    if (c.empty()) continue;
    if (!out.empty()) out += ", ";
    out += c;
  }
  return out;
}

std::optional<Extracted> find_boxed(const Input& in) {
  auto b = boxed_answer(in.text, in.lenient);
  if (!b || b->empty()) return std::nullopt;
  return Extracted{*b, Method::Boxed};
}

// ---- Math spans (Style::Math fallback) ----

struct Span {
  std::size_t begin, end;  // the whole span with its delimiters
  std::string content;
};

constexpr std::string_view kMatrixEnvs[] = {"pmatrix", "bmatrix", "Bmatrix",     "vmatrix",
                                            "Vmatrix", "matrix",  "smallmatrix", "array"};

// At t[i] == '\\': a "\begin{<matrix env>}...\end{<env>}" starting there, as its end (npos if the
// env is never closed: it runs to the end of the text) — or nullopt if none starts there.
std::optional<std::size_t> matrix_end_at(std::string_view t, std::size_t i) {
  constexpr std::string_view kBegin = "\\begin{";
  if (t.substr(i, kBegin.size()) != kBegin) return std::nullopt;
  std::size_t name_end = t.find('}', i + kBegin.size());
  if (name_end == std::string_view::npos) return std::nullopt;
  std::string_view name = t.substr(i + kBegin.size(), name_end - i - kBegin.size());
  if (std::find(std::begin(kMatrixEnvs), std::end(kMatrixEnvs), name) == std::end(kMatrixEnvs))
    return std::nullopt;
  std::string end_tag = "\\end{" + std::string(name) + "}";
  std::size_t e = t.find(end_tag, name_end);
  return e == std::string_view::npos ? e : e + end_tag.size();
}

// "$5 and $10": a '$' pair whose content starts with a digit and has a plain word outside braces
// is two prices, not a formula. ("$5 \text{ cm}$" and "$3x + 2$" are formulas.)
bool looks_like_prices(std::string_view content) {
  if (content.empty() || !is_num_char(content.front())) return false;
  int depth = 0;
  for (std::size_t i = 0; i < content.size(); ++i) {
    char c = content[i];
    if (c == '{') ++depth;
    if (c == '}') --depth;
    if (depth == 0 && is_space(c) && i + 2 < content.size() && is_alpha(content[i + 1]) &&
        is_alpha(content[i + 2]))
      return true;
  }
  return false;
}

// A math span opening at t[i], if any.
std::optional<Span> span_at(std::string_view t, std::size_t i) {
  if (auto end = matrix_end_at(t, i)) {
    if (*end == std::string_view::npos) return std::nullopt;  // cut off: not an answer
    return Span{i, *end, std::string(t.substr(i, *end - i))};
  }
  for (const Delimiter& d : kDelimiters) {
    if (t.substr(i, d.open.size()) != d.open) continue;
    std::size_t from = i + d.open.size();
    std::size_t close = find_closer(t, from, d.close);
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view content = t.substr(from, close - from);
    std::size_t end = close + d.close.size();
    if (d.open == "$" && (content.find("\n\n") != std::string_view::npos ||
                          (end < t.size() && is_num_char(t[end])) || looks_like_prices(content)))
      return std::nullopt;
    return Span{i, end, std::string(content)};
  }
  return std::nullopt;
}

// The last non-empty math span, scanning left to right so that delimiters pair up.
std::optional<Span> last_math_span(std::string_view t) {
  std::optional<Span> last;
  std::size_t i = 0;
  while (i < t.size()) {
    if (t[i] == '$' || t[i] == '\\') {
      if (auto s = span_at(t, i)) {
        i = s->end;
        std::string_view c = text::trim(s->content);
        while (!c.empty() && (c.back() == '.' || c.back() == ','))
          c = text::trim(c.substr(0, c.size() - 1));
        if (!c.empty()) last = Span{s->begin, s->end, std::string(c)};
        continue;
      }
      i += t[i] == '\\' ? 2 : 1;
    } else {
      ++i;
    }
  }
  return last;
}

// ---- Numbers ----

// s[i] is a comma followed by exactly three digits ("3,000"), i.e. a thousands separator.
bool is_thousands_comma(std::string_view s, std::size_t i) {
  return s[i] == ',' && i + 3 < s.size() && is_num_char(s[i + 1]) && is_num_char(s[i + 2]) &&
         is_num_char(s[i + 3]) && (i + 4 >= s.size() || !is_num_char(s[i + 4]));
}

// The text with every matrix environment blanked out, so no number is taken from inside one.
std::string without_matrices(std::string_view t) {
  std::string out(t);
  for (std::size_t i = t.find('\\'); i != std::string_view::npos; i = t.find('\\', i + 1)) {
    auto end = matrix_end_at(t, i);
    if (!end) continue;
    std::size_t e = *end == std::string_view::npos ? t.size() : *end;
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(i),
              out.begin() + static_cast<std::ptrdiff_t>(e), ' ');
    if (e >= t.size()) break;
    i = e - 1;
  }
  return out;
}

// The last number in the text: optional minus, digits with thousands commas, decimals, or a/b.
std::string last_number(std::string_view s) {
  std::string best;
  std::size_t i = 0;
  while (i < s.size()) {
    if (!is_num_char(s[i])) {
      ++i;
      continue;
    }
    std::size_t b = i;
    bool neg =
        b > 0 && s[b - 1] == '-' && (b < 2 || !std::isalnum(static_cast<unsigned char>(s[b - 2])));
    std::string num;
    while (i < s.size() && (is_num_char(s[i]) || is_thousands_comma(s, i))) {
      if (s[i] != ',') num.push_back(s[i]);
      ++i;
    }
    if (i + 1 < s.size() && s[i] == '.' && is_num_char(s[i + 1])) {
      num.push_back('.');
      ++i;
      while (i < s.size() && is_num_char(s[i])) num.push_back(s[i++]);
    }
    if (i + 1 < s.size() && s[i] == '/' && is_num_char(s[i + 1])) {
      num.push_back('/');
      ++i;
      while (i < s.size() && is_num_char(s[i])) num.push_back(s[i++]);
    }
    best = (neg ? "-" : "") + num;
  }
  return best;
}

int count_numbers(std::string_view s) {
  int n = 0;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (is_num_char(s[i]) &&
        (i == 0 || !(is_num_char(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == ',')))
      ++n;
  return n;
}

// A short single-line text is itself the answer ("42", "$18", "\frac{1}{2}", "x = 3").
std::optional<Extracted> find_bare(std::string_view t, Style style) {
  if (t.find('\n') != std::string_view::npos || t.size() > 80) return std::nullopt;
  if (style != Style::Math && count_numbers(t) > 1) return std::nullopt;
  std::string a = clean_tail(t, false, /*combine=*/false);
  if (a.empty()) return std::nullopt;
  return Extracted{a, Method::Bare};
}

using Finder = std::optional<Extracted> (*)(const Input& in);
// Explicit markers, strongest first, per style (see extract.h).
constexpr Finder kGsm8kMarkers[] = {find_answer_is, find_hashes, find_boxed, find_value_of_x};
constexpr Finder kMathMarkers[] = {find_answer_is, find_boxed, find_value_of_x, find_hashes};

}  // namespace

Extracted extract(std::string_view input, Style style, bool allow_last_number) {
  std::string_view t = text::trim(input);
  if (t.empty()) return {};
  const Input in{t, text::to_lower(t), allow_last_number};

  for (Finder find : style == Style::Math ? std::span<const Finder>(kMathMarkers)
                                          : std::span<const Finder>(kGsm8kMarkers))
    if (auto e = find(in)) return *e;

  std::optional<Span> span;
  if (style == Style::Math && allow_last_number) span = last_math_span(t);
  bool span_is_whole_text = span && span->begin == 0 && span->end == t.size();
  if (span && !span_is_whole_text) return {span->content, Method::MathSpan};
  if (auto e = find_bare(t, style)) return *e;
  if (span) return {span->content, Method::MathSpan};
  if (allow_last_number) {
    std::string n = last_number(without_matrices(t));
    if (!n.empty()) return {n, Method::LastNumber};
  }
  return {};
}

Extracted extract_gold(std::string_view solution, Style style) {
  std::string_view t = text::trim(solution);
  if (style == Style::Gsm8k) {
    if (auto h = text::after_hashes(t)) return {std::string(text::trim(*h)), Method::Hashes};
  } else {
    if (auto boxed = text::last_boxed(t)) return {std::string(text::trim(*boxed)), Method::Boxed};
  }
  Extracted e = extract(t, style, /*allow_last_number=*/false);
  if (e.found()) return e;
  // A gold is often the bare answer itself, which a prediction's bare-answer rule may refuse: a
  // GSM-style gold with several numbers ("3:30 p.m.", "5:6", "5/2", "-(1/3)", "11:55 p.m. on 24
  // December 2014"), or a line break inside it (MATH's "90\text{ square\nunits}"). A gold has no
  // other candidate, so the whole short text is the answer (one line in GSM8K style; in MATH style
  // line breaks read as spaces).
  if (style == Style::Gsm8k && t.find('\n') != std::string_view::npos) return e;
  std::string flat;
  for (char c : t) flat += (c == '\n' || c == '\r') ? ' ' : c;
  if (flat.size() > (style == Style::Math ? 200u : 80u)) return e;
  std::string a = clean_tail(flat, false, /*combine=*/false);
  if (a.empty()) return e;
  return {a, Method::Bare};
}

}  // namespace metamath::answer
