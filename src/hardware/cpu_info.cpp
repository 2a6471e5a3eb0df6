// CPU detection: ISA flags by CPUID/XGETBV, cores and caches from Linux sysfs (CPUID as fallback).
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "qwen3vl/hardware/hardware_info.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define QWEN3VL_X86 1
#endif

namespace qwen3vl {
namespace {

#if QWEN3VL_X86
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};
Regs cpuid(unsigned leaf, unsigned sub = 0) {
  Regs r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}
unsigned long long xgetbv0() {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}

void detect_isa(CpuInfo& c) {
  const unsigned max_leaf = cpuid(0).a;
  Regs v = cpuid(0);
  char vendor[13] = {};
  std::memcpy(vendor, &v.b, 4);
  std::memcpy(vendor + 4, &v.d, 4);
  std::memcpy(vendor + 8, &v.c, 4);
  c.vendor = vendor;
  if (cpuid(0x80000000u).a >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      Regs r = cpuid(0x80000002u + i);
      std::memcpy(brand + 16 * i, &r, 16);
    }
    c.brand = brand;
    while (!c.brand.empty() && c.brand.back() == ' ') c.brand.pop_back();
    while (!c.brand.empty() && c.brand.front() == ' ') c.brand.erase(0, 1);
  }
  const Regs f1 = cpuid(1);
  c.sse42 = f1.c & (1u << 20);
  c.fma = f1.c & (1u << 12);
  c.f16c = f1.c & (1u << 29);
  c.avx = f1.c & (1u << 28);
  const bool osxsave = f1.c & (1u << 27);
  if (osxsave) {
    const unsigned long long xcr0 = xgetbv0();
    c.os_saves_avx = (xcr0 & 0x6) == 0x6;       // XMM and YMM state
    c.os_saves_avx512 = (xcr0 & 0xe6) == 0xe6;  // plus opmask and ZMM state
  }
  if (max_leaf >= 7) {
    const Regs f7 = cpuid(7, 0);
    c.avx2 = f7.b & (1u << 5);
    c.avx512f = f7.b & (1u << 16);
    c.avx512dq = f7.b & (1u << 17);
    c.avx512bw = f7.b & (1u << 30);
    c.avx512vl = f7.b & (1u << 31);
    c.avx512_vnni = f7.c & (1u << 11);
    if (cpuid(7, 0).a >= 1) c.avx512_bf16 = cpuid(7, 1).a & (1u << 5);
  }
}
#else
void detect_isa(CpuInfo&) {}
#endif

bool read_line(const std::string& path, std::string* out) {
  std::ifstream in(path);
  return static_cast<bool>(std::getline(in, *out));
}

int64_t parse_size(const std::string& text) {  // "32K", "1024K", "32768K", "8M"
  std::istringstream in(text);
  int64_t n = 0;
  char unit = 0;
  in >> n >> unit;
  return unit == 'K' ? n << 10 : unit == 'M' ? n << 20 : n;
}

void detect_topology(CpuInfo& c) {
  c.logical_cores = static_cast<int>(std::thread::hardware_concurrency());
  if (c.logical_cores < 1) c.logical_cores = 1;
  std::set<std::pair<std::string, std::string>> cores;  // (package, core)
  for (int cpu = 0; cpu < c.logical_cores; ++cpu) {
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::string pkg, core;
    if (read_line(dir + "physical_package_id", &pkg) && read_line(dir + "core_id", &core))
      cores.emplace(pkg, core);
  }
  c.physical_cores = cores.empty() ? c.logical_cores : static_cast<int>(cores.size());

  for (int index = 0; index < 8; ++index) {
    const std::string dir =
        "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::string level, type, size;
    if (!read_line(dir + "level", &level) || !read_line(dir + "type", &type) ||
        !read_line(dir + "size", &size))
      break;
    const int64_t bytes = parse_size(size);
    if (level == "1" && type == "Data") c.l1d_bytes = bytes;
    if (level == "2") c.l2_bytes = bytes;
    if (level == "3") c.l3_bytes = bytes;
  }
}

std::string kib(int64_t bytes) { return bytes ? std::to_string(bytes >> 10) + " KiB" : "?"; }

}  // namespace

CpuInfo CpuInfo::detect() {
  CpuInfo c;
  detect_isa(c);
  detect_topology(c);
  return c;
}

const CpuInfo& CpuInfo::current() {
  static const CpuInfo info = detect();
  return info;
}

std::string CpuInfo::to_string() const {
  std::ostringstream os;
  const CpuInfo& c = *this;
  os << "cpu: " << (c.brand.empty() ? "unknown" : c.brand) << " (" << c.vendor << "), "
     << c.physical_cores << " cores / " << c.logical_cores << " threads, L1d " << kib(c.l1d_bytes)
     << ", L2 " << kib(c.l2_bytes) << ", L3 " << kib(c.l3_bytes) << "\n";
  os << "isa:";
  const std::pair<const char*, bool> flags[] = {{"sse4.2", c.sse42},
                                                {"avx", c.avx},
                                                {"avx2", c.avx2},
                                                {"fma", c.fma},
                                                {"f16c", c.f16c},
                                                {"avx512f", c.avx512f},
                                                {"avx512bw", c.avx512bw},
                                                {"avx512vl", c.avx512vl},
                                                {"avx512dq", c.avx512dq},
                                                {"avx512_bf16", c.avx512_bf16},
                                                {"avx512_vnni", c.avx512_vnni}};
  for (const auto& f : flags)
    if (f.second) os << " " << f.first;
  os << (c.os_saves_avx512 ? " (os: zmm)" : c.os_saves_avx ? " (os: ymm)" : "") << "\n";
  return os.str();
}

}  // namespace qwen3vl
