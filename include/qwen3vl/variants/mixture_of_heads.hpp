// Mixture-of-heads attention (MoH, Jin et al. 2024): every token is routed to a few query heads,
// each with a gate weight. A head a token is not routed to gives 0 for that token and costs no
// compute: per query head, the tokens routed to it are gathered (in order, with their positions on
// the key axis) into a packed block, the flash kernel runs that block against the head's KV head
// (a strided one-head view of K/V, never copied), and gate * output is scattered back.
//
// Heads: heads 0 .. num_shared_heads - 1 are shared (always on), the rest are routed (top_k per
// token). Under GQA the K/V heads stay dense: every KV head is read by whichever of its query
// heads have tokens.
#pragma once

#include <cstdint>
#include <memory>

#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {

// Per token (T = the query rows in q's layout order: b * Lq + i for [B, Lq, Hq, D], the packed row
// for varlen): the k query heads it uses and their gate weights. Indices are distinct within a
// token and in [0, Hq); a weight of 0 computes nothing for that (token, head), like an unlisted
// head. Host memory for CPU objects, device memory for CUDA ones.
struct HeadRouting {
  TensorView head_index;   // i32 [T, k]
  TensorView head_weight;  // f32 [T, k]
};

struct MoHConfig {
  int64_t num_heads = 0;         // query heads Hq (shared + routed)
  int64_t num_shared_heads = 0;  // heads 0 .. num_shared_heads - 1: on for every token
  int64_t top_k = 0;             // routed heads per token, 1 .. Hq - num_shared_heads (0 if none)

  int64_t routed_heads() const { return num_heads - num_shared_heads; }
  int64_t heads_per_token() const { return num_shared_heads + top_k; }
};

// Typed error naming the knob when the config is inconsistent.
[[nodiscard]] Status validate_moh_config(const MoHConfig& config);

// Checks a routing against `tokens` query rows and `heads` query heads: dtypes, shapes [T, k]
// with 1 <= k <= heads, and (host memory only) indices in range, no head twice for one token,
// finite weights.
[[nodiscard]] Status validate_head_routing(const HeadRouting& routing, int64_t tokens,
                                           int64_t heads);

// The router's logits for T tokens (host f32, rows contiguous): `shared` [T, num_shared_heads]
// (absent when there are no shared heads), `routed` [T, routed_heads()] (absent when none), `mix`
// [T, 2] (only when both kinds exist; else the one kind weighs 1).
struct MoHRouterLogits {
  TensorView shared, routed, mix;
};

// The MoH gates (host): with [a1, a2] = softmax(mix), shared head i gets a1 * softmax(shared)_i,
// and routed head j gets a2 * softmax(routed)_j if j is among the top_k routed logits (ties go to
// the lower head index), else nothing. Writes `out` (caller-owned i32/f32 [T, heads_per_token()]):
// each token's shared heads in order, then its top_k routed heads by decreasing logit.
[[nodiscard]] Status route_mixture_of_heads(const MoHConfig& config, const MoHRouterLogits& logits,
                                            const HeadRouting& out);

// A mixture-of-heads attention object. The inherited forward(params) computes every head with
// gate 1 (dense attention); the routed overloads take a HeadRouting. Masks: none, causal (both
// alignments), sliding window, key padding, softcap, scale, lse (rows computed get their head's
// LSE, the others -inf), fixed-length and varlen batches, q_positions. Not: additive masks,
// attention weights, block layouts.
class MixtureOfHeadsAttention : public Attention {
 public:
  using Attention::forward;
  using Attention::run;
  using Attention::supports;

  virtual const MoHConfig& config() const = 0;
  // Routed calls reuse the plan of the problem (plan(params, ...)): its workspace_bytes covers
  // forward(params, ...) and the routed calls alike (every head's gathered rows and token lists,
  // and the head kernel's own workspace). run() checks the plan and the routing, then launches.
  virtual Status run(const AttentionPlan& plan, const AttentionParams& params,
                     const HeadRouting& routing, Workspace workspace,
                     void* stream = nullptr) const = 0;
  // plan() plus the routing's checks.
  Status supports(const AttentionParams& params, const HeadRouting& routing) const;
  // plan() then the routed run().
  Status forward(const AttentionParams& params, const HeadRouting& routing, Workspace workspace,
                 void* stream = nullptr) const;
  // Host convenience (CPU objects): allocates the workspace and throws Error on failure.
  void run(const AttentionParams& params, const HeadRouting& routing) const;

 protected:
  // What the routing must satisfy for a planned problem (run() checks it too).
  virtual Status check_routing(const AttentionPlan& plan, const AttentionParams& params,
                               const HeadRouting& routing) const = 0;
};

// CPU: every query head's routed rows are gathered and run through the CPU flash2 kernel in one
// parallel pass against the problem's own K/V (see docs/architecture.md).
[[nodiscard]] Status create_mixture_of_heads_cpu(const CpuOptions& options, const MoHConfig& config,
                                                 std::unique_ptr<MixtureOfHeadsAttention>* out);
// The same as a plain Attention (forward(params) only: dense), for callers that hold any variant.
[[nodiscard]] Status create_mixture_of_heads_cpu(const CpuOptions& options, const MoHConfig& config,
                                                 std::unique_ptr<Attention>* out);

// The same driver over any host `head_kernel` that honours params.q_positions (e.g. a test's
// reference adapter): a CPU flash2 object gets the one gathered pass, any other kernel one varlen
// call per head (per (sequence, head) for fixed-length batches whose K/V are not packed rows).
[[nodiscard]] Status create_mixture_of_heads(std::unique_ptr<Attention> head_kernel,
                                             const MoHConfig& config,
                                             std::unique_ptr<MixtureOfHeadsAttention>* out);

}  // namespace qwen3vl
