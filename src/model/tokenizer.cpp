// Tokenizer loading, tokenizer_config.json, basic chat formatting and streaming decoding. The two
// implementations live in sentencepiece_tokenizer.cpp and hf_tokenizer.cpp.
#include "model/tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/tokenizer_internal.h"

namespace metamath::model {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::unique_ptr<Tokenizer> Tokenizer::load(const fs::path& model_dir) {
  if (!fs::is_directory(model_dir))
    fail(
        "tokenizer: {} is not a folder (expected a model folder with tokenizer.json or "
        "tokenizer.model)",
        model_dir.string());
  std::optional<fs::path> config;
  if (fs::exists(model_dir / "tokenizer_config.json")) config = model_dir / "tokenizer_config.json";
  if (fs::exists(model_dir / "tokenizer.json"))
    return from_hf_json(model_dir / "tokenizer.json", config);
  if (fs::exists(model_dir / "tokenizer.model"))
    return from_sentencepiece(model_dir / "tokenizer.model", config);
  fail("tokenizer: {} has neither tokenizer.json nor tokenizer.model", model_dir.string());
}

namespace {

// A token in tokenizer_config.json is a string, null, or an AddedToken object {"content": ...}.
std::optional<std::string> config_token(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

std::string trim_ws(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  const auto e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace

void Tokenizer::configure(const std::optional<fs::path>& config, std::optional<int32_t> default_bos,
                          std::optional<int32_t> default_eos, bool default_add_bos) {
  bos_id_ = default_bos;
  eos_id_ = default_eos;
  add_bos_token_ = default_add_bos;
  std::optional<int32_t> pad;
  if (config) {
    json cfg;
    try {
      cfg = json::parse(read_file(*config));
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", config->string(), e.what());
    }
    if (!cfg.is_object()) fail("{}: expected a JSON object", config->string());
    auto resolve = [&](const char* key, std::optional<int32_t>& out) {
      if (!cfg.contains(key)) return;  // keep the default
      auto tok = config_token(cfg, key);
      if (!tok) {
        out.reset();  // explicitly null
        return;
      }
      auto id = token_to_id(*tok);
      if (!id)
        fail("{}: field \"{}\" names token \"{}\", which is not in the vocabulary",
             config->string(), key, *tok);
      out = *id;
    };
    resolve("bos_token", bos_id_);
    resolve("eos_token", eos_id_);
    resolve("pad_token", pad);
    if (auto it = cfg.find("add_bos_token"); it != cfg.end() && it->is_boolean())
      add_bos_token_ = it->get<bool>();
    if (auto it = cfg.find("chat_template"); it != cfg.end()) {
      if (it->is_string()) {
        chat_template_ = it->get<std::string>();
      } else if (it->is_array()) {  // [{"name": "default", "template": "..."}, ...]
        for (const auto& t : *it)
          if (t.is_object() && t.value("name", "") == "default" && t.contains("template") &&
              t["template"].is_string())
            chat_template_ = t["template"].get<std::string>();
      }
    }
  }
  if (bos_id_) bos_text_ = id_to_token(*bos_id_);
  if (eos_id_) eos_text_ = id_to_token(*eos_id_);
  pad_id_ = pad ? *pad : eos_id_ ? *eos_id_ : 0;

  stop_ids_.clear();
  if (eos_id_) stop_ids_.push_back(*eos_id_);
  for (const char* t :
       {"</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"}) {
    auto id = token_to_id(t);
    if (id && is_special(*id) &&
        std::find(stop_ids_.begin(), stop_ids_.end(), *id) == stop_ids_.end())
      stop_ids_.push_back(*id);
  }

  if (chat_template_.empty())
    chat_format_ = ChatFormat::None;
  else if (chat_template_.find("<|im_start|>") != std::string::npos)
    chat_format_ = ChatFormat::ChatML;
  else if (chat_template_.find("<|start_header_id|>") != std::string::npos)
    chat_format_ = ChatFormat::Llama3;
  else if (chat_template_.find("[INST]") != std::string::npos)
    chat_format_ = ChatFormat::Llama2;
  else
    chat_format_ = ChatFormat::Unknown;
}

std::string Tokenizer::apply_chat(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt) const {
  std::string out;
  switch (chat_format_) {
    case ChatFormat::None:
      fail("tokenizer: this model has no chat_template in tokenizer_config.json; use a raw prompt");
    case ChatFormat::Unknown:
      fail(
          "tokenizer: the chat_template is not one of the formats metamath knows (LLaMA-2 [INST], "
          "LLaMA-3 header, ChatML); use a raw prompt");
    case ChatFormat::ChatML:
      for (const auto& m : messages)
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    case ChatFormat::Llama3:
      out = bos_text_;
      for (const auto& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim_ws(m.content) +
               "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatFormat::Llama2: {
      std::string system;
      std::size_t first = 0;
      if (!messages.empty() && messages[0].role == "system") {
        system = trim_ws(messages[0].content);
        first = 1;
      }
      bool first_user = true;
      for (std::size_t i = first; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "user") {
          std::string content = trim_ws(m.content);
          if (first_user && !system.empty())
            content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
          first_user = false;
          out += bos_text_ + "[INST] " + content + " [/INST]";
        } else if (m.role == "assistant") {
          out += " " + trim_ws(m.content) + " " + eos_text_;
        } else {
          fail(
              "tokenizer: the LLaMA-2 chat format takes roles system (first), user and "
              "assistant, got \"{}\"",
              m.role);
        }
      }
      return out;
    }
  }
  return out;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      out += s[i++];
      continue;
    }
    int32_t cp;
    const std::size_t len = utf8::decode(s, i, cp);
    if (cp < 0)
      out += "\xEF\xBF\xBD";
    else
      out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special, bool at_text_start)
    : tok_(tok),
      skip_special_(skip_special),
      strip_pending_(at_text_start && tok.strips_leading_space()) {}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return "";
  std::string bytes = tok_.token_bytes(id);
  if (strip_pending_ && !bytes.empty()) {
    if (bytes[0] == ' ') bytes.erase(0, 1);
    strip_pending_ = false;
  }
  pending_ += bytes;
  // Hold back a trailing sequence that is a valid but unfinished UTF-8 character.
  std::size_t keep = pending_.size();
  for (std::size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
    const std::size_t start = pending_.size() - back;
    const auto b = static_cast<unsigned char>(pending_[start]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back
    if (b >= 0xC2 && b <= 0xF4) {
      int32_t cp;
      const std::size_t len = utf8::decode(pending_, start, cp);
      // decode() stops at the end of the buffer with cp < 0 and len == bytes available when the
      // prefix is valid so far.
      if (cp < 0 && len == back) keep = start;
    }
    break;
  }
  std::string out = utf8_lossy(std::string_view(pending_).substr(0, keep));
  pending_.erase(0, keep);
  emitted_ += out;
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  emitted_ += out;
  return out;
}

}  // namespace metamath::model
