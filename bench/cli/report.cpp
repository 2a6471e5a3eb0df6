#include "report.hpp"

#include <cmath>
#include <cstdio>

#include "../common/workload.hpp"

namespace qwen3vl::bench {
namespace {

std::string format(const char* fmt, double x) {
  if (!std::isfinite(x)) return std::isnan(x) ? "nan" : "inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, x);
  return buf;
}

std::string mib(size_t bytes) { return format("%.1f MiB", static_cast<double>(bytes) / (1 << 20)); }

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double x) { return std::isfinite(x) ? format("%.6g", x) : "null"; }

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

void print_json(std::ostream& os, const std::vector<CaseResult>& results) {
  os << "[";
  for (size_t n = 0; n < results.size(); ++n) {
    const CaseResult& r = results[n];
    os << (n ? ",\n " : "\n ") << "{\"variant\": " << json_string(r.variant)
       << ", \"device\": " << json_string(r.device) << ", \"dtype\": " << json_string(r.dtype)
       << ", \"batch\": " << r.batch << ", \"seq_q\": " << r.seq_q << ", \"seq_k\": " << r.seq_k
       << ", \"heads\": " << r.heads << ", \"kv_heads\": " << r.kv_heads
       << ", \"head_dim\": " << r.head_dim << ", \"causal\": " << (r.causal ? "true" : "false")
       << ", \"threads\": " << r.threads << ", \"ms\": " << json_number(r.ms)
       << ", \"gflops\": " << json_number(r.gflops)
       << ", \"sgemm_gflops\": " << json_number(r.sgemm_gflops)
       << ", \"ratio_to_sgemm\": " << json_number(r.ratio_to_sgemm)
       << ", \"max_rel_err\": " << json_number(r.max_rel_err)
       << ", \"workspace_bytes\": " << r.workspace_bytes << ", \"isa\": " << json_string(r.arch)
       << ", \"sgemm_source\": " << json_string(r.sgemm_source) << "}";
  }
  os << (results.empty() ? "]\n" : "\n]\n");
}

}  // namespace qwen3vl::bench
