// What each variant needs from the CLI beyond q, k and v, and the accuracy check it is held to.
//
//   standard, flash2, sm61_tiled  dense attention: the float64 reference
//   block_sparse                  a seeded random layout (--block-density, --block-size) passed
//                                 with each call: the reference restricted to that layout
//   sparse                        its static pattern: the reference restricted to the pattern's
//                                 layout (build_static_sparse_layout)
//   dynamic_sparse                the layout its router picks for these inputs (a CPU router of the
//                                 same config, which equals the CUDA one): the reference restricted
//                                 to it
//   linear                        its own float64 oracle (support/linear_oracle.hpp)
//   moh                           seeded router logits (--moh-top-k routed heads per token,
//                                 --moh-shared-heads always on): gate x the dense reference for
//                                 the heads a token uses, 0 for the others
// block_sparse and moh need their layout or routing in device memory on CUDA, which this CLI does
// not upload: there they are skipped (bench/block_sparse and bench/mixture_of_heads time them on
// the GPU).
#pragma once

#include <cstdint>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/selector/selector.hpp"
#include "qwen3vl/variants/static_sparse.hpp"

namespace qwen3vl::bench {

struct VariantFlags {
  double block_density = 0.25;   // block_sparse: kept fraction of each query block's key blocks
  int32_t block_size = 64;       // block_sparse: block_q = block_k
  int64_t moh_top_k = 0;         // moh: routed heads per token; 0: half the routed heads (>= 1)
  int64_t moh_shared_heads = 0;  // moh: heads 0 .. n - 1 on for every token
  uint64_t seed = 11;
};

// Sets the knobs of config.variant that depend on the flags and the problem (moh's head counts).
void apply_variant_flags(const VariantFlags& flags, AttentionConfig* config);

// The selector's object, except moh on the CPU: its own object, whose routed forward() the
// selector's plain Attention hides.
Status create_variant(const AttentionConfig& config, std::unique_ptr<Attention>* out);

// The per-call inputs of one run, host memory.
struct VariantInputs {
  BlockLayoutData layout;          // block_sparse: the layout passed with every call
  Tensor head_index, head_weight;  // moh: the routing

  // Builds them for `variant` on `host` (kUnsupported where the device needs device copies).
  static Status make(Variant variant, Device device, const VariantFlags& flags,
                     const AttentionConfig& config, const AttentionParams& host,
                     VariantInputs* out);
  // `params` with the layout set when there is one.
  AttentionParams with_layout(const AttentionParams& params) const;
};

// One call through the variant's entry point (moh: the routed forward()).
Status forward_variant(const Attention& attention, const AttentionParams& params,
                       const VariantInputs& inputs, Workspace workspace, void* stream);

// Max relative error of `count` sampled output rows of `host` (which holds the output) against the
// check of attention.variant() above; +inf if any output is NaN or Inf.
Status sampled_variant_error(const Attention& attention, const AttentionConfig& config,
                             const AttentionParams& host, const VariantInputs& inputs, int count,
                             double* error);

}  // namespace qwen3vl::bench
