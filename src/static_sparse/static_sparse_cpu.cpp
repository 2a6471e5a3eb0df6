// The static-sparse CPU variant: the pattern's host layout, built once per problem shape, run by
// the block-sparse CPU object.
#include <memory>

#include "layout_cache.hpp"
#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/static_sparse.hpp"

namespace qwen3vl {
namespace {

Status place_on_host(int /*device*/, detail::PatternLayout* layout) {
  layout->view = layout->host.view();
  return Status();
}

}  // namespace

Status create_static_sparse_cpu(const CpuOptions& options, const StaticSparseConfig& config,
                                std::unique_ptr<Attention>* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  QWEN3VL_RETURN_IF_ERROR(validate(config));
  std::unique_ptr<Attention> block_sparse;
  QWEN3VL_RETURN_IF_ERROR(create_block_sparse_cpu(options, &block_sparse));
  *out = std::make_unique<detail::StaticSparseAttention>(std::move(block_sparse), config,
                                                         place_on_host, block_layout_density);
  return Status();
}

}  // namespace qwen3vl
