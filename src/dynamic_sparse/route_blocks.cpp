// The block routers' common frame: the layout first in the workspace, the router's scratch after
// it, then compaction and the density.
#include <algorithm>

#include "block_routers.hpp"

namespace qwen3vl::detail {
namespace {

// Carves the layout and the router's scratch from `carver` (sizing only when its base is null).
LayoutBuilder carve_route(const RoutingCall& call, Carver* carver, size_t* layout_bytes) {
  const AttentionShape& s = call.shape;
  const DynamicSparseConfig& cfg = *call.config;
  const int64_t nbq = (s.max_q + cfg.block_q - 1) / cfg.block_q;
  const int64_t nbk = (s.max_k + cfg.block_k - 1) / cfg.block_k;
  const int64_t width =
      cfg.method == DynamicSparseMethod::kBlockTopK ? block_topk_row_capacity(call, nbk) : nbk;
  LayoutBuilder layout(s.batch * s.kv_heads, nbq, std::max<int64_t>(width, 1), cfg.block_q,
                       cfg.block_k, carver);
  if (layout_bytes) *layout_bytes = carver->used();
  if (cfg.method == DynamicSparseMethod::kBlockTopK)
    route_block_topk(call, carver, layout);
  else
    route_vertical_slash(call, carver, layout);
  return layout;
}

}  // namespace

size_t block_route_bytes(const RoutingCall& call, size_t* layout_bytes) {
  Carver sizing;
  carve_route(call, &sizing, layout_bytes);
  return sizing.used() + kAlignSlack;
}

void route_blocks(const RoutingCall& call, void* workspace, BlockLayout* layout, double* density) {
  Carver carver = carve(workspace);
  const LayoutBuilder built = carve_route(call, &carver, nullptr);
  const int64_t kept = built.compact();
  const int64_t visible =
      visible_block_pairs(*call.params, call.shape, call.config->block_q, call.config->block_k);
  *layout = built.view();
  *density = visible > 0 ? static_cast<double>(kept) / static_cast<double>(visible) : 0.0;
}

}  // namespace qwen3vl::detail
