// SentencePiece `tokenizer.model` (LLaMA-2, Mistral, TinyLlama) through libsentencepiece.
#include <sentencepiece_processor.h>

#include "core/error.h"
#include "model/tokenizer.h"
#include "model/tokenizer_internal.h"

namespace metamath::model {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::filesystem::path& file,
                         const std::optional<std::filesystem::path>& config) {
    if (!std::filesystem::exists(file)) fail("tokenizer: {} does not exist", file.string());
    const auto status = sp_.Load(file.string());
    if (!status.ok())
      fail("tokenizer: {} is not a SentencePiece model: {}", file.string(), status.ToString());
    const int n = sp_.GetPieceSize();
    bytes_.resize(static_cast<std::size_t>(n));
    special_.assign(static_cast<std::size_t>(n), false);
    for (int id = 0; id < n; ++id) {
      const std::string& piece = sp_.IdToPiece(id);
      auto& b = bytes_[static_cast<std::size_t>(id)];
      if (sp_.IsControl(id) || sp_.IsUnknown(id)) {
        special_[static_cast<std::size_t>(id)] = true;
        added_.push_back({id, piece, true});
        matcher_.add({piece, id, true});
        // What SentencePiece's own decoder writes for them: nothing for control pieces, " ⁇ "
        // for <unk>.
        b = sp_.IsUnknown(id) ? " \xE2\x81\x87 " : "";
      } else if (sp_.IsByte(id)) {
        b.assign(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
      } else {
        b = piece;
        std::size_t p = 0;
        while ((p = b.find("\xE2\x96\x81", p)) != std::string::npos) b.replace(p, 3, " ");
      }
    }
    auto opt = [](int id) { return id >= 0 ? std::optional<int32_t>(id) : std::nullopt; };
    configure(config, opt(sp_.bos_id()), opt(sp_.eos_id()), /*default_add_bos=*/true);
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos,
                              bool parse_special) const override {
    if (auto bad = utf8::first_invalid(text); bad != std::string_view::npos)
      fail("tokenizer: text is not valid UTF-8 (byte {})", bad);
    std::vector<int32_t> out;
    if (add_bos && bos_id_) out.push_back(*bos_id_);
    std::vector<int> ids;
    auto encode_plain = [&](std::string_view s) {
      const auto status = sp_.Encode(s, &ids);
      if (!status.ok()) fail("tokenizer: SentencePiece encode failed: {}", status.ToString());
      out.insert(out.end(), ids.begin(), ids.end());
    };
    if (!parse_special) {
      encode_plain(text);
      return out;
    }
    for (const auto& seg : matcher_.split(text, true)) {
      if (seg.id >= 0)
        out.push_back(seg.id);
      else
        encode_plain(seg.text);
    }
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    // Runs of ordinary pieces go through SentencePiece's decoder; special pieces are written as
    // their text unless skipped.
    std::string out;
    std::vector<int> run;
    auto flush = [&] {
      if (run.empty()) return;
      std::string s;
      const auto status = sp_.Decode(run, &s);
      if (!status.ok()) fail("tokenizer: SentencePiece decode failed: {}", status.ToString());
      out += s;
      run.clear();
    };
    for (int32_t id : ids) {
      check_id(id);
      if (special_[static_cast<std::size_t>(id)] && !sp_.IsUnknown(id)) {
        flush();
        if (!skip_special) out += sp_.IdToPiece(id);
      } else if (sp_.IsUnknown(id) && skip_special) {
        continue;
      } else {
        run.push_back(id);
      }
    }
    flush();
    return utf8_lossy(out);
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id);
    if (sp_.IsControl(id)) return sp_.IdToPiece(id);
    return bytes_[static_cast<std::size_t>(id)];
  }
  bool strips_leading_space() const override { return true; }
  std::size_t vocab_size() const override { return bytes_.size(); }
  std::string id_to_token(int32_t id) const override {
    check_id(id);
    return sp_.IdToPiece(id);
  }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    const int id = sp_.PieceToId(token);
    if (id < 0 || sp_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }
  bool is_special(int32_t id) const override {
    return id >= 0 && static_cast<std::size_t>(id) < special_.size() &&
           special_[static_cast<std::size_t>(id)];
  }
  std::vector<AddedToken> added_tokens() const override { return added_; }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= bytes_.size())
      fail("tokenizer: token id {} is out of range (vocabulary size {})", id, bytes_.size());
  }

  sentencepiece::SentencePieceProcessor sp_;
  std::vector<std::string> bytes_;
  std::vector<bool> special_;
  std::vector<AddedToken> added_;
  AddedTokenMatcher matcher_;
};

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece(
    const std::filesystem::path& model_file, const std::optional<std::filesystem::path>& config) {
  return std::make_unique<SentencePieceTokenizer>(model_file, config);
}

}  // namespace metamath::model
