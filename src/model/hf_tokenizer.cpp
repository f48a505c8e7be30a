// Hugging Face `tokenizer.json` with a BPE model, written here because Debian packages no Hugging
// Face tokenizers library for C++.
//
// Pipeline (as in the tokenizers library): split out added tokens -> normalizer -> pre-tokenizer
// -> BPE on each piece -> ids. Supported components:
//   normalizer:    NFC (tokenizers' own, Unicode 9.0: see tokenizers_nfc), Prepend, Replace
//                  (string pattern), Sequence
//   pre_tokenizer: Split (regex, see tokenizer_regex.h, or string; all behaviours, invert),
//                  ByteLevel (with or without its GPT-2 regex, add_prefix_space on every piece),
//                  Metaspace (prepend_scheme always/first/never, split), Digits (any numeric
//                  character, as Rust's char::is_numeric), Sequence
//   model:         BPE (merges by rank, ignore_merges, byte_fallback, unk/fuse_unk)
//   decoder:       ByteLevel; Replace/ByteFallback/Fuse/Strip sequences; Metaspace
// Anything else is rejected at load time with an error naming the component. What each step does
// with any Unicode text is checked id for id against the Rust tokenizers library (tests).
#include <cctype>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <shared_mutex>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/text.h"
#include "model/tokenizer.h"
#include "model/tokenizer_internal.h"
#include "model/tokenizer_regex.h"
#include "model/unicode_tables.h"

namespace metamath::model {
namespace {

using json = nlohmann::json;

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

// GPT-2's byte <-> printable character table used by the ByteLevel pre-tokenizer and decoder.
struct ByteLevelTable {
  std::array<std::string, 256> to_char;          // byte -> UTF-8 of its character
  std::unordered_map<int32_t, uint8_t> to_byte;  // code point -> byte
  ByteLevelTable() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const char32_t cp =
          printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      utf8::append(to_char[static_cast<std::size_t>(b)], cp);
      to_byte[static_cast<int32_t>(cp)] = static_cast<uint8_t>(b);
    }
  }
};
const ByteLevelTable& byte_level() {
  static const ByteLevelTable t;
  return t;
}

// ---- normalizers ---------------------------------------------------------------------------

struct NormStep {
  enum Kind { Nfc, Prepend, Replace } kind;
  std::string a, b;
};

void parse_normalizer(const json& n, std::vector<NormStep>& out) {
  if (n.is_null()) return;
  const std::string type = n.value("type", "");
  if (type == "Sequence") {
    for (const auto& s : n.at("normalizers")) parse_normalizer(s, out);
  } else if (type == "NFC") {
    out.push_back({NormStep::Nfc, "", ""});
  } else if (type == "Prepend") {
    out.push_back({NormStep::Prepend, n.at("prepend").get<std::string>(), ""});
  } else if (type == "Replace") {
    const auto& pat = n.at("pattern");
    if (!pat.contains("String"))
      fail("tokenizer.json: normalizer Replace with a Regex pattern is not supported");
    out.push_back(
        {NormStep::Replace, pat["String"].get<std::string>(), n.at("content").get<std::string>()});
  } else {
    fail(
        "tokenizer.json: normalizer type \"{}\" is not supported (supported: NFC, Prepend, "
        "Replace, Sequence)",
        type);
  }
}

// ---- pre-tokenizers -------------------------------------------------------------------------

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreStep {
  enum Kind { RegexSplit, StringSplit, ByteLevelRegex, AddPrefixSpace, Metaspace, Digits };
  Kind kind = RegexSplit;
  std::shared_ptr<SplitRegex> regex;
  std::string literal;  // StringSplit pattern; Metaspace replacement
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool flag = false;        // Metaspace: prepend ("always"/"first"); Digits: individual_digits
  bool first_only = false;  // Metaspace prepend_scheme "first"
  bool split = false;       // Metaspace split
};

const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

SplitBehavior parse_behavior(const std::string& b) {
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  fail("tokenizer.json: Split behavior \"{}\" is not supported", b);
}

void parse_pre_tokenizer(const json& p, std::vector<PreStep>& out, bool& byte_level) {
  if (p.is_null()) return;
  const std::string type = p.value("type", "");
  if (type == "Sequence") {
    for (const auto& s : p.at("pretokenizers")) parse_pre_tokenizer(s, out, byte_level);
  } else if (type == "Split") {
    PreStep s;
    const auto& pat = p.at("pattern");
    if (pat.contains("Regex")) {
      s.kind = PreStep::RegexSplit;
      s.regex = std::make_shared<SplitRegex>(pat["Regex"].get<std::string>());
    } else {
      s.kind = PreStep::StringSplit;
      s.literal = pat.at("String").get<std::string>();
    }
    s.behavior = parse_behavior(p.value("behavior", "Isolated"));
    s.invert = p.value("invert", false);
    out.push_back(std::move(s));
  } else if (type == "ByteLevel") {
    byte_level = true;
    if (p.value("add_prefix_space", false)) {
      PreStep s;
      s.kind = PreStep::AddPrefixSpace;
      out.push_back(std::move(s));
    }
    if (p.value("use_regex", true)) {
      PreStep s;
      s.kind = PreStep::ByteLevelRegex;
      s.regex = std::make_shared<SplitRegex>(kGpt2Pattern);
      out.push_back(std::move(s));
    }
  } else if (type == "Metaspace") {
    PreStep s;
    s.kind = PreStep::Metaspace;
    s.literal = p.value("replacement", std::string(kMetaspace));
    std::string scheme = p.value("prepend_scheme", "");
    if (scheme.empty()) scheme = p.value("add_prefix_space", true) ? "always" : "never";
    s.flag = scheme != "never";
    s.first_only = scheme == "first";
    s.split = p.value("split", true);
    out.push_back(std::move(s));
  } else if (type == "Digits") {
    PreStep s;
    s.kind = PreStep::Digits;
    s.flag = p.value("individual_digits", false);
    out.push_back(std::move(s));
  } else {
    fail(
        "tokenizer.json: pre_tokenizer type \"{}\" is not supported (supported: Split, "
        "ByteLevel, Metaspace, Digits, Sequence)",
        type);
  }
}

// A piece of text between pre-tokenizers. at_start: it begins at the start of the text (what
// Metaspace's prepend_scheme "first" asks).
struct Piece {
  std::string text;
  bool at_start;
};

// Match spans inside a piece, in order, as tokenizers' Pattern::find_matches gives them: the gaps
// between matches are added as non-matches; a match may be empty.
class Spans {
 public:
  void clear() {
    spans_.clear();
    prev_ = 0;
  }
  void add_match(std::size_t a, std::size_t b) {
    if (a > prev_) spans_.push_back({prev_, a, false});
    spans_.push_back({a, b, true});
    prev_ = b;
  }
  // Splits `piece` by the spans and appends the pieces it gives to out, as tokenizers'
  // NormalizedString::split does for each behaviour (pieces left empty are dropped).
  void split(const Piece& piece, SplitBehavior behavior, bool invert, std::vector<Piece>& out) {
    const std::string_view text = piece.text;
    if (prev_ < text.size()) spans_.push_back({prev_, text.size(), false});
    if (invert)
      for (auto& s : spans_) s.match = !s.match;
    std::vector<Span>& res = res_;
    res.clear();
    bool previous_match = false;
    // Folds a span into the result, as tokenizers does for each behaviour.
    auto fold = [&](const Span& s, bool reversed) {
      switch (behavior) {
        case SplitBehavior::Removed:
          if (!s.match) res.push_back(s);
          break;
        case SplitBehavior::Isolated:
          res.push_back(s);
          break;
        case SplitBehavior::MergedWithPrevious:  // a match joins the span before it ...
        case SplitBehavior::MergedWithNext:      // ... or after it, unless that is a match too
          if (s.match && !previous_match && !res.empty())
            res.back() = reversed ? Span{s.a, res.back().b, true} : Span{res.back().a, s.b, true};
          else
            res.push_back(s);
          break;
        case SplitBehavior::Contiguous:  // runs of matches (or of non-matches) become one
          if (s.match == previous_match && !res.empty())
            res.back() = {res.back().a, s.b, s.match};
          else
            res.push_back(s);
          break;
      }
      previous_match = s.match;
    };
    if (behavior == SplitBehavior::MergedWithNext) {  // the mirror image of MergedWithPrevious
      for (auto it = spans_.rbegin(); it != spans_.rend(); ++it) fold(*it, true);
      std::reverse(res.begin(), res.end());
    } else {
      for (const Span& s : spans_) fold(s, false);
    }
    for (const Span& s : res)
      if (s.b > s.a)
        out.push_back({std::string(text.substr(s.a, s.b - s.a)), piece.at_start && s.a == 0});
  }

 private:
  struct Span {
    std::size_t a, b;
    bool match;
  };
  std::vector<Span> spans_, res_;
  std::size_t prev_ = 0;
};

// ---- the tokenizer ----------------------------------------------------------------------------

class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(const std::filesystem::path& file,
              const std::optional<std::filesystem::path>& config) {
    if (!std::filesystem::exists(file)) fail("tokenizer: {} does not exist", file.string());
    json j;
    try {
      j = json::parse(read_file(file));
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", file.string(), e.what());
    }
    try {
      load(j);
    } catch (const json::exception& e) {
      fail("{}: unexpected structure: {}", file.string(), e.what());
    } catch (const Error& e) {
      throw Error(file.string() + ": " + e.what());
    }
    configure(config, default_bos_, std::nullopt, default_add_bos_);
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos,
                              bool parse_special) const override {
    if (auto bad = utf8::first_invalid(text); bad != std::string_view::npos)
      fail("tokenizer: text is not valid UTF-8 (byte {})", bad);
    std::vector<int32_t> out;
    if (add_bos && bos_id_) out.push_back(*bos_id_);
    bool first_segment = true;
    for (const auto& seg : matcher_.split(text, parse_special)) {
      if (seg.id >= 0) {
        out.push_back(seg.id);
      } else {
        encode_segment(seg.text, first_segment, out);
      }
      first_segment = false;
    }
    return out;
  }

  // As tokenizers' decoders: the ByteFallback decoder turns a run of byte tokens (<0xNN>) that is
  // not valid UTF-8 as a whole into one U+FFFD per byte, ASCII bytes included; the ByteLevel
  // decoder's bytes go through Rust's from_utf8_lossy (one U+FFFD per maximal invalid subpart), as
  // utf8_lossy() does; the Metaspace decoder drops every replacement character of the first token.
  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out, run;
    bool first = true;
    auto end_run = [&] {
      if (utf8::first_invalid(run) == std::string::npos)
        out += run;
      else
        for (std::size_t k = 0; k < run.size(); ++k) out += "\xEF\xBF\xBD";
      run.clear();
    };
    for (int32_t id : ids) {
      check_id(id);
      const auto i = static_cast<std::size_t>(id);
      if (skip_special && special_[i]) continue;
      if (byte_token_[i]) {
        run += bytes_[i];
        first = false;
        continue;
      }
      end_run();
      if (first && !metaspace_first_.empty()) {
        // The Metaspace decoder drops every "▁" of the first token (prepend_scheme not "never").
        std::string t = text::replace_all(id_to_token_[i], metaspace_first_, "");
        for (const auto& [from, to] : decoder_replace_) t = text::replace_all(t, from, to);
        out += t;
      } else {
        out += bytes_[i];
      }
      first = false;
    }
    end_run();
    if (strip_leading_space_ && metaspace_first_.empty() && !out.empty() && out[0] == ' ')
      out.erase(0, 1);
    return utf8_lossy(out);
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    return bytes_[static_cast<std::size_t>(id)];
  }
  bool strips_leading_space() const override { return strip_leading_space_; }
  std::size_t vocab_size() const override { return id_to_token_.size(); }
  std::string id_to_token(int32_t id) const override {
    check_id(id);
    return id_to_token_[static_cast<std::size_t>(id)];
  }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    if (auto it = added_by_content_.find(token); it != added_by_content_.end()) return it->second;
    if (auto it = vocab_.find(token); it != vocab_.end()) return it->second;
    return std::nullopt;
  }
  bool is_special(int32_t id) const override {
    return id >= 0 && static_cast<std::size_t>(id) < special_.size() &&
           special_[static_cast<std::size_t>(id)];
  }
  std::vector<AddedToken> added_tokens() const override {
    std::vector<AddedToken> out;
    for (const auto& t : matcher_.tokens()) out.push_back({t.id, t.content, t.special});
    return out;
  }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size())
      fail("tokenizer: token id {} is out of range (vocabulary size {})", id, id_to_token_.size());
  }

  void load(const json& j) {
    const json& model = j.at("model");
    const std::string mtype = model.value("type", "BPE");
    if (mtype != "BPE")
      fail("model type \"{}\" is not supported (only BPE; WordPiece/Unigram/WordLevel are not)",
           mtype);
    if (!model.value("dropout", json()).is_null() && model["dropout"].get<double>() > 0)
      fail("BPE dropout is not supported");
    if (model.contains("continuing_subword_prefix") &&
        model["continuing_subword_prefix"].is_string() &&
        !model["continuing_subword_prefix"].get<std::string>().empty())
      fail("BPE continuing_subword_prefix is not supported");
    if (model.contains("end_of_word_suffix") && model["end_of_word_suffix"].is_string() &&
        !model["end_of_word_suffix"].get<std::string>().empty())
      fail("BPE end_of_word_suffix is not supported");
    ignore_merges_ = model.value("ignore_merges", false);
    byte_fallback_ = model.value("byte_fallback", false);
    fuse_unk_ = model.value("fuse_unk", false);

    int32_t max_id = -1;
    for (const auto& [tok, idj] : model.at("vocab").items()) {
      const auto id = idj.get<int32_t>();
      vocab_.emplace(tok, id);
      max_id = std::max(max_id, id);
    }
    for (const auto& a : j.value("added_tokens", json::array()))
      max_id = std::max(max_id, a.at("id").get<int32_t>());
    id_to_token_.assign(static_cast<std::size_t>(max_id + 1), std::string());
    for (const auto& [tok, id] : vocab_) id_to_token_[static_cast<std::size_t>(id)] = tok;

    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      auto it = vocab_.find(model["unk_token"].get<std::string>());
      if (it != vocab_.end()) unk_id_ = it->second;
    }

    // Merges: "a b" strings (older files) or ["a", "b"] pairs.
    const auto& merges = model.at("merges");
    merges_.reserve(merges.size() * 2);
    int32_t rank = 0;
    for (const auto& m : merges) {
      std::string a, b;
      if (m.is_array()) {
        a = m.at(0).get<std::string>();
        b = m.at(1).get<std::string>();
      } else {
        const auto s = m.get<std::string>();
        const auto sp = s.find(' ', 1);
        if (sp == std::string::npos) fail("merge \"{}\" has no space", s);
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      }
      auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
      if (ia == vocab_.end() || ib == vocab_.end() || iab == vocab_.end())
        fail("merge \"{} {}\" (rank {}) uses a token missing from the vocabulary", a, b, rank);
      merges_.emplace(pair_key(ia->second, ib->second), Merge{rank, iab->second});
      ++rank;
    }

    special_.assign(id_to_token_.size(), false);
    for (const auto& a : j.value("added_tokens", json::array())) {
      AddedTokenMatcher::Token t;
      t.id = a.at("id").get<int32_t>();
      t.content = a.at("content").get<std::string>();
      t.special = a.value("special", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.single_word = a.value("single_word", false);
      id_to_token_[static_cast<std::size_t>(t.id)] = t.content;
      special_[static_cast<std::size_t>(t.id)] = t.special;
      added_by_content_[t.content] = t.id;
      matcher_.add(std::move(t));
    }

    parse_normalizer(j.value("normalizer", json()), norm_);
    parse_pre_tokenizer(j.value("pre_tokenizer", json()), pre_, byte_level_);
    parse_decoder(j.value("decoder", json()));
    parse_post_processor(j.value("post_processor", json()));

    // Bytes each token contributes to decoded text.
    bytes_.resize(id_to_token_.size());
    byte_token_.assign(id_to_token_.size(), false);
    const auto& bl = byte_level();
    for (std::size_t id = 0; id < id_to_token_.size(); ++id) {
      const std::string& tok = id_to_token_[id];
      std::string& b = bytes_[id];
      if (added_by_content_.count(tok) && added_by_content_.at(tok) == static_cast<int32_t>(id) &&
          !vocab_.count(tok)) {
        b = tok;  // added tokens decode to their content
        continue;
      }
      if (decoder_byte_level_) {
        bool ok = true;
        for (std::size_t i = 0; i < tok.size();) {
          int32_t cp;
          i += utf8::decode(tok, i, cp);
          auto it = bl.to_byte.find(cp);
          if (it == bl.to_byte.end()) {
            ok = false;
            break;
          }
          b += static_cast<char>(it->second);
        }
        if (!ok) b = tok;
      } else {
        if (decoder_byte_fallback_ && tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 &&
            tok[5] == '>' && std::isxdigit(static_cast<unsigned char>(tok[3])) &&
            std::isxdigit(static_cast<unsigned char>(tok[4]))) {
          b.assign(1, static_cast<char>(std::stoi(tok.substr(3, 2), nullptr, 16)));
          byte_token_[id] = true;
        } else {
          b = tok;
          for (const auto& [from, to] : decoder_replace_) b = text::replace_all(b, from, to);
        }
      }
    }
  }

  void parse_decoder(const json& d) {
    if (d.is_null()) return;
    const std::string type = d.value("type", "");
    if (type == "Sequence") {
      for (const auto& s : d.at("decoders")) parse_decoder(s);
    } else if (type == "ByteLevel") {
      decoder_byte_level_ = true;
    } else if (type == "Replace") {
      const auto& pat = d.at("pattern");
      if (!pat.contains("String")) fail("decoder Replace with a Regex pattern is not supported");
      decoder_replace_.emplace_back(pat["String"].get<std::string>(),
                                    d.at("content").get<std::string>());
    } else if (type == "ByteFallback") {
      decoder_byte_fallback_ = true;
    } else if (type == "Fuse") {
      // Joining the token strings is what decode() does anyway.
    } else if (type == "Strip") {
      if (d.value("content", " ") != " " || d.value("stop", 0) != 0 || d.value("start", 0) > 1)
        fail("decoder Strip other than one leading space is not supported");
      strip_leading_space_ = d.value("start", 0) == 1;
    } else if (type == "Metaspace") {
      const std::string repl = d.value("replacement", std::string(kMetaspace));
      decoder_replace_.emplace_back(repl, " ");
      std::string scheme = d.value("prepend_scheme", "");
      if (scheme.empty()) scheme = d.value("add_prefix_space", true) ? "always" : "never";
      strip_leading_space_ = scheme != "never";  // what StreamDecoder knows of the rule below
      if (strip_leading_space_) metaspace_first_ = repl;
    } else {
      fail(
          "decoder type \"{}\" is not supported (supported: ByteLevel, Replace, ByteFallback, "
          "Fuse, Strip, Metaspace, Sequence)",
          type);
    }
  }

  void parse_post_processor(const json& p) {
    // Only used to learn whether the model expects BOS: a TemplateProcessing whose single-sequence
    // template starts with a special token.
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
      for (const auto& s : p.at("processors")) parse_post_processor(s);
      return;
    }
    if (type != "TemplateProcessing") return;
    const auto& single = p.value("single", json::array());
    if (!single.empty() && single[0].contains("SpecialToken")) {
      const std::string name = single[0]["SpecialToken"].at("id").get<std::string>();
      const auto& st = p.value("special_tokens", json::object());
      if (st.contains(name) && !st[name].value("ids", json::array()).empty()) {
        default_bos_ = st[name]["ids"][0].get<int32_t>();
        default_add_bos_ = true;
      }
    }
  }

  // ---- encoding ----

  std::string normalize(std::string_view s) const {
    std::string out(s);
    for (const auto& n : norm_) {
      switch (n.kind) {
        case NormStep::Nfc:
          out = tokenizers_nfc(out);
          break;
        case NormStep::Prepend:
          if (!out.empty()) out = n.a + out;
          break;
        case NormStep::Replace:
          out = text::replace_all(std::move(out), n.a, n.b);
          break;
      }
    }
    return out;
  }

  // The pre-tokenizers in order, each applied to every piece the previous ones left.
  std::vector<Piece> pre_tokenize(std::string text, bool first_segment) const {
    std::vector<Piece> pieces, next;
    pieces.push_back({std::move(text), first_segment});
    Spans spans;
    auto split_on_literal = [&](const Piece& p, std::string_view lit, SplitBehavior behavior,
                                bool invert) {
      spans.clear();
      if (!lit.empty())
        for (std::size_t q = p.text.find(lit); q != std::string::npos;
             q = p.text.find(lit, q + lit.size()))
          spans.add_match(q, q + lit.size());
      spans.split(p, behavior, invert, next);
    };
    for (const auto& step : pre_) {
      next.clear();
      for (auto& p : pieces) {
        switch (step.kind) {
          case PreStep::RegexSplit:
          case PreStep::ByteLevelRegex:
            spans.clear();
            step.regex->for_each_match(
                p.text, [&](std::size_t a, std::size_t b) { spans.add_match(a, b); });
            spans.split(p, step.behavior, step.invert, next);
            break;
          case PreStep::StringSplit:
            split_on_literal(p, step.literal, step.behavior, step.invert);
            break;
          case PreStep::AddPrefixSpace:  // ByteLevel: a space before every piece
            if (p.text[0] != ' ') p.text.insert(0, " ");
            next.push_back(std::move(p));
            break;
          case PreStep::Metaspace:
            p.text = text::replace_all(p.text, " ", step.literal);
            if (step.flag && (!step.first_only || p.at_start) &&
                p.text.compare(0, step.literal.size(), step.literal) != 0)
              p.text.insert(0, step.literal);
            if (step.split)
              split_on_literal(p, step.literal, SplitBehavior::MergedWithNext, false);
            else
              next.push_back(std::move(p));
            break;
          case PreStep::Digits:  // each numeric character is a match
            spans.clear();
            for (std::size_t q = 0; q < p.text.size();) {
              int32_t cp;
              const std::size_t len = utf8::decode(p.text, q, cp);
              if (unicode::is_numeric(static_cast<char32_t>(cp))) spans.add_match(q, q + len);
              q += len;
            }
            spans.split(p, step.flag ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false,
                        next);
            break;
        }
      }
      pieces.swap(next);
    }
    return pieces;
  }

  void encode_segment(std::string_view text, bool first_segment, std::vector<int32_t>& out) const {
    std::string norm = normalize(text);
    if (norm.empty()) return;
    const auto& bl = byte_level();
    std::string word;
    for (auto& piece : pre_tokenize(std::move(norm), first_segment)) {
      if (byte_level_) {
        word.clear();
        for (unsigned char c : piece.text) word += bl.to_char[c];
      } else {
        word = std::move(piece.text);
      }
      encode_word(word, out);
    }
  }

  void encode_word(const std::string& word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable) {
      std::shared_lock lock(cache_mutex_);
      if (auto it = cache_.find(word); it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids;
    if (ignore_merges_) {
      if (auto it = vocab_.find(word); it != vocab_.end()) ids.push_back(it->second);
    }
    if (ids.empty()) bpe(word, ids);
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) {
      std::unique_lock lock(cache_mutex_);
      if (cache_.size() < kMaxCacheEntries) cache_.emplace(word, std::move(ids));
    }
  }

  // BPE over one word: start from characters (or byte-fallback tokens), repeatedly merge the
  // adjacent pair with the lowest merge rank (leftmost first on ties).
  void bpe(const std::string& word, std::vector<int32_t>& out) const {
    struct Sym {
      int32_t id;
      int32_t prev, next;  // indexes in syms, -1 at the ends
      bool alive;
    };
    std::vector<Sym> syms;
    syms.reserve(word.size());
    std::string ch;
    for (std::size_t i = 0; i < word.size();) {
      int32_t cp;
      const std::size_t len = utf8::decode(word, i, cp);
      ch.assign(word, i, len);
      i += len;
      if (auto it = vocab_.find(ch); it != vocab_.end()) {
        syms.push_back({it->second, 0, 0, true});
        continue;
      }
      if (byte_fallback_) {
        bool all = true;
        std::vector<int32_t> fb;
        for (unsigned char c : ch) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "<0x%02X>", c);
          auto it = vocab_.find(buf);
          if (it == vocab_.end()) {
            all = false;
            break;
          }
          fb.push_back(it->second);
        }
        if (all) {
          for (int32_t id : fb) syms.push_back({id, 0, 0, true});
          continue;
        }
      }
      if (!unk_id_)
        fail("tokenizer: character \"{}\" is not in the vocabulary and the model has no unk_token",
             ch);
      if (fuse_unk_ && !syms.empty() && syms.back().id == *unk_id_) continue;
      syms.push_back({*unk_id_, 0, 0, true});
    }
    const auto n = static_cast<int32_t>(syms.size());
    for (int32_t i = 0; i < n; ++i) {
      syms[static_cast<std::size_t>(i)].prev = i - 1;
      syms[static_cast<std::size_t>(i)].next = i + 1 < n ? i + 1 : -1;
    }
    struct Cand {
      int32_t rank, left, left_id, right_id, new_id;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push = [&](int32_t left) {
      if (left < 0) return;
      const Sym& l = syms[static_cast<std::size_t>(left)];
      if (l.next < 0) return;
      const Sym& r = syms[static_cast<std::size_t>(l.next)];
      if (auto it = merges_.find(pair_key(l.id, r.id)); it != merges_.end())
        heap.push({it->second.rank, left, l.id, r.id, it->second.new_id});
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      Sym& l = syms[static_cast<std::size_t>(c.left)];
      if (!l.alive || l.id != c.left_id || l.next < 0) continue;
      Sym& r = syms[static_cast<std::size_t>(l.next)];
      if (r.id != c.right_id) continue;
      l.id = c.new_id;
      r.alive = false;
      l.next = r.next;
      if (r.next >= 0) syms[static_cast<std::size_t>(r.next)].prev = c.left;
      push(l.prev);
      push(c.left);
    }
    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = syms[static_cast<std::size_t>(i)].next)
      out.push_back(syms[static_cast<std::size_t>(i)].id);
  }

  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  struct Merge {
    int32_t rank, new_id;
  };
  static constexpr std::size_t kMaxCachedWordBytes = 256;
  static constexpr std::size_t kMaxCacheEntries = 1 << 20;

  StringMap<int32_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<std::string> id_to_token_;
  std::vector<std::string> bytes_;
  std::vector<bool> byte_token_;  // <0xNN> tokens read by the ByteFallback decoder
  std::vector<bool> special_;
  StringMap<int32_t> added_by_content_;
  AddedTokenMatcher matcher_;
  std::vector<NormStep> norm_;
  std::vector<PreStep> pre_;
  bool byte_level_ = false;
  bool ignore_merges_ = false, byte_fallback_ = false, fuse_unk_ = false;
  std::optional<int32_t> unk_id_;
  bool decoder_byte_level_ = false, decoder_byte_fallback_ = false;
  std::vector<std::pair<std::string, std::string>> decoder_replace_;
  bool strip_leading_space_ = false;
  std::string metaspace_first_;  // Metaspace decoder: the replacement dropped from the first token
  std::optional<int32_t> default_bos_;
  bool default_add_bos_ = false;

  mutable std::shared_mutex cache_mutex_;
  mutable StringMap<std::vector<int32_t>> cache_;
};

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_hf_json(
    const std::filesystem::path& tokenizer_json,
    const std::optional<std::filesystem::path>& config) {
  return std::make_unique<HfTokenizer>(tokenizer_json, config);
}

}  // namespace metamath::model
