// Host-side parts of the linear variant shared by the CPU and CUDA backends: config and argument
// checks (one set of rules and messages for both devices).
#pragma once

#include "qwen3vl/core/params.hpp"
#include "qwen3vl/variants/linear.hpp"

namespace qwen3vl::detail {

// What the checks derive for the kernels.
struct LinearCall {
  AttentionShape shape;
  int64_t features = 0;  // F
  bool causal = false;
};

Status check_linear_config(const LinearConfig& config);

// validate() plus the linear variant's own limits; `device` is the backend's.
Status check_linear_params(const AttentionParams& p, const LinearConfig& config, Device device,
                           LinearCall* call);
// The linear variant's own limits for params that passed validate(), whose shape call->shape
// holds (Attention::plan()).
Status check_linear_problem(const AttentionParams& p, const LinearConfig& config, Device device,
                            LinearCall* call);

// The state API: causal, elu+1, and s [B, Hkv, F, D] / z [B, Hkv, F] f32 on `device`.
Status check_linear_state(const AttentionParams& p, const LinearConfig& config,
                          const LinearState& state, Device device, LinearCall* call);

}  // namespace qwen3vl::detail
