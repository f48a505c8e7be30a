#include "core/shard.h"

#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/text.h"

namespace metamath {

namespace {

// Digits only (after trimming spaces), at most 6 of them: no sign, no overflow.
std::optional<int> parse_count(std::string_view s) {
  s = text::trim(s);
  if (s.empty() || s.size() > 6) return std::nullopt;
  int out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    out = out * 10 + (c - '0');
  }
  return out;
}

}  // namespace

Shard parse_shard(std::string_view flag) {
  std::size_t slash = flag.find('/');
  std::optional<int> index, count;
  if (slash != std::string_view::npos) {
    index = parse_count(flag.substr(0, slash));
    count = parse_count(flag.substr(slash + 1));
  }
  if (!index || !count || *count < 1 || *index >= *count)
    fail("--shard \"{}\": expected I/N with 0 <= I < N, e.g. 0/4", flag);
  return {*index, *count};
}

std::optional<int> nonnegative_int_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  std::string_view s(v);
  std::optional<int> x = text::trim(s) == s ? parse_count(s) : std::nullopt;  // taken as set
  if (!x) fail("environment variable {}='{}' is not a non-negative integer", name, v);
  return x;
}

std::optional<TorchrunEnv> torchrun_env() {
  std::optional<int> world = nonnegative_int_env("WORLD_SIZE");
  if (!world) return std::nullopt;
  std::optional<int> rank = nonnegative_int_env("RANK");
  std::optional<int> local_rank = nonnegative_int_env("LOCAL_RANK");
  if (!rank || *rank >= *world)
    fail("RANK={} WORLD_SIZE={}: expected 0 <= RANK < WORLD_SIZE (torchrun's environment)",
         rank ? std::to_string(*rank) : std::string("(unset)"), *world);
  return TorchrunEnv{*rank, *world, local_rank.value_or(0)};
}

Shard shard_from_env() {
  std::optional<TorchrunEnv> env;
  try {
    env = torchrun_env();
  } catch (const Error& e) {
    fail("{}, or pass --shard I/N", e.what());
  }
  if (!env) return {};
  return {env->rank, env->world_size};
}

Shard resolve_shard(std::string_view flag) {
  return flag.empty() ? shard_from_env() : parse_shard(flag);
}

}  // namespace metamath
