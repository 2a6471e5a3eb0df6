// How a CPU variant runs: thread count and instruction set.
#pragma once

#include "qwen3vl/cpu/isa.hpp"

namespace qwen3vl {

struct CpuOptions {
  int num_threads = 0;          // 0: the machine's physical cores
  CpuIsa isa = CpuIsa::kAuto;   // kAuto: QWEN3VL_CPU_ISA, else the best the CPU supports
  const HardwareInfo* hardware = nullptr;  // nullptr: the CPU this process runs on
};

}  // namespace qwen3vl
