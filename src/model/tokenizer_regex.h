#pragma once
// The split regexes of tokenizer.json (Split and ByteLevel pre-tokenizers), matched as the Hugging
// Face `tokenizers` library matches them.
//
// tokenizers compiles these patterns with Oniguruma; here they run on PCRE2 (JIT), whose syntax
// agrees for what tokenizer files use (classes, \p{..}, (?i:..), lookahead, counted repeats), but
// whose Unicode tables (Debian 12: Unicode 14.0), \s (it counts U+180E) and \w do not. So the
// pattern is first rewritten: every character-class escape whose meaning depends on Unicode data
// (\p{..}, \P{..}, \s, \S, \d, \D, \w, \W, and \b, \B through \w) becomes an explicit class
// built from unicode_tables.h (Unicode 16.0, as tokenizers' Oniguruma), and the Oniguruma-only
// escapes and options get their PCRE2 spelling (\h = hex digit, \v = U+000B, \uHHHH, (?m) = dot
// matches newline; ^ and $ always match at line ends). Property names unicode_tables.h does not
// know (scripts, binary properties) are left to PCRE2. Nested classes and class intersection (&&)
// are rejected. Matches are enumerated as the onig crate's find_iter does (empty ones included).
// Not reproduced: Oniguruma's multi-character case folding ((?i)ss matching "ß"), which no
// tokenizer pattern relies on.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace metamath::model {

// The PCRE2 pattern (UTF, UCP, multiline, LF newline) that matches what Oniguruma matches with
// `pattern`. When the pattern names no non-ASCII character and no property beyond the classes of
// unicode_tables.h (the usual case), it is written for text whose non-ASCII characters are
// replaced by stand-ins, one per class (stand_ins: see tokenizer_regex.cpp): its character
// classes are then a few dozen items instead of hundreds of ranges, which PCRE2 would try one by
// one. Throws metamath::Error for a construct it cannot translate.
struct TranslatedPattern {
  std::string pcre2;
  bool stand_ins;
};
TranslatedPattern oniguruma_to_pcre2(std::string_view pattern);

// A compiled split regex; immutable and safe to share between threads.
class SplitRegex {
 public:
  explicit SplitRegex(const std::string& oniguruma_pattern);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // Calls f(start, end) for every match in s (valid UTF-8), left to right, as tokenizers' Split
  // sees them (the onig crate's find_iter): empty matches included, except one right where the
  // previous match ended, in which case the search moves on by one character.
  template <typename F>
  void for_each_match(std::string_view text, F&& f) const {
    std::string buf;
    const std::string_view s = subject(text, buf);
    std::size_t from = 0, a = 0, b = 0;
    std::optional<std::size_t> last_end;
    while (from <= s.size() && search(s, from, a, b)) {
      if (a == b && last_end == b) {
        from += from < s.size() ? utf8_length(s[from]) : 1;
        continue;
      }
      f(a, b);
      from = last_end.emplace(b);
    }
  }

 private:
  // The text the compiled pattern runs on: `text`, or its stand-in form (in buf).
  std::string_view subject(std::string_view text, std::string& buf) const;
  // The leftmost match at or after `from`: sets [a, b) and returns true; false when there is none.
  bool search(std::string_view s, std::size_t from, std::size_t& a, std::size_t& b) const;
  static std::size_t utf8_length(char lead) {
    const auto c = static_cast<unsigned char>(lead);
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  }

  void* code_ = nullptr;  // pcre2_code*
  bool jit_ = false;
  bool stand_ins_ = false;
};

}  // namespace metamath::model
