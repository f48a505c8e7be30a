#include "serve/server.h"

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/log.h"

namespace metamath::serve {

using nlohmann::json;

namespace {

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_id(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}-{:016x}", prefix, rng());
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// OpenAI's error object.
void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& param = "", const char* code = nullptr) {
  const char* type = status == 401   ? "authentication_error"
                     : status == 404 ? "not_found_error"
                     : status < 500  ? "invalid_request_error"
                                     : "server_error";
  json err{{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) err["param"] = param;
  if (code) err["code"] = code;
  send_json(res, status, json{{"error", err}});
}

int status_of(llm::ErrorKind k) {
  switch (k) {
    case llm::ErrorKind::BadRequest:
      return 400;
    case llm::ErrorKind::Transient:
      return 503;
    default:
      return 500;
  }
}

// Standard base64 (RFC 4648) of raw bytes: the embeddings endpoint's "encoding_format": "base64".
// Written here: 15 lines, and the packaged implementations are internal to other libraries.
std::string base64(const unsigned char* p, std::size_t n) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (std::size_t i = 0; i < n; i += 3) {
    const uint32_t b = (uint32_t(p[i]) << 16) | (i + 1 < n ? uint32_t(p[i + 1]) << 8 : 0) |
                       (i + 2 < n ? uint32_t(p[i + 2]) : 0);
    out += k[(b >> 18) & 63];
    out += k[(b >> 12) & 63];
    out += i + 1 < n ? k[(b >> 6) & 63] : '=';
    out += i + 2 < n ? k[b & 63] : '=';
  }
  return out;
}

json usage_json(int prompt, int completion) {
  return json{{"prompt_tokens", prompt},
              {"completion_tokens", completion},
              {"total_tokens", prompt + completion}};
}

// A streamed request's events, produced by the generating thread and written to the client by
// httplib's content provider.
struct Stream {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> events;  // complete "data: ...\n\n" lines
  bool done = false;
  bool started = false;  // a delta has been produced
  llm::Result result;
  std::thread worker;
};

// Debian's cpp-httplib is compiled with a listen backlog of 5, so a burst of new connections (a
// client opening 32 at once) overflows it and some fail after a SYN retransmit. Linux lets listen()
// be called again on a listening socket to raise the backlog; the socket is a protected member.
class HttpServer : public httplib::Server {
 public:
  void widen_backlog(int backlog) { ::listen(svr_sock_, backlog); }
};

}  // namespace

struct Server::Impl {
  llm::Backend& backend;
  ServeOptions opts;
  HttpServer http;
  std::string model;
  bool bound = false;
  int port = 0;
  // Graceful stop: new /v1 requests get 503 while in-flight ones (streams included) finish; only
  // then is httplib stopped (it would cut streams short).
  std::mutex drain_mu;
  std::condition_variable drained;
  int inflight = 0;
  bool draining = false;

  // Counts a request as in flight; false (after answering 503) once the server is draining.
  bool enter(httplib::Response& res) {
    std::lock_guard<std::mutex> lock(drain_mu);
    if (draining) {
      send_error(res, 503, "the server is shutting down");
      return false;
    }
    ++inflight;
    return true;
  }
  void leave() {
    std::lock_guard<std::mutex> lock(drain_mu);
    if (--inflight == 0) drained.notify_all();
  }
  // Leaves on scope exit unless released (a stream leaves when its last chunk is written).
  struct InFlight {
    Impl* impl;
    ~InFlight() {
      if (impl) impl->leave();
    }
  };

  Impl(llm::Backend& b, ServeOptions o) : backend(b), opts(std::move(o)) {
    model = opts.served_model_name.empty() ? backend.model_name() : opts.served_model_name;
    const int threads = std::max(1, opts.threads);
    http.new_task_queue = [threads] {
      return new httplib::ThreadPool(static_cast<size_t>(threads));
    };
    http.set_keep_alive_max_count(100000);
    http.set_keep_alive_timeout(30);
    http.set_payload_max_length(opts.max_body_bytes);
    http.set_tcp_nodelay(true);
    routes();
  }

  bool authorized(const httplib::Request& req) const {
    if (opts.api_key.empty()) return true;
    const std::string want = "Bearer " + opts.api_key;
    const std::string got = req.get_header_value("Authorization");
    // Constant-time comparison: the key must not leak through timing.
    if (got.size() != want.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
      diff |= static_cast<unsigned char>(got[i] ^ want[i]);
    return diff == 0;
  }

  // Parses the body as a JSON object; on failure answers 400 and returns false.
  static bool parse_body(const httplib::Request& req, httplib::Response& res, json& body) {
    body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) {
      send_error(res, 400, "the request body is not valid JSON");
      return false;
    }
    if (!body.is_object()) {
      send_error(res, 400,
                 fmt::format("the request body must be a JSON object, got {}", body.type_name()));
      return false;
    }
    return true;
  }

  bool check_model(const json& body, httplib::Response& res) const {
    auto it = body.find("model");
    if (it == body.end() || it->is_null()) return true;
    if (!it->is_string()) {
      send_error(res, 400, "'model' must be a string", "model");
      return false;
    }
    if (it->get<std::string>() != model) {
      send_error(res, 404,
                 fmt::format("the model '{}' does not exist; this server has '{}'",
                             it->get<std::string>(), model),
                 "model", "model_not_found");
      return false;
    }
    return true;
  }

  json choice_json(bool chat, int index, const llm::Choice& c) const {
    if (chat)
      return json{{"index", index},
                  {"message", {{"role", "assistant"}, {"content", c.text}}},
                  {"logprobs", nullptr},
                  {"finish_reason", c.finish_reason}};
    return json{{"index", index},
                {"text", c.text},
                {"logprobs", nullptr},
                {"finish_reason", c.finish_reason}};
  }

  std::string chunk(bool chat, const std::string& id, int64_t created, int index,
                    const json& delta_or_text, const json& finish_reason) const {
    json c{{"index", index}, {"logprobs", nullptr}, {"finish_reason", finish_reason}};
    if (chat)
      c["delta"] = delta_or_text;
    else
      c["text"] = delta_or_text;
    json j{{"id", id},
           {"object", chat ? "chat.completion.chunk" : "text_completion"},
           {"created", created},
           {"model", model},
           {"choices", json::array({c})}};
    return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
  }

  void completions(const httplib::Request& req, httplib::Response& res, bool chat) {
    if (!enter(res)) return;
    InFlight guard{this};
    json body;
    if (!parse_body(req, res, body) || !check_model(body, res)) return;
    llm::Request r;
    try {
      r = llm::request_from_openai_json(body, chat);
    } catch (const Error& e) {
      send_error(res, 400, e.what());
      return;
    }
    const bool stream = body.value("stream", false);
    const std::string id = random_id(chat ? "chatcmpl" : "cmpl");
    const int64_t created = now_seconds();
    if (!stream) {
      llm::Result result;
      backend.generate({r}, [&](llm::Result x) { result = std::move(x); });
      if (!result.ok()) {
        send_error(res, status_of(result.error_kind), result.error);
        return;
      }
      json choices = json::array();
      for (std::size_t i = 0; i < result.choices.size(); ++i)
        choices.push_back(choice_json(chat, static_cast<int>(i), result.choices[i]));
      send_json(res, 200,
                json{{"id", id},
                     {"object", chat ? "chat.completion" : "text_completion"},
                     {"created", created},
                     {"model", model},
                     {"choices", choices},
                     {"usage", usage_json(result.prompt_tokens, result.completion_tokens)}});
      return;
    }

    bool include_usage = false;
    if (auto so = body.find("stream_options"); so != body.end() && so->is_object())
      include_usage = so->value("include_usage", false);
    auto st = std::make_shared<Stream>();
    if (chat) {  // the first chunk carries the role
      for (int i = 0; i < r.sampling.n; ++i)
        st->events.push_back(
            chunk(true, id, created, i, json{{"role", "assistant"}, {"content", ""}}, nullptr));
    }
    r.on_delta = [this, st, chat, id, created](int index, const std::string& d) {
      if (d.empty()) return;
      std::string ev = chat ? chunk(true, id, created, index, json{{"content", d}}, nullptr)
                            : chunk(false, id, created, index, d, nullptr);
      {
        std::lock_guard<std::mutex> lock(st->mu);
        st->events.push_back(std::move(ev));
        st->started = true;
      }
      st->cv.notify_one();
    };
    st->worker =
        std::thread([this, st, r = std::move(r), chat, id, created, include_usage]() mutable {
          llm::Result result;
          try {
            backend.generate({r}, [&](llm::Result x) { result = std::move(x); });
          } catch (const std::exception& e) {
            result.error_kind = llm::ErrorKind::Fatal;
            result.error = e.what();
          }
          std::lock_guard<std::mutex> lock(st->mu);
          if (result.ok()) {
            for (std::size_t i = 0; i < result.choices.size(); ++i)
              st->events.push_back(chunk(chat, id, created, static_cast<int>(i),
                                         chat ? json::object() : json(""),
                                         result.choices[i].finish_reason));
            if (include_usage) {
              json u{{"id", id},
                     {"object", chat ? "chat.completion.chunk" : "text_completion"},
                     {"created", created},
                     {"model", model},
                     {"choices", json::array()},
                     {"usage", usage_json(result.prompt_tokens, result.completion_tokens)}};
              st->events.push_back(
                  "data: " + u.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
            }
          } else {
            json err{{"error",
                      {{"message", result.error}, {"type", "server_error"}, {"code", nullptr}}}};
            st->events.push_back("data: " + err.dump() + "\n\n");
          }
          st->events.push_back("data: [DONE]\n\n");
          st->result = std::move(result);
          st->done = true;
          st->cv.notify_one();
        });
    // Until the first token, a failure (e.g. a prompt that is too long) is still a plain 4xx/5xx.
    {
      std::unique_lock<std::mutex> lock(st->mu);
      st->cv.wait(lock, [&] { return st->started || st->done; });
      if (st->done && !st->started && !st->result.ok()) {
        lock.unlock();
        st->worker.join();
        send_error(res, status_of(st->result.error_kind), st->result.error);
        return;
      }
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [st](size_t, httplib::DataSink& sink) {
          std::deque<std::string> out;
          bool done;
          {
            std::unique_lock<std::mutex> lock(st->mu);
            st->cv.wait(lock, [&] { return !st->events.empty() || st->done; });
            out.swap(st->events);
            done = st->done;
          }
          for (const auto& ev : out)
            if (!sink.write(ev.data(), ev.size())) return false;  // client went away
          if (done) sink.done();
          return true;
        },
        [this, st](bool) {
          if (st->worker.joinable()) st->worker.join();
          leave();
        });
    guard.impl = nullptr;  // the releaser above leaves
  }

  void embeddings(const httplib::Request& req, httplib::Response& res) {
    if (!enter(res)) return;
    InFlight guard{this};
    json body;
    if (!parse_body(req, res, body) || !check_model(body, res)) return;
    std::vector<std::string> texts;
    auto in = body.find("input");
    if (in == body.end() || in->is_null())
      return send_error(res, 400, "'input' is required", "input");
    if (in->is_string()) {
      texts.push_back(in->get<std::string>());
    } else if (in->is_array() && !in->empty()) {
      for (const auto& x : *in) {
        if (!x.is_string())
          return send_error(
              res, 400,
              "'input' must be a string or an array of strings (token arrays are not supported)",
              "input");
        texts.push_back(x.get<std::string>());
      }
    } else {
      return send_error(res, 400, "'input' must be a string or a non-empty array of strings",
                        "input");
    }
    std::string format = "float";
    if (auto f = body.find("encoding_format"); f != body.end() && !f->is_null()) {
      if (!f->is_string() ||
          (f->get<std::string>() != "float" && f->get<std::string>() != "base64"))
        return send_error(res, 400, "'encoding_format' must be \"float\" or \"base64\"",
                          "encoding_format");
      format = f->get<std::string>();
    }
    if (auto d = body.find("dimensions"); d != body.end() && !d->is_null())
      return send_error(res, 400, "'dimensions' is not supported", "dimensions");
    std::vector<std::vector<float>> vecs;
    const uint64_t before = backend.usage().prompt_tokens.load();
    try {
      vecs = backend.embed(texts);
    } catch (const Error& e) {
      return send_error(res, 400, e.what(), "input");
    }
    const int tokens = static_cast<int>(backend.usage().prompt_tokens.load() - before);
    json data = json::array();
    for (std::size_t i = 0; i < vecs.size(); ++i) {
      json e{{"object", "embedding"}, {"index", i}};
      if (format == "base64")
        e["embedding"] = base64(reinterpret_cast<const unsigned char*>(vecs[i].data()),
                                vecs[i].size() * sizeof(float));
      else
        e["embedding"] = vecs[i];
      data.push_back(std::move(e));
    }
    send_json(res, 200,
              json{{"object", "list"},
                   {"data", data},
                   {"model", model},
                   {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
  }

  void routes() {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.path.rfind("/v1/", 0) == 0 && !authorized(req)) {
        send_error(res, 401, "missing or incorrect API key (send 'Authorization: Bearer KEY')", "",
                   "invalid_api_key");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, json{{"status", "ok"}});
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json m{
          {"id", model}, {"object", "model"}, {"created", now_seconds()}, {"owned_by", "metamath"}};
      if (backend.context_length() > 0) m["max_model_len"] = backend.context_length();
      send_json(res, 200, json{{"object", "list"}, {"data", json::array({m})}});
    });
    http.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) {
      completions(q, r, false);
    });
    http.Post("/v1/chat/completions",
              [this](const httplib::Request& q, httplib::Response& r) { completions(q, r, true); });
    http.Post("/v1/embeddings",
              [this](const httplib::Request& q, httplib::Response& r) { embeddings(q, r); });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;  // a handler already wrote an error object
      if (res.status == 404)
        send_error(res, 404, fmt::format("no route for {} {}", req.method, req.path));
      else if (res.status == 413)
        send_error(res, 413, "the request body is too large");
      else if (res.status >= 400)
        send_error(res, res.status, fmt::format("HTTP {}", res.status));
    });
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "internal error";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          log::error("serve: request failed: {}", what);
          send_error(res, 500, what);
        });
  }
};

Server::Server(llm::Backend& backend, ServeOptions opts)
    : impl_(std::make_unique<Impl>(backend, std::move(opts))) {}

Server::~Server() { stop(); }

int Server::bind() {
  if (impl_->bound) return impl_->port;
  const auto& o = impl_->opts;
  if (o.port == 0) {
    impl_->port = impl_->http.bind_to_any_port(o.host);
    if (impl_->port < 0) fail("serve: cannot bind to {} (any port)", o.host);
  } else {
    if (!impl_->http.bind_to_port(o.host, o.port))
      fail("serve: cannot bind to {}:{} ({}); is another server running there?", o.host, o.port,
           std::strerror(errno));
    impl_->port = o.port;
  }
  impl_->http.widen_backlog(SOMAXCONN);
  impl_->bound = true;
  return impl_->port;
}

void Server::run() {
  bind();
  impl_->http.listen_after_bind();
}

void Server::stop() {
  {
    std::unique_lock<std::mutex> lock(impl_->drain_mu);
    impl_->draining = true;
    impl_->drained.wait(lock, [&] { return impl_->inflight == 0; });
  }
  impl_->http.stop();
}

namespace {
int g_signal_pipe[2] = {-1, -1};
// Async-signal-safe: only write(2) the signal number into the self-pipe.
void on_signal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = write(g_signal_pipe[1], &b, 1);
}
}  // namespace

void serve_main(ServeJob job) {
  if (job.server.api_key.empty())
    if (const char* k = std::getenv("METAMATH_SERVE_API_KEY")) job.server.api_key = k;
  if (job.backend.model.empty()) fail("serve: --model is required");
  auto backend = llm::make_backend(job.backend);
  Server server(*backend, job.server);
  const int port = server.bind();

  // SIGTERM/SIGINT only write to a pipe; a watcher thread turns that into a graceful stop (stop
  // accepting, finish in-flight requests), so no real work runs inside a signal handler.
  if (pipe(g_signal_pipe) != 0) fail("serve: pipe() failed: {}", std::strerror(errno));
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::thread watcher([&] {
    unsigned char sig = 0;
    if (read(g_signal_pipe[0], &sig, 1) != 1 || sig == 0) return;  // 0: the server ended itself
    std::fprintf(stderr, "metamath serve: %s received, finishing in-flight requests\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server.stop();
  });
  std::fprintf(
      stderr, "metamath serve: listening on http://%s:%d (model %s)\n", job.server.host.c_str(),
      port,
      (job.server.served_model_name.empty() ? backend->model_name() : job.server.served_model_name)
          .c_str());
  std::fflush(stderr);
  server.run();
  const unsigned char zero = 0;
  [[maybe_unused]] const ssize_t n = write(g_signal_pipe[1], &zero, 1);
  watcher.join();
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  std::fprintf(stderr, "metamath serve: stopped\n");
}

}  // namespace metamath::serve
