#pragma once
// Which instruction sets our hand-written kernels may use, decided at run time.
//
// The machines this project runs on differ (AVX2-only Zen 3, AVX-512 Zen 4, anything x86-64), so
// every kernel with a vector path (model::linear's small-M GEMM, in-place attention, the fused
// AdamW) asks kernel_isa() which path to take on each call, never a compile-time flag. The answer
// is the best level the CPU has, lowered by a limit:
//   - METAMATH_ISA=scalar|avx2|avx512 in the environment (read once, at first use), or
//   - set_kernel_isa_limit() (tests use it to run the same checks through each path).
// A limit above what the CPU has is ignored (the CPU level wins).
#include <cstdint>
#include <string>

namespace metamath {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

// The best level this CPU supports: avx2 = AVX2 + FMA; avx512 = that plus AVX-512 F/BW/VL/DQ.
Isa cpu_isa();
// What kernels should use now: min(cpu_isa(), limit).
Isa kernel_isa();
// Sets the limit (process-wide; takes effect on the next kernel call). Returns the previous one.
Isa set_kernel_isa_limit(Isa limit);
// RAII form for tests: limits kernels to `limit` for this scope.
class ScopedIsaLimit {
 public:
  explicit ScopedIsaLimit(Isa limit) : previous_(set_kernel_isa_limit(limit)) {}
  ~ScopedIsaLimit() { set_kernel_isa_limit(previous_); }
  ScopedIsaLimit(const ScopedIsaLimit&) = delete;
  ScopedIsaLimit& operator=(const ScopedIsaLimit&) = delete;

 private:
  Isa previous_;
};

// "scalar", "avx2", "avx512"; parse_isa throws metamath::Error on anything else.
const char* isa_name(Isa isa);
Isa parse_isa(const std::string& name);
// The CPU flags that decide our kernels and libtorch's (oneDNN bf16 needs AVX-512 BW/VL/DQ), as
// one line: "avx2 fma avx512f avx512bw avx512vl avx512dq avx512_bf16 avx512_vnni amx_int8" (absent
// flags left out).
std::string cpu_flags_line();

// Extensions beyond the levels above, asked for by the kernels that use them (each only when
// kernel_isa() is avx512): AVX512_BF16 (vdpbf16ps: bf16 pairs multiplied into f32 sums) and
// AVX512_VNNI (int8 dot products).
bool cpu_has_avx512_bf16();
bool cpu_has_avx512_vnni();
// AMX (Sapphire Rapids and later): the CPU's flags (cpuid leaf 7: AMX-TILE with AMX-INT8 or
// AMX-BF16), and whether this process may use the tiles: Linux hands out the tile state only on
// request (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA), made once, at the first call,
// and cached. A kernel uses the tiles only when both say yes (each thread still loads its own
// tile configuration and releases it when done).
bool cpu_has_amx_int8();
bool cpu_has_amx_bf16();
bool amx_tiles_permitted();
// Configures this thread's AMX tiles 0-7 (palette 1): tile t has rows[t] rows of colsb[t] bytes.
// Every thread that runs tile instructions loads a configuration first and releases the tile
// state when done (release_amx_tiles). Needs amx_tiles_permitted().
void load_amx_tiles(const uint8_t (&rows)[8], const uint16_t (&colsb)[8]);
void release_amx_tiles();
// The CPU's model as its brand string says (cpuid 0x80000002-4, spaces trimmed), e.g.
// "Intel(R) Xeon(R) Processor" or "AMD EPYC 9R14 96-Core Processor"; "unknown" when absent.
std::string cpu_model_name();

// Physical cores this process may run on: the CPUs of its affinity mask, counting hyper-threads
// of one core once (sysfs topology; every CPU counts as a core where that is unreadable).
int physical_cores();
// The intra-op thread count the command-line program gives libtorch: $METAMATH_THREADS when set
// (a positive integer, else an error naming it), else physical_cores(). libtorch's own default
// is half the logical CPUs (1 on a 2-core VM without hyper-threads), which left every command on
// one core.
int default_threads();

}  // namespace metamath
