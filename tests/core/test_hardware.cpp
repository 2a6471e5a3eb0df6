// Hardware detection and the choice of CPU instruction set.
#include <gtest/gtest.h>

#include <cstdlib>

#include "qwen3vl/cpu/isa.hpp"
#include "qwen3vl/hardware/hardware_info.hpp"

namespace qwen3vl {
namespace {

TEST(Hardware, DetectsAPlausibleCpu) {
  const HardwareInfo& hw = HardwareInfo::current();
  EXPECT_GE(hw.cpu.logical_cores, hw.cpu.physical_cores);
  EXPECT_GE(hw.cpu.physical_cores, 1);
  if (hw.cpu.avx2) EXPECT_TRUE(hw.cpu.avx);
  if (hw.cpu.has_avx512()) EXPECT_TRUE(hw.cpu.os_saves_avx);
  const std::string text = hw.to_string();
  EXPECT_NE(text.find("cpu:"), std::string::npos);
  EXPECT_NE(text.find("gpu"), std::string::npos);
}

TEST(Hardware, ResolvesIsaFromConfigEnvironmentAndCpuid) {
  CpuInfo none;  // a CPU without AVX
  CpuIsa chosen;
  ::unsetenv("QWEN3VL_CPU_ISA");
  ASSERT_TRUE(resolve_cpu_isa(CpuIsa::kAuto, none, &chosen).ok());
  EXPECT_EQ(chosen, CpuIsa::kScalar);
  const Status s = resolve_cpu_isa(CpuIsa::kAvx2, none, &chosen);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("avx2"), std::string::npos);

  ::setenv("QWEN3VL_CPU_ISA", "scalar", 1);
  ASSERT_TRUE(resolve_cpu_isa(CpuIsa::kAuto, CpuInfo::current(), &chosen).ok());
  EXPECT_EQ(chosen, CpuIsa::kScalar);
  ::setenv("QWEN3VL_CPU_ISA", "sse9", 1);
  EXPECT_EQ(resolve_cpu_isa(CpuIsa::kAuto, CpuInfo::current(), &chosen).code(),
            StatusCode::kInvalidArgument);
  ::unsetenv("QWEN3VL_CPU_ISA");

  const CpuInfo& cpu = CpuInfo::current();
  ASSERT_TRUE(resolve_cpu_isa(CpuIsa::kAuto, cpu, &chosen).ok());
  EXPECT_TRUE(cpu_supports(cpu, chosen));
  if (cpu_isa_compiled(CpuIsa::kAvx2) && cpu_supports(cpu, CpuIsa::kAvx2))
    EXPECT_NE(chosen, CpuIsa::kScalar);
}

TEST(Hardware, ParsesIsaNames) {
  CpuIsa isa;
  EXPECT_TRUE(parse_cpu_isa("avx512", &isa).ok());
  EXPECT_EQ(isa, CpuIsa::kAvx512);
  EXPECT_EQ(parse_cpu_isa("neon", &isa).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qwen3vl
