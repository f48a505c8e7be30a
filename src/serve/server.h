#pragma once
// `metamath serve`: an OpenAI-compatible HTTP server over any llm::Backend (cpp-httplib).
//
// Endpoints: GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions (both
// with "stream": true as server-sent events), POST /v1/embeddings. Concurrent requests share the
// backend (the local backend batches them together). Bad input — malformed JSON, known fields of
// the wrong type or range, over-long prompts, unknown models — gets a 4xx with an OpenAI-style
// error object ({"error": {"message", "type", "param", "code"}}), never a crash. With an API key,
// /v1/* answers 401 unless "Authorization: Bearer KEY" is sent. stop() is graceful: the listening
// socket closes and in-flight requests finish.
#include <cstddef>
#include <memory>
#include <string>

#include "llm/backend.h"

namespace metamath::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                // 0: any free port (see Server::bind)
  std::string api_key;            // empty: no authentication
  std::string served_model_name;  // default: the backend's model_name()
  int threads = 512;              // HTTP worker threads (one per open connection)
  std::size_t max_body_bytes = 32u << 20;
};

class Server {
 public:
  Server(llm::Backend& backend, ServeOptions opts);
  ~Server();
  // Binds the listening socket; returns the port (useful with port 0). Throws on failure.
  int bind();
  // Serves until stop(); binds first when bind() was not called.
  void run();
  // Thread-safe: stop accepting, let in-flight requests finish, make run() return.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

struct ServeJob {
  llm::BackendOptions backend;
  ServeOptions server;
};
// The CLI's job: check it (a model is required; the API key defaults to
// $METAMATH_SERVE_API_KEY), make the backend, serve until SIGTERM/SIGINT, then finish in-flight
// requests and exit. Prints "metamath serve: listening on http://HOST:PORT" (to stderr) once
// ready.
void serve_main(ServeJob job);

}  // namespace metamath::serve
