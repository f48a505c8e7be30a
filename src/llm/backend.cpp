#include "llm/backend.h"

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "llm/local_backend.h"
#include "llm/openai_backend.h"

namespace metamath::llm {

using nlohmann::json;

const char* to_string(ErrorKind k) {
  switch (k) {
    case ErrorKind::None:
      return "none";
    case ErrorKind::BadRequest:
      return "bad_request";
    case ErrorKind::Transient:
      return "transient";
    case ErrorKind::Fatal:
      return "fatal";
  }
  return "unknown";
}

double Backend::cost() const {
  return (static_cast<double>(usage_.prompt_tokens.load()) * price_prompt_per_m +
          static_cast<double>(usage_.completion_tokens.load()) * price_completion_per_m) /
         1e6;
}

std::string usage_summary(const Backend& b) {
  const Usage& u = b.usage();
  const double tokens = static_cast<double>(u.prompt_tokens.load() + u.completion_tokens.load());
  std::string s = tokens >= 1e6   ? fmt::format("{:.2f}M tok", tokens / 1e6)
                  : tokens >= 1e3 ? fmt::format("{:.1f}k tok", tokens / 1e3)
                                  : fmt::format("{:.0f} tok", tokens);
  if (b.price_prompt_per_m > 0 || b.price_completion_per_m > 0)
    s += fmt::format(", ${:.2f}", b.cost());
  if (u.retries.load() > 0) s += fmt::format(", {} retries", u.retries.load());
  if (u.failed.load() > 0) s += fmt::format(", {} failed", u.failed.load());
  return s;
}

namespace {

void parse_price(const std::string& price, Backend& b) {
  if (price.empty()) return;
  const auto comma = price.find(',');
  if (comma == std::string::npos)
    fail("--price: expected PROMPT,COMPLETION dollars per million tokens, got '{}'", price);
  try {
    std::size_t used = 0;
    const std::string a = price.substr(0, comma), c = price.substr(comma + 1);
    b.price_prompt_per_m = std::stod(a, &used);
    if (used != a.size()) throw std::invalid_argument(a);
    b.price_completion_per_m = std::stod(c, &used);
    if (used != c.size()) throw std::invalid_argument(c);
  } catch (const std::exception&) {
    fail("--price: expected two numbers as PROMPT,COMPLETION, got '{}'", price);
  }
  if (b.price_prompt_per_m < 0 || b.price_completion_per_m < 0)
    fail("--price: prices must be >= 0");
}

// Type-checked field access for request bodies: errors name the field and the expected type.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number_field(const json& body, const char* name, double lo, double hi, double dflt) {
  const json* v = field(body, name);
  if (!v) return dflt;
  if (!v->is_number()) fail("'{}' must be a number, got {}", name, v->type_name());
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    fail("'{}' must be between {} and {}, got {}", name, lo, hi, x);
  return x;
}

int64_t int_field(const json& body, const char* name, int64_t lo, int64_t hi, int64_t dflt) {
  const json* v = field(body, name);
  if (!v) return dflt;
  if (!v->is_number_integer()) fail("'{}' must be an integer, got {}", name, v->type_name());
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) fail("'{}' must be between {} and {}, got {}", name, lo, hi, x);
  return x;
}

bool bool_field(const json& body, const char* name, bool dflt) {
  const json* v = field(body, name);
  if (!v) return dflt;
  if (!v->is_boolean()) fail("'{}' must be a boolean, got {}", name, v->type_name());
  return v->get<bool>();
}

std::string message_content(const json& m, std::size_t i) {
  const json* c = field(m, "content");
  if (!c) return "";
  if (c->is_string()) return c->get<std::string>();
  if (c->is_array()) {  // [{"type": "text", "text": "..."}]
    std::string out;
    for (const auto& part : *c) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
          !part["text"].is_string())
        fail(
            "'messages[{}].content': only text parts ({{\"type\": \"text\", \"text\": ...}}) are "
            "supported",
            i);
      out += part["text"].get<std::string>();
    }
    return out;
  }
  fail("'messages[{}].content' must be a string or an array of text parts, got {}", i,
       c->type_name());
}

}  // namespace

Request request_from_openai_json(const json& body, bool chat) {
  if (!body.is_object()) fail("the request body must be a JSON object, got {}", body.type_name());
  Request r;
  if (chat) {
    const json* msgs = field(body, "messages");
    if (!msgs) fail("'messages' is required");
    if (!msgs->is_array() || msgs->empty()) fail("'messages' must be a non-empty array");
    for (std::size_t i = 0; i < msgs->size(); ++i) {
      const json& m = (*msgs)[i];
      if (!m.is_object()) fail("'messages[{}]' must be an object", i);
      const json* role = field(m, "role");
      if (!role || !role->is_string()) fail("'messages[{}].role' must be a string", i);
      const std::string rs = role->get<std::string>();
      if (rs != "system" && rs != "user" && rs != "assistant" && rs != "developer")
        fail("'messages[{}].role' must be system, user or assistant, got '{}'", i, rs);
      r.messages.push_back({rs == "developer" ? "system" : rs, message_content(m, i)});
    }
  } else {
    const json* p = field(body, "prompt");
    if (!p) fail("'prompt' is required");
    if (p->is_string()) {
      r.prompt = p->get<std::string>();
    } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
      r.prompt = (*p)[0].get<std::string>();
    } else {
      fail("'prompt' must be a string (or an array of exactly one string)");
    }
  }
  Sampling& s = r.sampling;
  const char* max_name =
      chat && field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  // OpenAI's defaults: 16 tokens for completions; chat runs to the end of the context.
  s.max_tokens = static_cast<int>(int_field(body, max_name, 1, 1 << 24, chat ? 0 : 16));
  s.temperature = number_field(body, "temperature", 0, 2, 1.0);
  s.top_p = number_field(body, "top_p", 0, 1, 1.0);
  if (s.top_p <= 0) fail("'top_p' must be > 0");
  s.n = static_cast<int>(int_field(body, "n", 1, 128, 1));
  if (const json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) fail("'seed' must be an integer, got {}", seed->type_name());
    s.seed = static_cast<uint64_t>(seed->get<int64_t>());
  }
  if (const json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      s.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const auto& x : *stop) {
        if (!x.is_string()) fail("'stop' must be a string or an array of strings");
        s.stop.push_back(x.get<std::string>());
      }
    } else {
      fail("'stop' must be a string or an array of strings, got {}", stop->type_name());
    }
    for (const auto& x : s.stop)
      if (x.empty()) fail("'stop' strings must not be empty");
  }
  // Parameters we accept only at their neutral value (the engine has no such feature).
  for (const char* name : {"presence_penalty", "frequency_penalty"}) {
    if (number_field(body, name, -2, 2, 0) != 0) fail("'{}' is not supported (only 0)", name);
  }
  if (bool_field(body, "echo", false)) fail("'echo' is not supported");
  if (const json* lp = field(body, "logprobs")) {
    if (!(lp->is_boolean() && !lp->get<bool>())) fail("'logprobs' is not supported");
  }
  int_field(body, "best_of", 1, 1, 1);
  if (const json* m = field(body, "model"); m && !m->is_string()) fail("'model' must be a string");
  bool_field(body, "stream", false);
  return r;
}

std::unique_ptr<Backend> make_backend(const BackendOptions& opts) {
  std::unique_ptr<Backend> b;
  if (opts.kind == "openai") {
    b = std::make_unique<OpenAIBackend>(opts);
  } else if (opts.kind == "local") {
    b = std::make_unique<LocalBackend>(opts);
  } else {
    fail("unknown backend '{}': expected local or openai", opts.kind);
  }
  parse_price(opts.price, *b);
  return b;
}

}  // namespace metamath::llm
