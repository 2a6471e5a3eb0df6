// Flags of the prefill routine of qwen3vl-attn-bench (the CPU/CUDA variants on the Qwen3-VL
// workload).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/args.hpp"
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

  bool custom_shape() const {
    return batch || seq || seq_q || seq_k || heads || kv_heads || head_dim || causal;
  }
};

// Declares the routine's flags on `parser`, writing into `options` (which must outlive it).
void add_prefill_flags(ArgParser* parser, CliOptions* options);

// After parsing: a shape whose KV heads do not divide its query heads is an error naming both.
Status check_prefill_options(const CliOptions& options);

// The one problem the shape flags describe (defaults: the text prefill shape at 1024).
testing::ProblemSpec custom_spec(const CliOptions& options);

// What the routine measures, for --help.
const char* prefill_about();

}  // namespace qwen3vl::bench
