// Oniguruma split patterns on PCRE2 with tokenizers' character classes (see tokenizer_regex.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/tokenizer_regex.h"

#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "model/tokenizer_internal.h"
#include "model/unicode_tables.h"

namespace metamath::model {
namespace {

using unicode::Range;

// Sorted, merged union of range lists.
std::vector<Range> normalized(std::vector<Range> r) {
  std::sort(r.begin(), r.end(), [](const Range& a, const Range& b) { return a.first < b.first; });
  std::vector<Range> out;
  for (const Range& x : r) {
    if (!out.empty() && x.first <= out.back().last + 1)
      out.back().last = std::max(out.back().last, x.last);
    else
      out.push_back(x);
  }
  return out;
}

// Class items for PCRE2 ("\x{41}-\x{5A}\x{61}"), surrogates left out (they never occur in UTF-8 and
// PCRE2 rejects them in a UTF pattern).
std::string class_items(const std::vector<Range>& ranges) {
  std::string out;
  auto item = [&](char32_t a, char32_t b) {
    out += fmt::format("\\x{{{:X}}}", static_cast<uint32_t>(a));
    if (b > a) out += fmt::format("-\\x{{{:X}}}", static_cast<uint32_t>(b));
  };
  // PCRE2 tries a class's ranges in the order written: widest first, so that letters of the big
  // blocks (CJK, Hangul, ...) are found after a few comparisons.
  std::vector<Range> order = ranges;
  std::stable_sort(order.begin(), order.end(), [](const Range& a, const Range& b) {
    return a.last - a.first > b.last - b.first;
  });
  for (const Range& r : order) {
    if (r.last < 0xD800 || r.first > 0xDFFF) {
      item(r.first, r.last);
      continue;
    }
    if (r.first < 0xD800) item(r.first, 0xD7FF);
    if (r.last > 0xDFFF) item(0xE000, r.last);
  }
  return out;
}

// ---- the stand-in alphabet ----------------------------------------------------------------------
//
// A pattern written in ASCII can only tell two non-ASCII characters apart by their classes (general
// category, White_Space, Word): every other property the translation keeps refers to ASCII. So the
// text is matched with each non-ASCII character replaced by a stand-in for its class of the same
// UTF-8 length (offsets stay valid), and every class escape becomes a short list of ASCII ranges
// and stand-ins; PCRE2's own Unicode tables are never consulted. Stand-ins have no case: U+0600 + k
// (2 bytes), U+E000 + k (3), U+F0000 + k (4) for class k. Two characters are kept as themselves:
// U+017F and U+212A, which (?i) matches to "s" and "k".
class Alphabet {
 public:
  static const Alphabet& get() {
    static const Alphabet a;
    return a;
  }
  std::size_t classes() const { return members_.size(); }
  // The class of a non-ASCII code point.
  uint16_t class_of(char32_t cp) const {
    auto it = std::upper_bound(starts_.begin(), starts_.end(), cp);
    return class_[static_cast<std::size_t>(it - starts_.begin()) - 1];
  }
  char32_t member(uint16_t k) const { return members_[k]; }  // some code point of class k
  static char32_t stand_in(uint16_t k, std::size_t utf8_len) {
    return utf8_len == 2 ? 0x600 + k : utf8_len == 3 ? 0xE000 + k : 0xF0000 + k;
  }
  static bool kept(char32_t cp) { return cp == 0x17F || cp == 0x212A; }

  // s with every non-ASCII character but the kept ones replaced by its stand-in (in buf when that
  // changes anything).
  std::string_view map(std::string_view s, std::string& buf) const {
    std::size_t i = 0;
    while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
    if (i == s.size()) return s;
    buf.assign(s);
    while (i < s.size()) {
      if (static_cast<unsigned char>(s[i]) < 0x80) {
        ++i;
        continue;
      }
      int32_t cp;
      const std::size_t len = utf8::decode(s, i, cp);
      if (cp >= 0 && !kept(static_cast<char32_t>(cp))) {
        // Same UTF-8 length: overwrite in place (lead byte's length bits stay as they are).
        char32_t c = stand_in(class_of(static_cast<char32_t>(cp)), len);
        for (std::size_t k = len - 1; k > 0; --k, c >>= 6)
          buf[i + k] = static_cast<char>(0x80 | (c & 0x3F));
        const unsigned char lead = len == 2 ? 0xC0 : len == 3 ? 0xE0 : 0xF0;
        buf[i] = static_cast<char>(lead | c);
      }
      i += len;
    }
    return buf;
  }

 private:
  Alphabet() {
    // Boundaries where the category, White_Space or Word may change.
    std::vector<char32_t> cuts = {0x80};
    for (const auto& r : unicode::general_category_runs()) cuts.push_back(r.first);
    for (auto ranges : {unicode::white_space_ranges(), unicode::word_ranges()})
      for (const auto& r : ranges) {
        cuts.push_back(r.first);
        cuts.push_back(r.last + 1);
      }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    std::map<std::tuple<int, bool, bool>, uint16_t> index;
    for (char32_t c : cuts) {
      if (c < 0x80 || c > 0x10FFFF) continue;
      const auto key = std::make_tuple(static_cast<int>(unicode::general_category(c)),
                                       unicode::is_white_space(c), is_word(c));
      auto [it, fresh] = index.try_emplace(key, static_cast<uint16_t>(members_.size()));
      if (fresh) members_.push_back(c);
      starts_.push_back(c);
      class_.push_back(it->second);
    }
    if (members_.size() > 0x200) fail("tokenizer: too many character classes for the stand-ins");
  }
  static bool is_word(char32_t c) {
    const auto w = unicode::word_ranges();
    auto it = std::upper_bound(w.begin(), w.end(), c,
                               [](char32_t x, const Range& r) { return x < r.first; });
    return it != w.begin() && c <= std::prev(it)->last;
  }
  std::vector<char32_t> starts_;  // segment starts (all >= 0x80), sorted
  std::vector<uint16_t> class_;   // class of each segment
  std::vector<char32_t> members_;
};

bool contains(const std::vector<Range>& sorted, char32_t cp) {
  auto it = std::upper_bound(sorted.begin(), sorted.end(), cp,
                             [](char32_t x, const Range& r) { return x < r.first; });
  return it != sorted.begin() && cp <= std::prev(it)->last;
}

// Class items over the stand-in alphabet for a set of code points (sorted, merged): its ASCII part,
// the stand-ins of the classes inside it, and the kept characters inside it.
std::string alphabet_items(const std::vector<Range>& ranges) {
  std::vector<Range> items;
  for (const Range& r : ranges)
    if (r.first < 0x80) items.push_back({r.first, std::min<char32_t>(r.last, 0x7F)});
  const Alphabet& a = Alphabet::get();
  for (uint16_t k = 0; k < a.classes(); ++k)
    if (contains(ranges, a.member(k)))
      for (std::size_t len = 2; len <= 4; ++len)
        items.push_back({Alphabet::stand_in(k, len), Alphabet::stand_in(k, len)});
  for (char32_t c : {char32_t{0x17F}, char32_t{0x212A}})
    if (contains(ranges, c)) items.push_back({c, c});
  return class_items(normalized(std::move(items)));
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// The ranges a class escape stands for (\p{..}, \s, \d, \w, \h and their negations), or nullopt
// when the escape at pattern[i] ('\\') is not one (or names a property left to PCRE2). Sets `len`
// to the escape's length.
std::optional<std::vector<Range>> class_escape(std::string_view p, std::size_t i,
                                               std::size_t& len) {
  const char e = p[i + 1];
  len = 2;
  auto positive = [&](std::vector<Range> r, bool negate) {
    r = normalized(std::move(r));
    return negate ? unicode::complement(r) : r;
  };
  auto from = [](std::span<const Range> s) { return std::vector<Range>(s.begin(), s.end()); };
  switch (e) {
    case 's':
    case 'S':
      return positive(from(unicode::white_space_ranges()), e == 'S');
    case 'w':
    case 'W':
      return positive(from(unicode::word_ranges()), e == 'W');
    case 'd':
    case 'D':
      return positive(*unicode::property_ranges("Nd"), e == 'D');
    case 'h':  // Oniguruma: a hexadecimal digit (PCRE2: horizontal space)
    case 'H':
      return positive({{'0', '9'}, {'A', 'F'}, {'a', 'f'}}, e == 'H');
    case 'p':
    case 'P': {
      if (i + 2 >= p.size() || p[i + 2] != '{') return std::nullopt;  // \pL: left to PCRE2
      const std::size_t close = p.find('}', i + 3);
      if (close == std::string_view::npos) fail("regex /{}/: \\{} without a closing brace", p, e);
      std::string_view name = p.substr(i + 3, close - i - 3);
      bool negate = e == 'P';
      if (!name.empty() && name[0] == '^') {
        negate = !negate;
        name.remove_prefix(1);
      }
      auto r = unicode::property_ranges(name);
      if (!r) return std::nullopt;
      len = close + 1 - i;
      return positive(std::move(*r), negate);
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

namespace {

// The translation, over the stand-in alphabet or over all of Unicode. Over the alphabet it returns
// nullopt for a pattern that names a non-ASCII character or a property other than the classes
// (scripts, \X, \R, POSIX brackets, ...).
std::optional<std::string> translate(std::string_view p, bool stand_ins) {
  auto items = [&](const std::vector<Range>& r) {
    return stand_ins ? alphabet_items(r) : class_items(r);
  };
  auto word_class = [&] {
    return "[" +
           items(std::vector<Range>(unicode::word_ranges().begin(), unicode::word_ranges().end())) +
           "]";
  };
  std::string out;
  out.reserve(p.size() * 4);
  bool in_class = false;
  std::vector<Range> class_ranges;  // what the current class's escapes add
  std::size_t class_body = 0;       // where the current class's items start in `out`
  bool class_negated = false;
  for (std::size_t i = 0; i < p.size();) {
    const char c = p[i];
    if (stand_ins && static_cast<unsigned char>(c) >= 0x80) return std::nullopt;
    if (c == '\\' && i + 1 < p.size()) {
      std::size_t len;
      if (auto r = class_escape(p, i, len)) {
        if (in_class)
          class_ranges.insert(class_ranges.end(), r->begin(), r->end());
        else
          out += "[" + items(*r) + "]";
        i += len;
        continue;
      }
      const char e = p[i + 1];
      if (e == 'u' && i + 5 < p.size() && is_hex(p[i + 2]) && is_hex(p[i + 3]) &&
          is_hex(p[i + 4]) && is_hex(p[i + 5])) {  // \uHHHH
        if (stand_ins && std::stoul(std::string(p.substr(i + 2, 4)), nullptr, 16) >= 0x80)
          return std::nullopt;
        out += "\\x{" + std::string(p.substr(i + 2, 4)) + "}";
        i += 6;
        continue;
      }
      if (e == 'x' && stand_ins) {  // \xHH or \x{H...}: only ASCII over the alphabet
        const bool braced = i + 2 < p.size() && p[i + 2] == '{';
        std::size_t j = i + (braced ? 3 : 2);
        std::string hex;
        while (j < p.size() && is_hex(p[j]) && (braced || hex.size() < 2)) hex += p[j++];
        if (!hex.empty() && std::stoul(hex, nullptr, 16) >= 0x80) return std::nullopt;
      }
      if (e == 'v') {  // Oniguruma: the vertical tab (PCRE2: any vertical space)
        out += "\\x{0B}";
        i += 2;
        continue;
      }
      if ((e == 'b' || e == 'B') && !in_class) {  // word boundaries with Oniguruma's \w
        const std::string w = word_class();
        out += e == 'b' ? "(?:(?<=" + w + ")(?!" + w + ")|(?<!" + w + ")(?=" + w + "))"
                        : "(?:(?<=" + w + ")(?=" + w + ")|(?<!" + w + ")(?!" + w + "))";
        i += 2;
        continue;
      }
      // Any other escape means the same in both (\x{..}, \n, \., \(, \A, \z, ...): copy the
      // backslash and the character after it (whole, if it is multi-byte). Over the alphabet only
      // the ones that cannot depend on Unicode data.
      if (stand_ins && std::isalpha(static_cast<unsigned char>(e)) &&
          std::string_view("nrtfaeAzZGkgx").find(e) == std::string_view::npos)
        return std::nullopt;
      int32_t cp;
      const std::size_t n = 1 + utf8::decode(p, i + 1, cp);
      out.append(p.substr(i, n));
      i += n;
      continue;
    }
    if (in_class) {
      if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:]
        if (stand_ins) return std::nullopt;
        const std::size_t close = p.find(":]", i + 2);
        if (close == std::string_view::npos) fail("regex /{}/: unterminated [: in a class", p);
        out.append(p.substr(i, close + 2 - i));
        i = close + 2;
        continue;
      }
      if (c == '[') fail("regex /{}/: nested character classes are not supported (byte {})", p, i);
      if (c == '&' && i + 1 < p.size() && p[i + 1] == '&')
        fail("regex /{}/: class intersection && is not supported (byte {})", p, i);
      if (c == ']') {
        const bool empty = out.size() == class_body && class_ranges.empty();
        out += items(normalized(std::move(class_ranges)));
        class_ranges.clear();
        in_class = false;
        if (empty) {  // "[^]" cannot be written: "[]" matches nothing, "[^]" anything
          out.resize(class_body - (class_negated ? 2 : 1));
          out += class_negated ? "(?s:.)" : "(?!)";
        } else {
          out += ']';
        }
        ++i;
        continue;
      }
    } else if (c == '[') {
      in_class = true;
      out += '[';
      ++i;
      class_negated = i < p.size() && p[i] == '^';
      if (class_negated) {
        out += '^';
        ++i;
      }
      class_body = out.size();
      if (i < p.size() && p[i] == ']') {  // a leading ']' is a literal
        out += "\\]";
        ++i;
      }
      continue;
    } else if (c == '(' && p.substr(i, 2) == "(?") {
      // Inline options: Oniguruma's (?m) is PCRE2's (?s) (dot matches newline).
      std::size_t j = i + 2;
      while (j < p.size() && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-')) ++j;
      if (j > i + 2 && j < p.size() && (p[j] == ':' || p[j] == ')')) {
        std::string opts(p.substr(i + 2, j - i - 2));
        std::replace(opts.begin(), opts.end(), 'm', 's');
        out += "(?" + opts;
        i = j;
        continue;
      }
    }
    int32_t cp;
    const std::size_t n = utf8::decode(p, i, cp);
    out.append(p.substr(i, n));
    i += n;
  }
  if (in_class) fail("regex /{}/: unterminated character class", p);
  return out;
}

}  // namespace

TranslatedPattern oniguruma_to_pcre2(std::string_view pattern) {
  if (auto t = translate(pattern, /*stand_ins=*/true)) return {std::move(*t), true};
  return {*translate(pattern, /*stand_ins=*/false), false};
}

SplitRegex::SplitRegex(const std::string& oniguruma_pattern) {
  const TranslatedPattern t = oniguruma_to_pcre2(oniguruma_pattern);
  const std::string& pattern = t.pcre2;
  stand_ins_ = t.stand_ins;
  pcre2_compile_context* ctx = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(ctx, PCRE2_NEWLINE_LF);
  int err = 0;
  PCRE2_SIZE off = 0;
  auto* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &off, ctx);
  pcre2_compile_context_free(ctx);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("tokenizer.json: regex /{}/ does not compile with PCRE2: {}", oniguruma_pattern,
         reinterpret_cast<const char*>(msg));
  }
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

SplitRegex::~SplitRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool SplitRegex::search(std::string_view s, std::size_t from, std::size_t& a,
                        std::size_t& b) const {
  auto* code = static_cast<pcre2_code*>(code_);
  // One match-data block per thread (one pair of offsets is all a split needs).
  thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  const int rc =
      jit_ ? pcre2_jit_match(code, subject, s.size(), from, 0, md.get(), nullptr)
           : pcre2_match(code, subject, s.size(), from, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    fail("tokenizer: regex match failed: {}", reinterpret_cast<const char*>(msg));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
  a = ov[0];
  b = ov[1];
  return true;
}

std::string_view SplitRegex::subject(std::string_view s, std::string& buf) const {
  return stand_ins_ ? Alphabet::get().map(s, buf) : s;
}

}  // namespace metamath::model
