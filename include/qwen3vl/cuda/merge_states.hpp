// merge_states on CUDA (target qwen3vl::attention_cuda): the host merge_states' contract
// (core/merge_states.hpp) for partial states in device memory, so that partial results of
// separate device calls (a shared prefix and each sequence's own keys, key splits, chunks of a
// prefill) can be combined on the GPU. Declarations only: no CUDA header is needed.
#pragma once

#include "qwen3vl/core/merge_states.hpp"

namespace qwen3vl {

// Merges (o1, lse1) and (o2, lse2) into (out, lse_out), every view in the memory of the current
// CUDA device:
//   o1, o2, out:         [tokens, heads, head_dim], any float dtype each, last dimension contiguous
//   lse1, lse2, lse_out: f32 [tokens, heads], natural log, -inf for an empty partial
// out / lse_out may alias o1 / lse1 or o2 / lse2. Same arithmetic as the host merge (an empty
// partial is never read, two give 0 and -inf, a NaN LSE a NaN merge). One kernel on `stream`
// (a cudaStream_t; null: the default stream), no host sync; the checks read shapes only.
Status merge_states_cuda(const TensorView& o1, const TensorView& lse1, const TensorView& o2,
                         const TensorView& lse2, const TensorView& out, const TensorView& lse_out,
                         void* stream = nullptr);

}  // namespace qwen3vl
