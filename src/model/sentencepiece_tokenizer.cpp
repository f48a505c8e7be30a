// SentencePiece `tokenizer.model` (LLaMA-2, Mistral, TinyLlama): a reader of the model protobuf
// and SentencePiece's BPE encoding, written here.
//
// Why not libsentencepiece: Debian 12's libsentencepiece0 (0.1.97) carries its own copy of the
// protobuf 3.14 runtime and exports its symbols; in a process that also loads libprotobuf 3.21
// (libtorch does, through libonnx_proto) the two copies interpose on each other and the program
// crashes during static initialisation, before main(). A small shim library linking
// libsentencepiece and opened with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) does isolate the two copies
// (checked on Debian 12); it is not used because it would add a second shared object to find at run
// time for what this file does in ~450 lines. Parity with SentencePiece itself is checked by the
// tests against Debian's python3-sentencepiece.
//
// Supported: model_type BPE with the identity normalizer (add_dummy_prefix,
// remove_extra_whitespaces, escape_whitespaces), byte fallback, user-defined, control, unknown and
// unused pieces. Unigram models and precompiled normalization rules (nmt_nfkc) are rejected with
// an error.
#include <cstring>
#include <queue>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/tokenizer.h"
#include "model/tokenizer_internal.h"

namespace metamath::model {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁"

// ---- protobuf wire format (just what ModelProto needs) ----------------------------------------

class ProtoReader {
 public:
  ProtoReader(std::string_view data, const std::string& where) : d_(data), where_(where) {}
  bool done() const { return i_ >= d_.size(); }
  // Reads a field header; returns field number and sets wire type.
  uint32_t next(int& wire) {
    const uint64_t key = varint();
    wire = static_cast<int>(key & 7);
    return static_cast<uint32_t>(key >> 3);
  }
  uint64_t varint() {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i_ >= d_.size()) bad();
      const auto c = static_cast<unsigned char>(d_[i_++]);
      r |= static_cast<uint64_t>(c & 0x7F) << shift;
      if (c < 0x80) return r;
    }
    bad();
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > d_.size() - i_) bad();
    auto s = d_.substr(i_, n);
    i_ += n;
    return s;
  }
  float fixed32_float() {
    if (d_.size() - i_ < 4) bad();
    float f;
    std::memcpy(&f, d_.data() + i_, 4);
    i_ += 4;
    return f;
  }
  void skip(int wire) {
    switch (wire) {
      case 0:
        varint();
        return;
      case 1:
        if (d_.size() - i_ < 8) bad();
        i_ += 8;
        return;
      case 2:
        bytes();
        return;
      case 5:
        if (d_.size() - i_ < 4) bad();
        i_ += 4;
        return;
      default:
        bad();
    }
  }
  [[noreturn]] void bad() const {
    fail("tokenizer: {} is not a valid SentencePiece model (malformed protobuf near byte {})",
         where_, i_);
  }

 private:
  std::string_view d_;
  std::size_t i_ = 0;
  const std::string& where_;
};

enum PieceType {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

// One ModelProto.SentencePiece message: piece (1), score (2), type (3).
SentencePieceEntry read_piece(std::string_view message, const std::string& where) {
  ProtoReader p(message, where);
  SentencePieceEntry piece;
  while (!p.done()) {
    int w;
    const uint32_t f = p.next(w);
    if (f == 1 && w == 2)
      piece.piece = std::string(p.bytes());
    else if (f == 2 && w == 5)
      piece.score = p.fixed32_float();
    else if (f == 3 && w == 0)
      piece.type = static_cast<int>(p.varint());
    else
      p.skip(w);
  }
  return piece;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::filesystem::path& file,
                         const std::optional<std::filesystem::path>& config) {
    if (!std::filesystem::exists(file)) fail("tokenizer: {} does not exist", file.string());
    const std::string where = file.string();
    const std::string data = read_file(file);
    parse(data, where);
    if (pieces_.empty()) fail("tokenizer: {} has no pieces (not a SentencePiece model?)", where);
    if (model_type_ != 2)
      fail(
          "tokenizer: {} is a SentencePiece {} model; only BPE models (LLaMA-2, Mistral) are "
          "supported",
          where, model_type_ == 1 ? "Unigram" : "non-BPE");
    if (!charsmap_empty_)
      fail(
          "tokenizer: {} uses SentencePiece normalization rules \"{}\"; only the identity "
          "normalizer is supported",
          where, normalizer_name_);

    const std::size_t n = pieces_.size();
    bytes_.resize(n);
    for (std::size_t id = 0; id < n; ++id) {
      const auto& p = pieces_[id];
      const auto i = static_cast<int32_t>(id);
      switch (p.type) {
        case kNormal:
        case kUserDefined:
        case kUnused:
          lookup_.emplace(p.piece, i);
          break;
        default:
          break;
      }
      if (p.type == kUserDefined) user_defined_.add({p.piece, i, false});
      if (p.type == kControl || p.type == kUnknown) {
        added_.push_back({i, p.piece, true});
        matcher_.add({p.piece, i, true});
      }
      if (p.type == kByte) {
        if (p.piece.size() != 6 || p.piece.compare(0, 3, "<0x") != 0)
          fail("tokenizer: {}: byte piece {} is not of the form <0xNN>", where, p.piece);
        const int b = std::stoi(p.piece.substr(3, 2), nullptr, 16);
        byte_ids_[static_cast<std::size_t>(b)] = i;
        bytes_[id].assign(1, static_cast<char>(b));
      } else if (p.type == kControl) {
        bytes_[id] = "";
      } else if (p.type == kUnknown) {
        bytes_[id] = unk_surface_;
      } else {
        std::string s = p.piece;
        for (std::size_t q = 0; (q = s.find(kSpace, q)) != std::string::npos;) s.replace(q, 3, " ");
        bytes_[id] = std::move(s);
      }
      all_by_piece_.emplace(p.piece, i);
    }
    if (unk_id_ < 0 || static_cast<std::size_t>(unk_id_) >= n)
      fail("tokenizer: {}: the model has no valid unk_id", where);
    auto opt = [n](int64_t id) {
      return id >= 0 && static_cast<std::size_t>(id) < n ? std::optional<int32_t>(id)
                                                         : std::nullopt;
    };
    configure(config, opt(bos_), opt(eos_), /*default_add_bos=*/true);
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos,
                              bool parse_special) const override {
    if (auto bad = utf8::first_invalid(text); bad != std::string_view::npos)
      fail("tokenizer: text is not valid UTF-8 (byte {})", bad);
    std::vector<int32_t> out;
    if (add_bos && bos_id_) out.push_back(*bos_id_);
    if (!parse_special) {
      encode_plain(text, out);
      return out;
    }
    for (const auto& seg : matcher_.split(text, true)) {
      if (seg.id >= 0)
        out.push_back(seg.id);
      else
        encode_plain(seg.text, out);
    }
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out;
    bool at_start = add_dummy_prefix_;
    for (int32_t id : ids) {
      check_id(id);
      const auto type = pieces_[static_cast<std::size_t>(id)].type;
      if (type == kControl) {
        if (!skip_special) out += pieces_[static_cast<std::size_t>(id)].piece;
        continue;
      }
      if (type == kUnknown && skip_special) continue;
      const std::string& b = bytes_[static_cast<std::size_t>(id)];
      if (at_start && type != kUnknown && type != kByte && !b.empty() && b[0] == ' ')
        out.append(b, 1);
      else
        out += b;
      at_start = false;
    }
    return utf8::lossy_per_byte(out);  // SentencePiece: one U+FFFD per invalid byte
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    const auto& p = pieces_[static_cast<std::size_t>(id)];
    if (p.type == kControl) return p.piece;
    return bytes_[static_cast<std::size_t>(id)];
  }
  bool strips_leading_space() const override { return add_dummy_prefix_; }
  std::size_t vocab_size() const override { return pieces_.size(); }
  std::string id_to_token(int32_t id) const override {
    check_id(id);
    return pieces_[static_cast<std::size_t>(id)].piece;
  }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    auto it = all_by_piece_.find(token);
    if (it == all_by_piece_.end()) return std::nullopt;
    return it->second;
  }
  bool is_special(int32_t id) const override {
    if (id < 0 || static_cast<std::size_t>(id) >= pieces_.size()) return false;
    const auto t = pieces_[static_cast<std::size_t>(id)].type;
    return t == kControl || t == kUnknown;
  }
  std::vector<AddedToken> added_tokens() const override { return added_; }

 private:
  using Piece = SentencePieceEntry;

  void parse(std::string_view data, const std::string& where) {
    ProtoReader r(data, where);
    while (!r.done()) {
      int wire;
      const uint32_t field = r.next(wire);
      if (field == 1 && wire == 2) {  // repeated SentencePiece pieces
        pieces_.push_back(read_piece(r.bytes(), where));
      } else if (field == 2 && wire == 2) {  // TrainerSpec
        ProtoReader t(r.bytes(), where);
        while (!t.done()) {
          int w;
          const uint32_t f = t.next(w);
          if (w == 0 && (f == 3 || f == 35 || (f >= 40 && f <= 43))) {
            const auto v = static_cast<int64_t>(t.varint());
            if (f == 3) model_type_ = static_cast<int>(v);
            if (f == 35) byte_fallback_ = v != 0;
            if (f == 40) unk_id_ = static_cast<int32_t>(v);
            if (f == 41) bos_ = static_cast<int32_t>(v);
            if (f == 42) eos_ = static_cast<int32_t>(v);
          } else if (f == 44 && w == 2) {
            unk_surface_ = std::string(t.bytes());
          } else if (f == 24 && w == 0) {
            if (t.varint() != 0)
              fail("tokenizer: {}: treat_whitespace_as_suffix is not supported", where);
          } else {
            t.skip(w);
          }
        }
      } else if (field == 3 && wire == 2) {  // NormalizerSpec
        ProtoReader nz(r.bytes(), where);
        while (!nz.done()) {
          int w;
          const uint32_t f = nz.next(w);
          if (f == 1 && w == 2)
            normalizer_name_ = std::string(nz.bytes());
          else if (f == 2 && w == 2)
            charsmap_empty_ = nz.bytes().empty();
          else if (f == 3 && w == 0)
            add_dummy_prefix_ = nz.varint() != 0;
          else if (f == 4 && w == 0)
            remove_extra_whitespaces_ = nz.varint() != 0;
          else if (f == 5 && w == 0)
            escape_whitespaces_ = nz.varint() != 0;
          else
            nz.skip(w);
        }
      } else {
        r.skip(wire);
      }
    }
  }

  void check_id(int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= pieces_.size())
      fail("tokenizer: token id {} is out of range (vocabulary size {})", id, pieces_.size());
  }

  // SentencePiece's normalizer with the identity rules: optional whitespace cleanup, the dummy
  // prefix, and spaces written as "▁".
  std::string normalize(std::string_view text) const {
    std::string s;
    if (remove_extra_whitespaces_) {
      bool space = true;  // drops leading spaces
      for (char c : text) {
        if (c == ' ') {
          if (!space) s += ' ';
          space = true;
        } else {
          s += c;
          space = false;
        }
      }
      if (!s.empty() && s.back() == ' ') s.pop_back();
    } else {
      s.assign(text);
    }
    if (s.empty()) return s;
    std::string out;
    out.reserve(s.size() + 8);
    if (add_dummy_prefix_) out += escape_whitespaces_ ? kSpace : " ";
    for (char c : s) {
      if (c == ' ' && escape_whitespaces_)
        out += kSpace;
      else
        out += c;
    }
    return out;
  }

  // SentencePiece BPE: start from characters (user-defined pieces stay whole), repeatedly merge the
  // adjacent pair whose concatenation is a piece with the highest score (leftmost on ties);
  // pieces that are not in the vocabulary fall back to bytes (or <unk>).
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const {
    const std::string norm = normalize(text);
    if (norm.empty()) return;
    struct Sym {
      uint32_t begin, len;
      int32_t prev, next;
      bool freeze;
    };
    std::vector<Sym> syms;
    syms.reserve(norm.size());
    for (std::size_t i = 0; i < norm.size();) {
      std::size_t len = 0;
      bool freeze = false;
      if (!user_defined_.empty()) {
        if (const auto* t = user_defined_.match_at(norm, i, true)) {
          len = t->content.size();
          freeze = true;
        }
      }
      if (len == 0) {
        int32_t cp;
        len = utf8::decode(norm, i, cp);
      }
      const auto idx = static_cast<int32_t>(syms.size());
      syms.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(len), idx - 1, -1, freeze});
      if (idx > 0) syms[static_cast<std::size_t>(idx - 1)].next = idx;
      i += len;
    }

    struct Cand {
      float score;
      int32_t left, right;
      uint32_t size;
    };
    auto worse = [](const Cand& a, const Cand& b) {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> agenda(worse);
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;
    const std::string_view nv(norm);
    auto maybe_add = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const Sym& l = syms[static_cast<std::size_t>(left)];
      const Sym& r = syms[static_cast<std::size_t>(right)];
      if (l.freeze || r.freeze) return;
      const std::string_view piece = nv.substr(l.begin, l.len + r.len);
      auto it = lookup_.find(piece);
      if (it == lookup_.end()) return;
      const auto& p = pieces_[static_cast<std::size_t>(it->second)];
      agenda.push({p.score, left, right, static_cast<uint32_t>(piece.size())});
      if (p.type == kUnused)
        rev_merge[piece] = {nv.substr(l.begin, l.len), nv.substr(r.begin, r.len)};
    };
    for (std::size_t i = 1; i < syms.size(); ++i)
      maybe_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    while (!agenda.empty()) {
      const Cand top = agenda.top();
      agenda.pop();
      Sym& l = syms[static_cast<std::size_t>(top.left)];
      Sym& r = syms[static_cast<std::size_t>(top.right)];
      if (l.len == 0 || r.len == 0 || l.len + r.len != top.size || l.next != top.right) continue;
      l.len += r.len;
      l.next = r.next;
      if (r.next >= 0) syms[static_cast<std::size_t>(r.next)].prev = top.left;
      r.len = 0;
      maybe_add(l.prev, top.left);
      maybe_add(top.left, l.next);
    }

    // Emits a piece, splitting unused pieces back along the merges that made them, and falling
    // back to bytes for anything not in the vocabulary.
    auto emit = [&](auto&& self, std::string_view piece) -> void {
      auto it = lookup_.find(piece);
      if (it != lookup_.end()) {
        if (pieces_[static_cast<std::size_t>(it->second)].type == kUnused) {
          auto rm = rev_merge.find(piece);
          if (rm != rev_merge.end()) {
            self(self, rm->second.first);
            self(self, rm->second.second);
            return;
          }
        }
        out.push_back(it->second);
        return;
      }
      if (byte_fallback_) {
        bool all = true;
        for (unsigned char c : piece) all = all && byte_ids_[c] >= 0;
        if (all) {
          for (unsigned char c : piece) out.push_back(byte_ids_[c]);
          return;
        }
      }
      if (!out.empty() && out.back() == unk_id_ && !byte_fallback_) return;  // unks are fused
      out.push_back(unk_id_);
    };
    for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[static_cast<std::size_t>(i)].next) {
      const Sym& s = syms[static_cast<std::size_t>(i)];
      emit(emit, nv.substr(s.begin, s.len));
    }
  }

  std::vector<Piece> pieces_;
  StringMap<int32_t> lookup_;        // normal, user-defined, unused pieces
  StringMap<int32_t> all_by_piece_;  // every piece
  std::vector<std::string> bytes_;
  std::array<int32_t, 256> byte_ids_ = [] {
    std::array<int32_t, 256> a;
    a.fill(-1);
    return a;
  }();
  AddedTokenMatcher matcher_;       // control and unknown pieces written in the text
  AddedTokenMatcher user_defined_;  // user-defined pieces (kept whole by the BPE)
  std::vector<AddedToken> added_;
  int model_type_ = 1;
  bool byte_fallback_ = false;
  int32_t unk_id_ = 0, bos_ = 1, eos_ = 2;
  std::string unk_surface_ = " \xE2\x81\x87 ";
  std::string normalizer_name_;
  bool charsmap_empty_ = true;
  bool add_dummy_prefix_ = true, remove_extra_whitespaces_ = true, escape_whitespaces_ = true;
};

}  // namespace

SentencePieceModel read_sentencepiece_model(const std::filesystem::path& file) {
  const std::string where = file.string();
  const std::string data = read_file(file);
  SentencePieceModel m;
  ProtoReader r(data, where);
  while (!r.done()) {
    int wire;
    const uint32_t field = r.next(wire);
    if (field == 1 && wire == 2) {
      m.pieces.push_back(read_piece(r.bytes(), where));
    } else if (field == 3 && wire == 2) {  // NormalizerSpec: add_dummy_prefix (3)
      ProtoReader nz(r.bytes(), where);
      while (!nz.done()) {
        int w;
        const uint32_t f = nz.next(w);
        if (f == 3 && w == 0)
          m.add_dummy_prefix = nz.varint() != 0;
        else
          nz.skip(w);
      }
    } else {
      r.skip(wire);
    }
  }
  if (m.pieces.empty()) fail("tokenizer: {} has no pieces (not a SentencePiece model?)", where);
  return m;
}

std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece(
    const std::filesystem::path& model_file, const std::optional<std::filesystem::path>& config) {
  return std::make_unique<SentencePieceTokenizer>(model_file, config);
}

}  // namespace metamath::model
