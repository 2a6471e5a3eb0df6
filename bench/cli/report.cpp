#include "report.hpp"

#include <cmath>
#include <cstdio>

#include "common/workload.hpp"

namespace qwen3vl::bench {
namespace {

std::string format(const char* fmt, double x) {
  if (!std::isfinite(x)) return std::isnan(x) ? "nan" : "inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, x);
  return buf;
}

std::string mib(size_t bytes) { return format("%.1f MiB", static_cast<double>(bytes) / (1 << 20)); }

}  // namespace

void print_table(std::ostream& os, const std::vector<CaseResult>& results, const ReportContext& c) {
  const char* row = "%-10s %-6s %-7s %-5s %-28s %10s %8s %14s %6s %11s %11s\n";
  char line[512];
  std::snprintf(line, sizeof line, row, "variant", "device", "isa", "dtype", "shape", "median ms",
                "GFLOP/s", "sgemm GFLOP/s", "ratio", "max rel err", "workspace");
  os << line;
  for (const CaseResult& r : results) {
    std::snprintf(line, sizeof line, row, r.variant.c_str(), r.device.c_str(), r.arch.c_str(),
                  r.dtype.c_str(), r.shape.c_str(), format("%.2f", r.ms).c_str(),
                  format("%.1f", r.gflops).c_str(), format("%.1f", r.sgemm_gflops).c_str(),
                  format("%.3f", r.ratio_to_sgemm).c_str(),
                  (format("%.2e", r.max_rel_err) + (r.accurate ? "" : "!")).c_str(),
                  mib(r.workspace_bytes).c_str());
    os << line;
  }
  os << "\nGFLOP/s = 4 * Hq * D * (visible query-key pairs) / median time: masked-out pairs are not"
        " counted,\n  so causal Lq = Lk shapes count about half of 4*B*Hq*Lq*Lk*D.\n";
  for (const auto& [device, s] : c.sgemm)
    os << "sgemm (" << device << "): " << s.source << ", n = " << s.n
       << (s.threads ? ", " + std::to_string(s.threads) + " threads" : std::string())
       << ", median: " << format("%.1f", s.gflops) << " GFLOP/s; ratio = GFLOP/s / sgemm.\n";
  os << "median of " << c.repeats << " runs after 1 warm-up. max rel err: " << c.sampled_rows
     << " sampled rows vs the float64 reference, ! = above the tolerance (1e-5 f32, 1e-2 "
        "f16/bf16).\n";
  if (c.has_vision)
    os << "vision: " << kVisionFrames << " frames x " << kVisionPatches
       << " patches packed through cu_seqlens (block-diagonal, non-causal; an 8-frame 512x512 "
          "clip).\n";
}

void add_rows(Report* report, const std::vector<CaseResult>& results) {
  for (const CaseResult& r : results)
    report->add({{"variant", r.variant},
                 {"device", r.device},
                 {"dtype", r.dtype},
                 {"batch", r.batch},
                 {"seq_q", r.seq_q},
                 {"seq_k", r.seq_k},
                 {"heads", r.heads},
                 {"kv_heads", r.kv_heads},
                 {"head_dim", r.head_dim},
                 {"causal", r.causal},
                 {"threads", r.threads},
                 {"ms", r.ms},
                 {"gflops", r.gflops},
                 {"sgemm_gflops", r.sgemm_gflops},
                 {"ratio_to_sgemm", r.ratio_to_sgemm},
                 {"max_rel_err", r.max_rel_err},
                 {"workspace_bytes", r.workspace_bytes},
                 {"isa", r.arch},
                 {"sgemm_source", r.sgemm_source}});
}

}  // namespace qwen3vl::bench
