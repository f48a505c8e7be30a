#include "core/cpu.h"

#include <cpuid.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>

#include "core/error.h"

namespace metamath {

namespace {

std::atomic<int> limit{-1};  // -1: not read from the environment yet

int env_limit() {
  const char* env = std::getenv("METAMATH_ISA");
  if (!env || !*env) return static_cast<int>(Isa::avx512);
  try {
    return static_cast<int>(parse_isa(env));
  } catch (const Error&) {
    fail("METAMATH_ISA={}: expected scalar, avx2 or avx512", env);
  }
}

}  // namespace

Isa cpu_isa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return Isa::scalar;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
      return Isa::avx512;
    return Isa::avx2;
  }();
  return isa;
}

Isa kernel_isa() {
  int l = limit.load(std::memory_order_relaxed);
  if (l < 0) {
    int expected = -1;
    limit.compare_exchange_strong(expected, env_limit());
    l = limit.load(std::memory_order_relaxed);
  }
  return static_cast<Isa>(std::min(l, static_cast<int>(cpu_isa())));
}

Isa set_kernel_isa_limit(Isa new_limit) {
  kernel_isa();  // reads the environment first, so the previous value is well defined
  return static_cast<Isa>(limit.exchange(static_cast<int>(new_limit)));
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (name == isa_name(i)) return i;
  fail("unknown instruction-set level '{}': expected scalar, avx2 or avx512", name);
}

std::string cpu_flags_line() {
  __builtin_cpu_init();
  std::string line;
  auto add = [&](const char* name, bool have) {
    if (!have) return;
    if (!line.empty()) line += ' ';
    line += name;
  };
  add("avx2", __builtin_cpu_supports("avx2"));
  add("fma", __builtin_cpu_supports("fma"));
  add("avx512f", __builtin_cpu_supports("avx512f"));
  add("avx512bw", __builtin_cpu_supports("avx512bw"));
  add("avx512vl", __builtin_cpu_supports("avx512vl"));
  add("avx512dq", __builtin_cpu_supports("avx512dq"));
  add("avx512_bf16", cpu_has_avx512_bf16());
  add("avx512_vnni", cpu_has_avx512_vnni());
  add("amx_int8", cpu_has_amx_int8());
  return line.empty() ? "(no AVX2)" : line;
}

bool cpu_has_avx512_bf16() {
  static const bool yes = [] {
    // CPUID leaf 7, sub-leaf 1, EAX bit 5 (GCC 12's __builtin_cpu_supports("avx512bf16") reads
    // the same bit).
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return (a & (1u << 5)) != 0 && __builtin_cpu_supports("avx512f");
  }();
  return yes;
}

bool cpu_has_avx512_vnni() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512f");
  }();
  return yes;
}

namespace {

// CPUID leaf 7, sub-leaf 0, EDX bit `bit` (22: AMX-BF16, 24: AMX-TILE, 25: AMX-INT8).
bool leaf7_edx(unsigned bit) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << bit)) != 0;
}

constexpr int kArchReqXcompPerm = 0x1023;  // arch_prctl: ask for an XSAVE feature
constexpr int kXfeatureXtiledata = 18;     // the AMX tile data

}  // namespace

bool cpu_has_amx_int8() {
  static const bool yes = leaf7_edx(24) && leaf7_edx(25);
  return yes;
}

bool cpu_has_amx_bf16() {
  static const bool yes = leaf7_edx(24) && leaf7_edx(22);
  return yes;
}

bool amx_tiles_permitted() {
  static const bool yes =
      leaf7_edx(24) && syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  return yes;
}

namespace {

// The 64-byte operand of ldtilecfg.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

}  // namespace

// (Not _tile_loadconfig: GCC 12's version tells the compiler it reads 8 bytes, so the rest of the
// configuration's stores could be dropped as dead.)
__attribute__((target("amx-tile"))) void load_amx_tiles(const uint8_t (&rows)[8],
                                                        const uint16_t (&colsb)[8]) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = rows[t];
    cfg.colsb[t] = colsb[t];
  }
  __asm__ volatile("ldtilecfg %0" ::"m"(cfg) : "memory");
}

__attribute__((target("amx-tile"))) void release_amx_tiles() {
  __asm__ volatile("tilerelease" ::: "memory");
}

std::string cpu_model_name() {
  unsigned regs[12] = {};
  if (__get_cpuid_max(0x80000000u, nullptr) < 0x80000004u) return "unknown";
  for (unsigned i = 0; i < 3; ++i)
    __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                &regs[4 * i + 3]);
  char brand[49] = {};
  std::memcpy(brand, regs, 48);
  std::string s = brand;
  const size_t first = s.find_first_not_of(' ');
  if (first == std::string::npos) return "unknown";
  s = s.substr(first, s.find_last_not_of(' ') - first + 1);
  return s.empty() ? "unknown" : s;
}

int physical_cores() {
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof(mask), &mask) != 0) return 1;
  std::set<std::string> cores;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &mask)) continue;
    std::ifstream f("/sys/devices/system/cpu/cpu" + std::to_string(cpu) +
                    "/topology/thread_siblings_list");
    std::string siblings;
    cores.insert(f && std::getline(f, siblings) ? siblings : "cpu" + std::to_string(cpu));
  }
  return std::max<int>(1, static_cast<int>(cores.size()));
}

int default_threads() {
  const char* e = std::getenv("METAMATH_THREADS");
  if (!e || !*e) return physical_cores();
  char* end = nullptr;
  const long n = std::strtol(e, &end, 10);
  if (*end != '\0' || n < 1 || n > 4096)
    fail("METAMATH_THREADS='{}': expected a positive number of threads", e);
  return static_cast<int>(n);
}

}  // namespace metamath
