#pragma once
// Internal to src/model: helpers shared by the tokenizer sources (strict UTF-8 decoding, splitting
// text on added/special tokens).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace metamath::model::utf8 {

// Decodes one code point at s[i]. Returns its length in bytes (1..4) and sets cp; on an invalid
// sequence returns the length of the maximal invalid subpart (>= 1) and sets cp = -1.
// Rejects overlong forms, surrogates and values above U+10FFFF (as Unicode and PCRE2 do).
inline std::size_t decode(std::string_view s, std::size_t i, int32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  const std::size_t n = s.size();
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  int32_t v;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    v = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    v = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    v = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    cp = -1;
    return 1;
  }
  for (std::size_t k = 1; k < len; ++k) {
    if (i + k >= n) {
      cp = -1;
      return k;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      cp = -1;
      return k;
    }
    v = (v << 6) | (b & 0x3F);
  }
  cp = v;
  return len;
}

inline void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Byte offset of the first invalid sequence, or npos when s is valid UTF-8.
inline std::size_t first_invalid(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    int32_t cp;
    const std::size_t len = decode(s, i, cp);
    if (cp < 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Replaces every byte that is not part of a valid UTF-8 sequence with U+FFFD (one per byte, as
// SentencePiece's decoder does; utf8_lossy() writes one per maximal invalid subpart).
inline std::string lossy_per_byte(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    int32_t cp;
    const std::size_t len = decode(s, i, cp);
    if (cp >= 0) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace metamath::model::utf8

namespace metamath::model {

// Hash for unordered_map<std::string, T, StringHash, std::equal_to<>>: lookups by string_view
// without building a std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

// Splits text on added tokens (leftmost, then longest match), as Hugging Face's added vocabulary
// does before normalization and pre-tokenization.
class AddedTokenMatcher {
 public:
  struct Token {
    std::string content;
    int32_t id;
    bool special;
    bool lstrip = false, rstrip = false, single_word = false;
  };
  struct Segment {
    std::string_view text;  // the text of a plain segment
    int32_t id;             // >= 0: an added token; -1: plain text
  };

  void add(Token t) {
    if (t.content.empty()) return;
    const auto first = static_cast<unsigned char>(t.content[0]);
    by_first_[first].push_back(tokens_.size());
    tokens_.push_back(std::move(t));
    auto& v = by_first_[first];
    std::stable_sort(v.begin(), v.end(), [&](std::size_t a, std::size_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }
  bool empty() const { return tokens_.empty(); }
  const std::vector<Token>& tokens() const { return tokens_; }

  // The longest eligible token that starts at text[pos], or nullptr.
  const Token* match_at(std::string_view text, std::size_t pos, bool parse_special) const {
    const std::size_t n = text.size();
    for (std::size_t k : by_first_[static_cast<unsigned char>(text[pos])]) {
      const Token& t = tokens_[k];
      if (t.special && !parse_special) continue;
      if (text.compare(pos, t.content.size(), t.content) != 0) continue;
      if (t.single_word &&
          ((pos > 0 && is_word_byte(text[pos - 1])) ||
           (pos + t.content.size() < n && is_word_byte(text[pos + t.content.size()]))))
        continue;
      return &t;
    }
    return nullptr;
  }

  std::vector<Segment> split(std::string_view text, bool parse_special) const {
    std::vector<Segment> out;
    std::size_t pos = 0, seg_start = 0;
    const std::size_t n = text.size();
    while (pos < n) {
      const Token* hit = match_at(text, pos, parse_special);
      if (!hit) {
        ++pos;
        continue;
      }
      std::size_t start = pos, end = pos + hit->content.size();
      if (hit->lstrip)
        while (start > seg_start && is_space(text[start - 1])) --start;
      if (hit->rstrip)
        while (end < n && is_space(text[end])) ++end;
      if (start > seg_start) out.push_back({text.substr(seg_start, start - seg_start), -1});
      out.push_back({text.substr(start, end - start), hit->id});
      pos = seg_start = end;
    }
    if (seg_start < n) out.push_back({text.substr(seg_start), -1});
    return out;
  }

 private:
  static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  }
  static bool is_word_byte(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') ||
           (u >= 'A' && u <= 'Z') || u == '_';
  }
  std::vector<Token> tokens_;
  std::array<std::vector<std::size_t>, 256> by_first_;
};

// The pieces of a SentencePiece `tokenizer.model` as stored (piece, score, type: 1 normal,
// 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), for writers that copy the vocabulary
// into another format (model/gguf.cpp). Throws naming the file when it is not a model.
struct SentencePieceEntry {
  std::string piece;
  float score = 0;
  int type = 1;
};
struct SentencePieceModel {
  std::vector<SentencePieceEntry> pieces;
  bool add_dummy_prefix = true;
};
SentencePieceModel read_sentencepiece_model(const std::filesystem::path& file);

}  // namespace metamath::model
