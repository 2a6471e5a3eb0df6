// Command-line flags of qwen3vl-attn-bench.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/cpu/isa.hpp"
#include "support/problem.hpp"
#include "variant_inputs.hpp"

namespace qwen3vl::bench {

struct CliOptions {
  std::string variant = "all";  // a variant name (see parse_variant) or "all"
  std::string device = "all";   // cpu, cuda or all
  DType dtype = DType::kF32;
  // Shape flags: any of them (or --causal) replaces the default workload by one fixed-length shape.
  std::optional<int64_t> batch, seq, seq_q, seq_k, heads, kv_heads, head_dim;
  bool causal = false;
  int threads = 0;  // 0: the machine's physical cores
  CpuIsa isa = CpuIsa::kAuto;
  int repeats = 5;
  VariantFlags variant_flags;  // --block-density, --block-size, --moh-top-k, --moh-shared-heads
  bool json = false;
  bool help = false;

  bool custom_shape() const {
    return batch || seq || seq_q || seq_k || heads || kv_heads || head_dim || causal;
  }
};

// Parses argv[1..]; an unknown flag, a missing or malformed value, or a shape whose KV heads do
// not divide its query heads is an error naming the flag, its value and what is allowed.
Status parse_cli(const std::vector<std::string>& args, CliOptions* out);

// The one problem the shape flags describe (defaults: the text prefill shape at 1024).
testing::ProblemSpec custom_spec(const CliOptions& options);

std::string cli_help();

}  // namespace qwen3vl::bench
