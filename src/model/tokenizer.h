#pragma once
// Tokenizers for LLaMA-family checkpoints.
//
//   * SentencePiece `tokenizer.model` (LLaMA-2, Mistral, TinyLlama, MetaMath-7B): the model
//     reader and BPE encoder are written here (sentencepiece_tokenizer.cpp says why Debian's
//     libsentencepiece cannot be loaded beside libtorch) and checked id for id against
//     python3-sentencepiece.
//   * Hugging Face `tokenizer.json` with a BPE model, implemented here (Debian packages no Hugging
//     Face tokenizers library for C++): byte-level BPE (Qwen2/Qwen2.5/Qwen3, LLaMA-3, GPT-2 style)
//     and the SentencePiece-BPE form with byte fallback and a `▁` metaspace (LLaMA-2/Mistral
//     converted to JSON). Checked id for id against the Rust tokenizers library on all of
//     Unicode: its regex character classes are Unicode 16.0, its NFC Unicode 9.0, and ours are
//     the same (unicode_tables.h, generated from that library).
//
// Tokenizer::load(dir) picks tokenizer.json when present, else tokenizer.model, and reads
// tokenizer_config.json (when present) for the BOS/EOS/PAD tokens, add_bos_token and the chat
// template.
//
// Every Tokenizer is immutable after loading and safe to use from several threads at once.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace metamath::model {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// The chat formats apply_chat() knows, detected from the chat template text.
enum class ChatFormat {
  None,    // no chat template (e.g. a base model such as MetaMath-7B: use raw prompts)
  Llama2,  // "<s>[INST] <<SYS>>\n...\n<</SYS>>\n\n{user} [/INST] {assistant} </s>"
  Llama3,  // "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"
  ChatML,  // "<|im_start|>{role}\n{content}<|im_end|>\n" (Qwen)
  Unknown  // a template none of the above matches: apply_chat() throws
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads the tokenizer of a Hugging Face model folder: tokenizer.json (preferred) or
  // tokenizer.model, plus tokenizer_config.json when present. Throws metamath::Error naming the
  // folder/file and what is missing or unsupported.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& model_dir);
  // Loads one file directly; `config` is an optional tokenizer_config.json.
  static std::unique_ptr<Tokenizer> from_sentencepiece(
      const std::filesystem::path& model_file,
      const std::optional<std::filesystem::path>& config = std::nullopt);
  static std::unique_ptr<Tokenizer> from_hf_json(
      const std::filesystem::path& tokenizer_json,
      const std::optional<std::filesystem::path>& config = std::nullopt);

  // Text (valid UTF-8, else metamath::Error) -> ids. add_bos prepends bos_id() when there is one.
  // parse_special: added/special tokens written in the text (e.g. "<|im_start|>", "</s>") become
  // their single id; when false they are tokenized as plain text.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos = false,
                                      bool parse_special = true) const = 0;

  // Ids -> text. Byte sequences that are not valid UTF-8 come out as U+FFFD, as the reference
  // decoders write it: SentencePiece one per invalid byte; tokenizer.json's ByteFallback one per
  // byte of a run of byte tokens that is not valid UTF-8 as a whole (ASCII bytes included), its
  // ByteLevel one per maximal invalid subpart. skip_special drops special tokens (BOS, EOS,
  // <|im_end|>, ...). Throws metamath::Error on an id out of range.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = false) const = 0;
  std::string decode(std::initializer_list<int32_t> ids, bool skip_special = false) const {
    return decode(std::span<const int32_t>(ids.begin(), ids.size()), skip_special);
  }

  // The raw bytes one token contributes to the text in the middle of a sequence (may be an
  // incomplete UTF-8 character, e.g. one byte-fallback token). Special tokens give their text.
  virtual std::string token_bytes(int32_t id) const = 0;
  // True when decode() drops one leading space at the start of a sequence (SentencePiece's dummy
  // prefix): " Hello" is stored as "▁Hello" and decodes to "Hello" at the start of a text.
  virtual bool strips_leading_space() const = 0;

  virtual std::size_t vocab_size() const = 0;  // ids are 0..vocab_size()-1 (added tokens included)
  // The token's string as stored in the vocabulary ("▁Hello", "ĠHello", "<|im_end|>"); throws on an
  // id out of range.
  virtual std::string id_to_token(int32_t id) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  // Added tokens (tokenizer.json "added_tokens"; control pieces of a SentencePiece model).
  struct AddedToken {
    int32_t id;
    std::string content;
    bool special;
  };
  virtual std::vector<AddedToken> added_tokens() const = 0;

  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  // Extra ids that also end a generation (e.g. <|eot_id|> and <|end_of_text|> for LLaMA-3,
  // <|im_end|> and <|endoftext|> for Qwen); includes eos_id().
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  // PAD: tokenizer_config's pad_token when set, else EOS, else 0.
  int32_t pad_id() const { return pad_id_; }
  // Whether the model expects BOS at the start of a prompt (tokenizer_config's add_bos_token; for a
  // bare tokenizer.model: true).
  bool add_bos_token() const { return add_bos_token_; }

  // Chat template (the Jinja text from tokenizer_config.json, stored as is; not interpreted).
  const std::string& chat_template() const { return chat_template_; }
  ChatFormat chat_format() const { return chat_format_; }
  // Basic chat formatting for the three common template families (see ChatFormat), detected from
  // the template text: role names pass through, no tools, no multimodal parts, no "thinking"
  // blocks. The result already contains BOS as text when the format has one, so encode it with
  // add_bos=false and parse_special=true. Throws metamath::Error for ChatFormat::None/Unknown.
  std::string apply_chat(const std::vector<ChatMessage>& messages,
                         bool add_generation_prompt = true) const;

 protected:
  // Reads tokenizer_config.json (when given) and fills the fields below; called by the loaders.
  void configure(const std::optional<std::filesystem::path>& config,
                 std::optional<int32_t> default_bos, std::optional<int32_t> default_eos,
                 bool default_add_bos);

  std::optional<int32_t> bos_id_, eos_id_;
  std::vector<int32_t> stop_ids_;
  int32_t pad_id_ = 0;
  bool add_bos_token_ = false;
  std::string chat_template_;
  std::string bos_text_, eos_text_;
  ChatFormat chat_format_ = ChatFormat::None;
};

// Incremental decoding for a streaming generator: push ids one at a time and get back the text
// that is complete so far. Never cuts a multi-byte UTF-8 character: bytes of an unfinished
// character are held until the rest arrives (or finish() is called, which turns them into U+FFFD).
class StreamDecoder {
 public:
  // at_text_start: the first pushed token starts the text, so SentencePiece's dummy-prefix space is
  // dropped as decode() does. Pass false when continuing after a prompt.
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true,
                         bool at_text_start = false);
  // Returns the newly completed text (possibly empty).
  std::string push(int32_t id);
  // Returns what is left (incomplete bytes become U+FFFD) and resets.
  std::string finish();
  // All text emitted so far.
  const std::string& text() const { return emitted_; }

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool strip_pending_;
  std::string pending_;  // bytes not yet emitted (an incomplete UTF-8 character)
  std::string emitted_;
};

// Unicode NFC normalization (canonical decomposition, reordering, canonical composition; utf8proc,
// Unicode 15.0). Input must be valid UTF-8.
std::string unicode_nfc(std::string_view s);
// NFC as the `NFC` normalizer of Hugging Face tokenizers computes it: its tables are Unicode 9.0,
// so a character added since that would change the result (a newer combining mark, a newer
// composition) is left where it is, as a starter that neither reorders nor composes.
std::string tokenizers_nfc(std::string_view s);

// Replaces every invalid UTF-8 sequence with U+FFFD (one per maximal invalid subpart).
std::string utf8_lossy(std::string_view s);

}  // namespace metamath::model
