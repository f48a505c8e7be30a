// `metamath serve`: an OpenAI-compatible server over a model folder (or any backend).
#include "cli/backend_flags.h"
#include "cli/commands.h"
#include "core/log.h"
#include "serve/server.h"

namespace metamath::cli {

void register_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "serve",
      "Serve a model over an OpenAI-compatible HTTP API: GET /health, GET /v1/models, POST "
      "/v1/completions, /v1/chat/completions (\"stream\": true for server-sent events) and "
      "/v1/embeddings. Concurrent requests are batched together. SIGTERM or Ctrl-C stops accepting "
      "and finishes in-flight requests.");
  auto job = std::make_shared<serve::ServeJob>();
  add_backend_flags(cmd, job->backend, /*with_api_key=*/false);
  cmd->add_option("--host", job->server.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", job->server.port, "port to listen on (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option(
      "--api-key", job->server.api_key,
      "require 'Authorization: Bearer KEY' on /v1/* (default: $METAMATH_SERVE_API_KEY); "
      "with --backend openai the upstream key comes from $OPENAI_API_KEY");
  cmd->add_option("--served-model-name", job->server.served_model_name,
                  "model id clients must use (default: the model folder's name)");
  cmd->add_option("--threads", job->server.threads, "HTTP worker threads (one per open connection)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->callback([job]() {
    log::init();
    serve::serve_main(*job);
  });
}

const Registration kRegisterServe{70, register_serve};

}  // namespace metamath::cli
