#include "train/distributed.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdlib>

#include "core/error.h"
#include "core/shard.h"

#ifdef METAMATH_HAVE_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace metamath::train {

namespace {

#ifdef METAMATH_HAVE_GLOO
class GlooComm : public Comm {
 public:
  GlooComm(const DistEnv& env, std::chrono::milliseconds timeout) : env_(env) {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<std::size_t>(env.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(
          env.master_addr == "localhost" ? "127.0.0.1" : local_address(env)));
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, env.rank, env.world_size, opts);
    } catch (const std::exception& e) {
      fail("distributed: cannot join the group at {}:{} as rank {} of {}: {}", env.master_addr,
           env.master_port, env.rank, env.world_size, e.what());
    }
  }
  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  void allreduce_sum(std::vector<at::Tensor>& tensors) override {
    if (tensors.empty()) return;
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    pg_->allreduce(tensors, o)->wait();
  }
  void barrier() override { pg_->barrier()->wait(); }

 private:
  // The address this process binds Gloo to: METAMATH_GLOO_HOST when set, else loopback for a
  // loopback master, else this machine's hostname.
  static std::string local_address(const DistEnv& env) {
    if (const char* h = std::getenv("METAMATH_GLOO_HOST"); h && *h) return h;
    if (env.master_addr.rfind("127.", 0) == 0) return "127.0.0.1";
    char name[256] = {0};
    if (gethostname(name, sizeof name - 1) == 0 && name[0]) return name;
    return "127.0.0.1";
  }
  DistEnv env_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
};
#endif

}  // namespace

std::optional<DistEnv> dist_env_from_environment() {
  std::optional<TorchrunEnv> torchrun = torchrun_env();  // RANK, WORLD_SIZE, LOCAL_RANK
  if (!torchrun) return std::nullopt;
  DistEnv e;
  e.rank = torchrun->rank;
  e.world_size = torchrun->world_size;
  e.local_rank = torchrun->local_rank;
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = nonnegative_int_env("MASTER_PORT").value_or(29500);
  if (e.master_port <= 0 || e.master_port > 65535)
    fail("MASTER_PORT={} is not a TCP port", e.master_port);
  return e;
}

std::unique_ptr<Comm> connect_gloo(const DistEnv& env, std::chrono::milliseconds timeout) {
#ifdef METAMATH_HAVE_GLOO
  return std::make_unique<GlooComm>(env, timeout);
#else
  (void)timeout;
  fail(
      "distributed training (WORLD_SIZE={}) needs Gloo: this metamath was built without the gloo "
      "headers (install libgloo-dev and rebuild)",
      env.world_size);
#endif
}

void allreduce_grads(Comm& comm, const model::NamedTensors& params, int64_t bucket_bytes) {
  if (comm.world_size() <= 1) return;
  at::NoGradGuard no_grad;
  std::size_t i = 0;
  while (i < params.size()) {
    std::vector<at::Tensor> grads;
    int64_t bytes = 0;
    while (i < params.size()) {
      const at::Tensor& g = params[i].second.grad();
      if (!g.defined()) fail("allreduce: parameter '{}' has no gradient", params[i].first);
      const int64_t b = g.numel() * g.element_size();
      if (!grads.empty() && bytes + b > bucket_bytes) break;
      grads.push_back(g);
      bytes += b;
      ++i;
    }
    std::vector<at::Tensor> flat{at::cat(
        [&] {
          std::vector<at::Tensor> v;
          for (auto& g : grads) v.push_back(g.reshape({-1}));
          return v;
        }(),
        0)};
    comm.allreduce_sum(flat);
    int64_t off = 0;
    for (auto& g : grads) {
      const_cast<at::Tensor&>(g).copy_(flat[0].narrow(0, off, g.numel()).view_as(g));
      off += g.numel();
    }
  }
}

}  // namespace metamath::train
