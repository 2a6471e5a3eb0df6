// How a CPU variant runs: thread count and instruction set.
#pragma once

#include "qwen3vl/cpu/isa.hpp"

namespace qwen3vl {

// The most threads a CPU variant takes. Above every current host's hardware threads (two 192-core
// sockets with SMT give 768), while each thread gets a workspace slot: an unbounded count would
// size workspaces (and oneTBB arenas) by a typo rather than by the machine.
constexpr int kMaxCpuThreads = 1024;

struct CpuOptions {
  int num_threads = 0;         // 0: the machine's physical cores; else 1..kMaxCpuThreads
  CpuIsa isa = CpuIsa::kAuto;  // kAuto: QWEN3VL_CPU_ISA, else the best the CPU supports
  // The CPU to plan for (ISA support, cores, cache sizes); nullptr: the one this process runs on.
  const CpuInfo* cpu_info = nullptr;
};

}  // namespace qwen3vl
