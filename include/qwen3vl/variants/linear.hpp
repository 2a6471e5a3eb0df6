// Linear attention (Katharopoulos et al. 2020; Performer FAVOR+): softmax(q k^T) is replaced by a
// kernel phi(q)^T phi(k), so the keys fold into a state S = sum_j phi(k_j) v_j^T (F x D) and
// z = sum_j phi(k_j) (F), and each row costs O(F D) instead of O(L D):
//   o_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps)
// with S_i, z_i over the keys row i sees (all of them, or j <= i under a causal mask).
// F, the feature count, is D for elu+1 and `performer_features` for FAVOR+.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl {

enum class LinearFeatureMap : uint8_t {
  kEluPlusOne,  // phi(x) = elu(x) + 1 (no 1/sqrt(D)); F = D; AttentionParams::scale must be unset
  kPerformer,   // FAVOR+ positive random features (softmax kernel with AttentionParams::scale)
};

// Norms of the Performer's orthogonal random rows.
enum class PerformerNorm : uint8_t {
  kChi,          // each row rescaled to the norm of a fresh Gaussian D-vector (chi_D distributed)
  kSqrtHeadDim,  // each row rescaled to sqrt(D)
};

struct LinearConfig {
  LinearFeatureMap feature_map = LinearFeatureMap::kEluPlusOne;
  // Performer only: the head_dim its projection is built for (at creation; forward() with another
  // head_dim is an error).
  int64_t head_dim = 0;
  // Performer only. 0: D ln D rounded up to a multiple of 16 (624 for D = 128).
  int64_t performer_features = 0;
  uint64_t performer_seed = 0;
  PerformerNorm performer_norm = PerformerNorm::kChi;
  int64_t chunk = 64;  // tokens per chunk of the chunked parallel form (1..256)
  float eps = 1e-6f;   // added to the normaliser phi(q)^T z
};

// Features of a config for a head_dim (D for elu+1).
int64_t linear_feature_count(const LinearConfig& config, int64_t head_dim);

// The Performer projection omega [m, D], row-major, in float: blocks of D orthogonal rows (Gaussian
// matrices orthogonalised by Gram-Schmidt in double), rescaled per `performer_norm`; the last
// block truncated to m rows. Deterministic in (head_dim, m, seed, norm); built on the host.
Status make_performer_projection(const LinearConfig& config, int64_t head_dim,
                                 std::vector<float>* omega);

// FAVOR+ feature map (what the kernels apply, spelled out for tests): with x' = sqrt(scale) x,
// a_r = omega_r . x', phi_r(x) = m^(-1/2) (exp(a_r - |x'|^2 / 2 - c) + 1e-4), where the stabiliser
// c is max_r a_r of the row for queries, and for keys the max over every key of the (sequence, KV
// head) in the call. Both cancel in o_i's ratio up to the 1e-4.
constexpr float kPerformerEpsilon = 1e-4f;

// The recurrent state of causal linear attention, caller-owned f32 views on the variant's device:
//   s [B, Hkv, F, D] = sum over the keys seen so far of phi(k_j) v_j^T, per KV head
//   z [B, Hkv, F]    = sum of phi(k_j)
// Query heads read their group's state (GQA). Contiguous last dimension; other strides free.
struct LinearState {
  TensorView s;
  TensorView z;
};

// The linear variant. forward() computes non-causal (MaskKind::kNone) or causal (kCausal and
// kCausalTopLeft, which coincide because Lq == Lk is required) linear attention of q, k, v [B, L,
// H, D] or varlen, without a state. The state API is causal only and needs elu+1 features (the
// Performer's key stabiliser is a max over the call's keys, which a running state cannot revise):
//   prefill(): zeroes the state, runs causal attention over the tokens, leaves the final state;
//   step():    continues from the state with 1..n new tokens per sequence (q, k, v hold only the
//              new tokens) and updates it. prefill + steps equal one prefill over all tokens.
// Additive masks, attention weights, LSE, soft-capping, windows, query positions and block
// layouts are kUnsupported; key_lengths zero the padded keys' features (fixed-length batches).
// Causal varlen on CUDA needs cu_seqlens_k to be the same tensor as cu_seqlens_q (Lq == Lk per
// sequence; the host cannot read device values to compare them).
class LinearAttention : public Attention {
 public:
  virtual Status prefill(const AttentionParams& params, const LinearState& state,
                         Workspace workspace, void* stream = nullptr) const = 0;
  virtual Status step(const AttentionParams& params, const LinearState& state, Workspace workspace,
                      void* stream = nullptr) const = 0;
  // workspace_size() covers prefill() and step() too.
};

// CPU: chunked parallel form (inter-chunk state, masked C x C intra-chunk products) with Eigen in
// per-ISA translation units, oneTBB over (sequence, KV head); features are computed per chunk in
// the thread's workspace slot (O(threads x (C F + F D)), independent of L).
Status create_linear_cpu(const CpuOptions& options, const LinearConfig& config,
                         std::unique_ptr<LinearAttention>* out);
Status create_linear_cpu(const CpuOptions& options, const LinearConfig& config,
                         std::unique_ptr<Attention>* out);

}  // namespace qwen3vl
