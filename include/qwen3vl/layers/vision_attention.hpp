// Qwen3VLVisionAttention: one attention layer of the Qwen3-VL vision encoder (transformers'
// Qwen3VLVisionAttention).
//
//   [q | k | v] = x Wqkv^T + bqkv               (fused, with bias; heads H, D = hidden / H)
//   q, k <- vision 2-D RoPE from each patch's (row, col), rotated in fp32
//   o = softmax(q k^T / sqrt(D)) v within each frame (non-causal; cu_seqlens, one segment a frame)
//   out = o Wproj^T + bproj
#pragma once

#include <memory>
#include <string>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/layers/options.hpp"
#include "qwen3vl/layers/text_attention.hpp"
#include "qwen3vl/rope/apply.hpp"
#include "qwen3vl/rope/table.hpp"

namespace qwen3vl::layers {

struct VisionAttentionConfig {
  int64_t hidden_size = 0;  // 1024 (2B/4B) or 1152 (8B and up)
  int64_t num_heads = 0;    // 16; head_dim = hidden_size / num_heads (64 or 72), a multiple of 4
  double rope_theta = 10000.0;
  int64_t max_grid_side = 4096;  // rows and columns allowed: [0, max_grid_side) patches
  // transformers' recipe: fp32 angles in a full table, rotation in fp32
  // (apply_rotary_pos_emb_vision).
  rope::AngleRecipe rope_recipe = rope::AngleRecipe::kTransformersFp32;
  rope::RopeArithmetic rope_arithmetic = rope::RopeArithmetic::kTransformersFp32;
  // Optional: the checkpoint's inv_freq (head_dim / 4 entries, f32 or f64) instead of theta's.
  rope::InvFreq rope_inv_freq;
  LayerOptions options;  // need_weights is not used (varlen attention returns no weights)
};

// Host views of any float dtype (last dimension contiguous); copied to fp32 by create().
struct VisionAttentionWeights {
  TensorView qkv_weight;   // [3 * hidden, hidden]
  TensorView qkv_bias;     // [3 * hidden]
  TensorView proj_weight;  // [hidden, hidden]
  TensorView proj_bias;    // [hidden]
};

struct VisionAttentionInputs {
  TensorView hidden_states;  // [N, hidden] packed patches, the layer's dtype and device
  TensorView positions;      // i32 [2, N]: row, then column of each patch (rope::vision_positions)
  TensorView cu_seqlens;     // i32 [frames + 1] on the host: frame f is patches [cu[f], cu[f+1])
};

class Qwen3VLVisionAttention {
 public:
  [[nodiscard]] static Status try_create(const VisionAttentionConfig& config,
                                         const VisionAttentionWeights& weights, int layer_idx,
                                         std::unique_ptr<Qwen3VLVisionAttention>* out);
  static std::unique_ptr<Qwen3VLVisionAttention> create(const VisionAttentionConfig& config,
                                                        const VisionAttentionWeights& weights,
                                                        int layer_idx = 0);  // throws Error
  ~Qwen3VLVisionAttention();
  Qwen3VLVisionAttention(const Qwen3VLVisionAttention&) = delete;
  Qwen3VLVisionAttention& operator=(const Qwen3VLVisionAttention&) = delete;

  const VisionAttentionConfig& config() const;

  [[nodiscard]] Status supports(const VisionAttentionInputs& inputs,
                                const TensorView& output) const;
  size_t workspace_size(const VisionAttentionInputs& inputs, const TensorView& output) const;
  // output [N, hidden] in the layer's dtype. No allocation; `stream` is the cudaStream_t on CUDA.
  [[nodiscard]] Status forward(const VisionAttentionInputs& inputs, const TensorView& output,
                               Workspace workspace, void* stream = nullptr,
                               LayerProfile* profile = nullptr) const;
  // Convenience for host callers (CPU layer): allocates, throws Error. The arguments come in
  // VisionAttentionInputs' order (hidden states, position data, cu_seqlens); passing the two
  // i32 views the other way round is a shape error ([2, N] against [frames + 1]).
  Tensor operator()(const TensorView& hidden_states, const TensorView& positions,
                    const TensorView& cu_seqlens) const;

  std::string describe() const;

  struct Impl;

 private:
  explicit Qwen3VLVisionAttention(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qwen3vl::layers
