// core/cpu.h: parsing and naming of instruction-set levels, the kernel limit clamped to what the
// CPU has, ScopedIsaLimit restoring the previous limit, METAMATH_ISA read from the environment
// (in a fresh child process, since the variable is read once per process), and the flags line.
#include "core/cpu.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "core/error.h"
#include "test_util.h"

namespace metamath {
namespace {

constexpr Isa kAll[] = {Isa::scalar, Isa::avx2, Isa::avx512};

TEST(Cpu, IsaNamesRoundTrip) {
  EXPECT_STREQ(isa_name(Isa::scalar), "scalar");
  EXPECT_STREQ(isa_name(Isa::avx2), "avx2");
  EXPECT_STREQ(isa_name(Isa::avx512), "avx512");
  for (Isa i : kAll) EXPECT_EQ(parse_isa(isa_name(i)), i);
}

TEST(Cpu, ParseIsaRejectsOtherNames) {
  for (const char* bad : {"", "AVX2", "avx", "avx-512", "sse4.2", "avx512 ", " scalar"}) {
    const std::string msg = testing::error_of([&] { parse_isa(bad); });
    EXPECT_NE(msg, "(no error)") << "'" << bad << "'";
    EXPECT_NE(msg.find("'" + std::string(bad) + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected scalar, avx2 or avx512"), std::string::npos) << msg;
  }
  EXPECT_THROW(parse_isa("avx1024"), Error);
}

TEST(Cpu, KernelIsaIsTheLimitClampedToTheCpu) {
  const Isa cpu = cpu_isa();
  const Isa saved = set_kernel_isa_limit(Isa::avx512);
  for (Isa limit : kAll) {
    set_kernel_isa_limit(limit);
    const Isa want = static_cast<int>(limit) < static_cast<int>(cpu) ? limit : cpu;
    EXPECT_EQ(kernel_isa(), want) << "limit " << isa_name(limit) << ", cpu " << isa_name(cpu);
  }
  // set_kernel_isa_limit returns the previous limit (not the clamped level).
  set_kernel_isa_limit(Isa::avx512);
  EXPECT_EQ(set_kernel_isa_limit(Isa::scalar), Isa::avx512);
  EXPECT_EQ(set_kernel_isa_limit(saved), Isa::scalar);
}

TEST(Cpu, ScopedIsaLimitRestores) {
  const Isa before = kernel_isa();
  {
    ScopedIsaLimit outer(Isa::scalar);
    EXPECT_EQ(kernel_isa(), Isa::scalar);
    {
      ScopedIsaLimit inner(Isa::avx512);
      EXPECT_EQ(kernel_isa(), cpu_isa());  // a limit above the CPU is clamped
    }
    EXPECT_EQ(kernel_isa(), Isa::scalar);
  }
  EXPECT_EQ(kernel_isa(), before);
}

TEST(Cpu, FlagsLineNamesTheCpuLevel) {
  const std::string flags = " " + cpu_flags_line() + " ";
  const bool avx2 =
      flags.find(" avx2 ") != std::string::npos && flags.find(" fma ") != std::string::npos;
  const bool avx512 = avx2 && flags.find(" avx512f ") != std::string::npos &&
                      flags.find(" avx512bw ") != std::string::npos &&
                      flags.find(" avx512vl ") != std::string::npos &&
                      flags.find(" avx512dq ") != std::string::npos;
  EXPECT_EQ(cpu_isa(), avx512 ? Isa::avx512 : avx2 ? Isa::avx2 : Isa::scalar) << flags;
  if (!avx2) {
    EXPECT_EQ(cpu_flags_line(), "(no AVX2)");
  }
}

// METAMATH_ISA is read at the first kernel_isa() of a process, so each case runs in a child that
// re-executes this test program ("threadsafe" death-test style) with the variable set.
class CpuEnv : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
  void TearDown() override {
    unsetenv("METAMATH_ISA");
    unsetenv("METAMATH_THREADS");
  }
};

TEST_F(CpuEnv, MetamathIsaLimitsKernels) {
  for (Isa limit : kAll) {
    setenv("METAMATH_ISA", isa_name(limit), 1);
    const Isa want = static_cast<int>(limit) < static_cast<int>(cpu_isa()) ? limit : cpu_isa();
    EXPECT_EXIT(std::exit(static_cast<int>(kernel_isa())),
                ::testing::ExitedWithCode(static_cast<int>(want)), "")
        << "METAMATH_ISA=" << isa_name(limit);
  }
}

TEST_F(CpuEnv, UnsetOrEmptyMeansTheCpuLevel) {
  setenv("METAMATH_ISA", "", 1);
  EXPECT_EXIT(std::exit(static_cast<int>(kernel_isa())),
              ::testing::ExitedWithCode(static_cast<int>(cpu_isa())), "");
  unsetenv("METAMATH_ISA");
  EXPECT_EXIT(std::exit(static_cast<int>(kernel_isa())),
              ::testing::ExitedWithCode(static_cast<int>(cpu_isa())), "");
}

TEST_F(CpuEnv, BadValueIsAnErrorNamingTheVariable) {
  setenv("METAMATH_ISA", "avx9", 1);
  EXPECT_EXIT(
      {
        try {
          kernel_isa();
        } catch (const Error& e) {
          std::fprintf(stderr, "%s\n", e.what());
          std::exit(3);
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(3), "METAMATH_ISA=avx9: expected scalar, avx2 or avx512");
}

// The extension flags and the model name agree with the kernel's own view in /proc/cpuinfo (the
// first processor's "flags" and "model name" lines), where that file exists.
TEST(Cpu, ExtensionsAndModelNameMatchProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  if (!in) GTEST_SKIP() << "no /proc/cpuinfo";
  std::string line, flags, model;
  while (std::getline(in, line) && (flags.empty() || model.empty())) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string field = line.substr(0, line.find_first_of(" \t"));
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (field == "flags" && flags.empty()) flags = " " + value + " ";
    if (field == "model" && line.rfind("model name", 0) == 0 && model.empty()) model = value;
  }
  if (flags.empty()) GTEST_SKIP() << "no flags line in /proc/cpuinfo";
  EXPECT_EQ(cpu_has_avx512_bf16(), flags.find(" avx512_bf16 ") != std::string::npos) << flags;
  EXPECT_EQ(cpu_has_avx512_vnni(), flags.find(" avx512_vnni ") != std::string::npos) << flags;
  // Linux lists the AMX flags only where it supports the tile state, which is also when the
  // permission request succeeds.
  const bool amx_int8 = flags.find(" amx_int8 ") != std::string::npos &&
                        flags.find(" amx_tile ") != std::string::npos;
  const bool amx_bf16 = flags.find(" amx_bf16 ") != std::string::npos &&
                        flags.find(" amx_tile ") != std::string::npos;
  EXPECT_EQ(cpu_has_amx_int8() && amx_tiles_permitted(), amx_int8) << flags;
  EXPECT_EQ(cpu_has_amx_bf16() && amx_tiles_permitted(), amx_bf16) << flags;
  if (!model.empty()) {
    EXPECT_EQ(cpu_model_name(), model);
  }
}

// Physical cores against /proc/cpuinfo's own count (distinct "physical id" + "core id" pairs),
// where this process may run on every CPU listed there.
TEST(Cpu, PhysicalCoresMatchProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  if (!in) GTEST_SKIP() << "no /proc/cpuinfo";
  std::set<std::string> cores;
  int processors = 0;
  std::string line, package = "0";
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (line.rfind("processor", 0) == 0) ++processors;
    if (line.rfind("physical id", 0) == 0) package = value;
    if (line.rfind("core id", 0) == 0) cores.insert(package + "/" + value);
  }
  cpu_set_t mask;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mask), &mask), 0);
  if (cores.empty() || CPU_COUNT(&mask) != processors)
    GTEST_SKIP() << "no core ids, or an affinity mask narrower than the machine";
  EXPECT_EQ(physical_cores(), static_cast<int>(cores.size()));
}

TEST_F(CpuEnv, ThreadsComeFromTheEnvironmentOrTheCores) {
  unsetenv("METAMATH_THREADS");
  EXPECT_EQ(default_threads(), physical_cores());
  setenv("METAMATH_THREADS", "3", 1);
  EXPECT_EQ(default_threads(), 3);
  for (const char* bad : {"0", "-2", "two", "3x"}) {
    setenv("METAMATH_THREADS", bad, 1);
    EXPECT_NE(testing::error_of([] { default_threads(); }).find("METAMATH_THREADS"),
              std::string::npos)
        << bad;
  }
}

}  // namespace
}  // namespace metamath
