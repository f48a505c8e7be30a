#pragma once
// Tests of a hand-written kernel run once per instruction-set level (core/cpu.h). Derive a suite
// from IsaTest and instantiate it with METAMATH_EACH_ISA(Suite): each test then runs with the
// kernels capped at scalar, avx2 and avx512 in turn (test names end in /scalar, /avx2, /avx512); a
// level this CPU lacks is skipped with a message naming the CPU's flags.
#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>

#include "core/cpu.h"

namespace metamath {
// gtest prints a level by name in failure messages (instead of its bytes).
inline void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }
}  // namespace metamath

namespace metamath::testing {

class IsaTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (GetParam() > cpu_isa())
      GTEST_SKIP() << "this CPU lacks " << isa_name(GetParam()) << " (flags: " << cpu_flags_line()
                   << ")";
    limit_.emplace(GetParam());
    ASSERT_EQ(kernel_isa(), GetParam());
  }
  void TearDown() override { limit_.reset(); }

 private:
  std::optional<ScopedIsaLimit> limit_;
};

inline std::string isa_test_name(const ::testing::TestParamInfo<Isa>& info) {
  return isa_name(info.param);
}

}  // namespace metamath::testing

#define METAMATH_EACH_ISA(suite)                                                                  \
  INSTANTIATE_TEST_SUITE_P(                                                                       \
      , suite,                                                                                    \
      ::testing::Values(::metamath::Isa::scalar, ::metamath::Isa::avx2, ::metamath::Isa::avx512), \
      ::metamath::testing::isa_test_name)
