#pragma once
// Data-parallel communication over PyTorch's c10d: a TCPStore rendezvous at MASTER_ADDR:MASTER_PORT
// and ProcessGroupGloo (CPU builds) for the collectives, configured from torchrun's environment
// (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK).
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace metamath::train {

struct DistEnv {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0, world_size = 1, local_rank = 0;
};

// torchrun's variables; nullopt when WORLD_SIZE is unset. Malformed or inconsistent values throw
// naming the variable.
std::optional<DistEnv> dist_env_from_environment();

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // In-place elementwise sum across ranks of each tensor (contiguous float tensors).
  virtual void allreduce_sum(std::vector<at::Tensor>& tensors) = 0;
  virtual void barrier() = 0;
};

// Connects to the group (rank 0 hosts the TCPStore). Throws when libmetamath was built without
// Gloo or the rendezvous times out.
std::unique_ptr<Comm> connect_gloo(const DistEnv& env,
                                   std::chrono::milliseconds timeout = std::chrono::minutes(5));

// Sums the grads of `params` across ranks, in flat buckets of at most bucket_bytes (grads must be
// defined).
void allreduce_grads(Comm& comm, const model::NamedTensors& params,
                     int64_t bucket_bytes = 25 << 20);

}  // namespace metamath::train
