// Qwen3VLTextAttention: one self-attention layer of the Qwen3-VL text model (transformers'
// Qwen3VLTextAttention), built on the attention kernels the selector chooses.
//
//   q = x Wq^T, k = x Wk^T, v = x Wv^T          (no bias; one fused GEMM, fp32 accumulation)
//   q, k <- RMSNorm over each head (fp32, eps), cast to the storage dtype, times q_norm / k_norm
//   q, k <- interleaved M-RoPE from position ids [3, B, L] (t, h, w)
//   K/V appended to the cache (post-norm, post-RoPE), then causal GQA attention over past + new
//   out = attn Wo^T
//
// transformers' `attention = selector.create(config, layer_idx)` then `output, attn_weights,
// past_key_value = attention(hidden_states, attention_mask, position_ids)` reads in C++ as
//   auto attention = layers::Qwen3VLTextAttention::create(config, weights, layer_idx);
//   auto [output, attn_weights, past_key_value] = (*attention)(hidden, mask, positions, &cache);
// forward() is the allocation-free form: caller-owned outputs and a workspace sized by
// workspace_size(), like every kernel.
#pragma once

#include <memory>
#include <string>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/layers/options.hpp"
#include "qwen3vl/rope/apply.hpp"
#include "qwen3vl/rope/mrope.hpp"
#include "qwen3vl/rope/scaling.hpp"
#include "qwen3vl/rope/table.hpp"

namespace qwen3vl::layers {

struct TextAttentionConfig {
  int64_t hidden_size = 0;
  int64_t num_heads = 0;     // Hq
  int64_t num_kv_heads = 0;  // Hkv (divides Hq)
  int64_t head_dim = 0;  // D, from the model config (not hidden_size / Hq: 32B has 5120/64 != 128)
  double rms_norm_eps = 1e-6;
  double rope_theta = 5e6;  // the released models' value (the config class default 5e5 is not)
  rope::RopeScaling rope_scaling;
  rope::MRopeLayout mrope_layout = rope::MRopeLayout::kInterleaved;
  rope::MRopeSection mrope_section{24, 20, 20};  // must add up to head_dim / 2
  int64_t max_position = 262144;                 // positions allowed: [0, max_position)
  // The cos/sin table: exact angles in two small split tables by default (~2e-7 at any position,
  // exact to the fp32 frequencies; rope_inv_freq in float64 makes it exact to those).
  rope::AngleRecipe rope_recipe = rope::AngleRecipe::kExact;
  rope::TableLayout rope_table = rope::TableLayout::kSplit;
  // Optional: the checkpoint's inv_freq (head_dim / 2 entries, f32 or f64) instead of the one
  // computed from rope_theta / rope_scaling (see rope/table.hpp for what each recipe is exact to).
  rope::InvFreq rope_inv_freq;
  // transformers' text path rounds cos/sin and every product to the activation dtype.
  rope::RopeArithmetic rope_arithmetic = rope::RopeArithmetic::kTransformersStorage;
  LayerOptions options;
};

// nn.Linear weights ([out, in], no bias) and the two RMSNorm weights, as host views of any float
// dtype and any strides with the last dimension contiguous. create() copies them (fp32, fused
// q/k/v) into memory the layer owns on its device; the views need not outlive create().
struct TextAttentionWeights {
  TensorView q_proj;  // [Hq * D, hidden]
  TensorView k_proj;  // [Hkv * D, hidden]
  TensorView v_proj;  // [Hkv * D, hidden]
  TensorView o_proj;  // [hidden, Hq * D]
  TensorView q_norm;  // [D]
  TensorView k_norm;  // [D]
};

struct TextAttentionInputs {
  TensorView hidden_states;   // [B, L, hidden], the layer's dtype and device
  TensorView position_ids;    // optional i32 [3, B, L] (t, h, w) or [B, L] (all axes); absent:
                              // past_len[b] + i + cache->position_delta(b) on every axis (host
                              // memory, CPU layer only), transformers' decode positions after a
                              // prompt with images: the CPU layer records each sequence's delta
                              // in the cache from every call that passes position ids.
                              // Values outside [0, max_position): an error on the CPU; on CUDA
                              // those tokens stay unrotated (rope::RopeApplier::take_error)
  TensorView attention_mask;  // optional i32 [B, L] on the host: 1 keeps a key, 0 masks it
                              // (padding). Only without past tokens in the cache; CPU only.
};

struct TextAttentionOutputs {
  TensorView output;        // [B, L, hidden], the layer's dtype
  TensorView attn_weights;  // optional f32 [B, Hq, L, Lk] (Lk = longest past + L); needs
                            // options.need_weights (the standard variant)
};

// Seconds spent in each step, added up over forward() calls (CPU wall clock; on CUDA the layer
// synchronises its stream between steps while a profile is attached).
struct LayerProfile {
  double projections = 0.0;  // q/k/v and output projections
  double norm_rope = 0.0;    // QK-norm and RoPE
  double cache = 0.0;        // appending K/V to the cache
  double attention = 0.0;    // the attention kernel (prefill or decode)
  int64_t calls = 0;
};

// What the convenience call returns: (output, attn_weights, past_key_value), as older
// transformers attention layers return them.
struct TextAttentionResult {
  Tensor output;            // [B, L, hidden]
  Tensor attn_weights;      // f32 [B, Hq, L, Lk] when asked for, else empty
  KvCache* past_key_value;  // the cache passed in, now holding the new tokens (or null)
};

class Qwen3VLTextAttention {
 public:
  // Checks the config and weights, builds the attention kernel with Selector::try_create(config,
  // layer_idx), the decode kernel, the RoPE table and the layer's copy of the weights.
  [[nodiscard]] static Status try_create(const TextAttentionConfig& config,
                                         const TextAttentionWeights& weights, int layer_idx,
                                         std::unique_ptr<Qwen3VLTextAttention>* out);
  static std::unique_ptr<Qwen3VLTextAttention> create(const TextAttentionConfig& config,
                                                      const TextAttentionWeights& weights,
                                                      int layer_idx = 0);  // throws Error
  ~Qwen3VLTextAttention();
  Qwen3VLTextAttention(const Qwen3VLTextAttention&) = delete;
  Qwen3VLTextAttention& operator=(const Qwen3VLTextAttention&) = delete;

  const TextAttentionConfig& config() const;
  int layer_idx() const;

  // Everything forward() checks, without running anything. `cache` may be null (no cache: the
  // call attends to its own tokens only). A cache needs Hkv and D of the layer, the layer's
  // device, and (with past tokens) either at most 8 new rows per sequence without weights (the
  // decode kernel) or a contiguous layout.
  [[nodiscard]] Status supports(const TextAttentionInputs& inputs, const KvCache* cache,
                                const TextAttentionOutputs& outputs) const;
  // Bytes of workspace forward() needs (q/k/v, the attention output, fp32 staging for f16/bf16,
  // and the attention kernel's own workspace); 0 when the arguments are invalid.
  size_t workspace_size(const TextAttentionInputs& inputs, const KvCache* cache,
                        const TextAttentionOutputs& outputs) const;
  // Runs the layer: no allocation, the cache gains the L new tokens of every sequence (one step of
  // the cache's table, opened and committed here). All checks come first; an error leaves the
  // cache unchanged. `stream` is the cudaStream_t on CUDA.
  [[nodiscard]] Status forward(const TextAttentionInputs& inputs, KvCache* cache,
                               const TextAttentionOutputs& outputs, Workspace workspace,
                               void* stream = nullptr, LayerProfile* profile = nullptr) const;

  // The model form: `table` is the KvPageTable every layer of the model shares, `storage` this
  // layer's K/V over it. The caller opens one append step of L tokens a sequence before the first
  // layer (table->begin_append(L)) and commits it after the last (or aborts it on an error: the
  // table is then unchanged). Each layer writes the step's rows into its storage, decodes against
  // the step's lengths (the first layer's decode plan serves every later one; on CUDA the table's
  // device mirror is uploaded once, by the first layer) and records position deltas into the step.
  // supports() and workspace_size() take the table with or without an open step.
  [[nodiscard]] Status supports(const TextAttentionInputs& inputs, const KvPageTable* table,
                                const KvLayerStorage* storage,
                                const TextAttentionOutputs& outputs) const;
  size_t workspace_size(const TextAttentionInputs& inputs, const KvPageTable* table,
                        const KvLayerStorage* storage, const TextAttentionOutputs& outputs) const;
  [[nodiscard]] Status forward(const TextAttentionInputs& inputs, KvPageTable* table,
                               const KvLayerStorage* storage, const TextAttentionOutputs& outputs,
                               Workspace workspace, void* stream = nullptr,
                               LayerProfile* profile = nullptr) const;

  // Convenience for host callers (CPU layer): allocates the outputs and the workspace, throws
  // Error. Attention weights come back when the layer was created with need_weights.
  TextAttentionResult operator()(const TensorView& hidden_states,
                                 const TensorView& attention_mask = {},
                                 const TensorView& position_ids = {},
                                 KvCache* past_key_value = nullptr) const;

  std::string describe() const;

  struct Impl;

 private:
  explicit Qwen3VLTextAttention(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qwen3vl::layers
