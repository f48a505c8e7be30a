// Bootstrap pipeline throughput and assembly memory.
//
//   bootstrap_bench [problems]      (default 2000)
//
// 1. The pipeline alone (job store + verification + follow-ups) against an in-process backend
//    that answers instantly: completed requests per second.
// 2. The same through the real openai HTTP backend against an instant local endpoint.
// 3. Peak memory added by assembling 400K records.
// Goal: the pipeline is never the bottleneck (>= 1,000 completed requests/s).
#include <fmt/format.h>
#include <httplib.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "bootstrap/assemble.h"
#include "bootstrap/bootstrap.h"
#include "core/jsonl.h"
#include "llm/backend.h"

using namespace metamath;
namespace fs = std::filesystem;

namespace {

std::string answer_for(const std::string& prompt, uint64_t id, int c) {
  if (prompt.rfind("Rewrite each question", 0) == 0)
    return fmt::format(" A question about {} apples, number {}?", id, c);
  if (prompt.rfind("Combine each question", 0) == 0)
    return fmt::format(" Sam had x apples and ended with 42, case {}.", id);
  if (prompt.rfind("Each question below", 0) == 0)
    return " 1.5x = 63, so x = 42.\nThe value of x is 42.\nThe answer is: 42";
  return " Sam has 12 + 30 = 42 apples.\nThe answer is: 42";
}

class InstantBackend : public llm::Backend {
 public:
  void generate(const std::vector<llm::Request>& reqs, const llm::ResultCallback& cb) override {
    for (const auto& r : reqs) {
      llm::Result res;
      res.id = r.id;
      for (int c = 0; c < r.sampling.n; ++c)
        res.choices.push_back({answer_for(r.prompt, r.id, c), "stop"});
      res.prompt_tokens = 100;
      res.completion_tokens = 20 * r.sampling.n;
      cb(std::move(res));
    }
  }
  std::vector<std::vector<float>> embed(const std::vector<std::string>&) override { return {}; }
  std::string model_name() const override { return "instant"; }
};

std::vector<data::Problem> problems(std::size_t n) {
  std::vector<data::Problem> ps(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& p = ps[i];
    p.id = fmt::format("bench/{}", i);
    p.style = "gsm8k";
    p.question = fmt::format(
        "Sam has {} apples and buys {} more, then gives away {}. How many apples "
        "does he have now?",
        12 + i, 30, i);
    p.answer = "42";
  }
  return ps;
}

double run(llm::Backend& be, const fs::path& dir, std::size_t n, uint64_t* requests) {
  fs::remove_all(dir);
  bootstrap::Bootstrap b(dir);
  b.initialize(problems(n), bootstrap::Options{},
               bootstrap::load_prompts(bootstrap::default_prompts_dir()));
  bootstrap::Bootstrap::RunOptions ro;
  ro.progress = false;
  auto t0 = std::chrono::steady_clock::now();
  bootstrap::Stats st = b.run(be, ro);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  *requests = st.total().done;
  return s;
}

long max_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = argc > 1 ? std::stoul(argv[1]) : 2000;
  fs::path tmp = fs::temp_directory_path() / "metamath_bootstrap_bench";
  fs::create_directories(tmp);

  InstantBackend inst;
  uint64_t reqs = 0;
  double s = run(inst, tmp / "inproc", n, &reqs);
  fmt::print("pipeline, in-process instant backend: {} requests in {:.2f} s = {:.0f} requests/s\n",
             reqs, s, static_cast<double>(reqs) / s);

  httplib::Server svr;
  // One server thread per client connection: keep-alive connections each hold a thread.
  svr.new_task_queue = [] { return new httplib::ThreadPool(80); };
  svr.Post("/v1/completions", [](const httplib::Request& req, httplib::Response& res) {
    json b = json::parse(req.body);
    int nn = b.value("n", 1);
    json out = {{"choices", json::array()},
                {"usage", {{"prompt_tokens", 100}, {"completion_tokens", 20 * nn}}}};
    std::string prompt = b["prompt"];
    for (int c = 0; c < nn; ++c)
      out["choices"].push_back({{"index", c},
                                {"text", answer_for(prompt, std::hash<std::string>{}(prompt), c)},
                                {"finish_reason", "stop"}});
    res.set_content(out.dump(), "application/json");
  });
  int port = svr.bind_to_any_port("127.0.0.1");
  std::thread th([&] { svr.listen_after_bind(); });
  while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  llm::BackendOptions bo;
  bo.kind = "openai";
  bo.base_url = fmt::format("http://127.0.0.1:{}/v1", port);
  bo.model = "instant";
  bo.api_key = "x";
  bo.concurrency = 64;
  auto http = llm::make_backend(bo);
  s = run(*http, tmp / "http", n, &reqs);
  fmt::print(
      "pipeline, openai HTTP backend, instant local endpoint: {} requests in {:.2f} s = "
      "{:.0f} requests/s\n",
      reqs, s, static_cast<double>(reqs) / s);
  svr.stop();
  th.join();

  // 400K-record assembly.
  fs::path recs = tmp / "records.jsonl";
  {
    JsonlWriter w(recs);
    std::string pad(300, 'a');
    for (std::size_t i = 0; i < 400000; ++i)
      w.write(
          {{"query", fmt::format("Question {} about {} apples? {}", i / 8, i, pad.substr(0, 120))},
           {"response",
            fmt::format("Step one {}. Step two {}.\n{}\nThe answer is: {}", i, i * 7, pad, i)},
           {"type", i % 2 ? "GSM_AnsAug" : "MATH_SV"},
           {"original_question", fmt::format("Question {} about apples?", i / 8)}});
    w.commit();
  }
  long before = max_rss_kb();
  bootstrap::AssembleOptions ao;
  ao.inputs = {recs};
  ao.out = tmp / "mmqa.jsonl";
  auto t0 = std::chrono::steady_clock::now();
  auto rep = bootstrap::assemble(ao);
  double as = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  long after = max_rss_kb();
  fmt::print(
      "assemble 400K records ({:.0f} MB): {:.1f} s, {} kept, peak RSS {:.0f} MB "
      "(+{:.0f} MB over the process before)\n",
      static_cast<double>(fs::file_size(recs)) / 1e6, as, rep.total().kept,
      static_cast<double>(after) / 1024.0, static_cast<double>(after - before) / 1024.0);
  fs::remove_all(tmp);
  return 0;
}
