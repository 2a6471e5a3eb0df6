// The CUDA exact top-k object (cuda/dynamic_sparse/exact_topk_cuda.cu), made by
// create_dynamic_sparse_cuda for DynamicSparseMethod::kExactTopK.
#pragma once

#include <memory>

#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"

namespace qwen3vl::detail {

Status create_exact_topk_cuda(const CudaOptions& options, const DynamicSparseConfig& config,
                              std::unique_ptr<DynamicSparseAttention>* out);

}  // namespace qwen3vl::detail
