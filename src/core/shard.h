#pragma once
// Which part of a job this process does, from a `--shard I/N` flag or torchrun's environment.
// `metamath bootstrap`, `metamath eval` and `metamath train` all read them here, by one set of
// rules:
//
//   --shard I/N   two decimal integers (digits only, at most 6 each, spaces around them allowed)
//                 with 0 <= I < N. Anything else throws
//                   --shard "S": expected I/N with 0 <= I < N, e.g. 0/4
//   environment   torchrun's WORLD_SIZE, RANK and LOCAL_RANK. WORLD_SIZE unset or empty means
//                 "not launched by torchrun" (the whole job, rank 0 of 1); RANK and LOCAL_RANK
//                 are then ignored. When WORLD_SIZE is set:
//                   - each of the three that is set must be a decimal integer >= 0 (digits only,
//                     at most 6), else: environment variable NAME='V' is not a non-negative integer
//                   - RANK must be set and 0 <= RANK < WORLD_SIZE, else:
//                     RANK=R WORLD_SIZE=W: expected 0 <= RANK < WORLD_SIZE (torchrun's environment)
//                     (R is "(unset)" when RANK is missing)
//                   - LOCAL_RANK defaults to 0.
//   precedence    a non-empty --shard wins over the environment (resolve_shard).
//
// Item i of a list belongs to shard `index` when i % count == index (Shard::owns).
#include <cstddef>
#include <optional>
#include <string_view>

namespace metamath {

struct Shard {
  int index = 0, count = 1;
  bool whole() const { return count == 1; }
  bool owns(std::size_t item) const {
    return item % static_cast<std::size_t>(count) == static_cast<std::size_t>(index);
  }
};

// torchrun's process coordinates.
struct TorchrunEnv {
  int rank = 0, world_size = 1, local_rank = 0;
};

// "2/8" -> {2, 8}; throws on anything else (see the rules above).
Shard parse_shard(std::string_view flag);

// WORLD_SIZE, RANK, LOCAL_RANK; nullopt when WORLD_SIZE is unset or empty. Throws on malformed or
// inconsistent values, naming the variable.
std::optional<TorchrunEnv> torchrun_env();

// {RANK, WORLD_SIZE} when launched by torchrun, else the whole job. Its errors end with
// ", or pass --shard I/N".
Shard shard_from_env();

// parse_shard(flag) when flag is non-empty, else shard_from_env().
Shard resolve_shard(std::string_view flag);

// An environment variable that must hold a decimal integer >= 0 (digits only, at most 6): nullopt
// when unset or empty; throws "environment variable NAME='V' is not a non-negative integer".
std::optional<int> nonnegative_int_env(const char* name);

}  // namespace metamath
