// What the machine offers: CPU ISA flags (by CPUID), cores and caches, and the CUDA devices seen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qwen3vl {

struct CpuInfo {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ...
  std::string brand;   // the processor brand string
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512_bf16 = false;
  bool avx512_vnni = false;  // int8 dot products (the int8 cache's integer Q.K)
  bool os_saves_avx = false,
       os_saves_avx512 = false;  // XGETBV: the OS preserves the wide registers
  int physical_cores = 1;
  int logical_cores = 1;
  int64_t l1d_bytes = 0, l2_bytes = 0, l3_bytes = 0;  // per core (L1/L2) and per package (L3)

  bool has_avx2_fma() const { return avx2 && fma && os_saves_avx; }
  bool has_avx512() const { return avx512f && avx512bw && avx512vl && avx512dq && os_saves_avx512; }

  static CpuInfo detect();
  static const CpuInfo& current();  // detected once, then cached
  std::string to_string() const;
};

struct GpuInfo {
  int index = 0;
  std::string name;
  int sm_major = 0, sm_minor = 0;
  int multiprocessors = 0;
  int64_t global_memory_bytes = 0;
  int64_t shared_memory_per_block = 0;
};

// CUDA devices visible to this process; empty when built without CUDA or when none is present.
std::vector<GpuInfo> detect_gpus();

struct HardwareInfo {
  CpuInfo cpu;
  std::vector<GpuInfo> gpus;  // empty without CUDA or without a device

  // The machine this process runs on (detected once, then cached).
  static const HardwareInfo& current();
  // Detection without the cache (for tests).
  static HardwareInfo detect();
  std::string to_string() const;
};

}  // namespace qwen3vl
