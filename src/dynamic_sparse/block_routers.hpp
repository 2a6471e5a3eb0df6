// The block routers (block top-k, vertical-slash): each writes one BSR layout per (sequence, KV
// head) into the caller's workspace.
#pragma once

#include <cstddef>

#include "layout_builder.hpp"
#include "routing_common.hpp"

namespace qwen3vl::detail {

// Column blocks one row block can list (the layout's slot width).
int64_t block_topk_row_capacity(const RoutingCall& call, int64_t col_blocks);

// With a sizing carver these only take their scratch; otherwise they also route into `layout`.
void route_block_topk(const RoutingCall& call, Carver* carver, const LayoutBuilder& layout);
void route_vertical_slash(const RoutingCall& call, Carver* carver, const LayoutBuilder& layout);

// The layout of the call's method: its bytes come first in the workspace, the scratch after them.
// `layout_bytes` (optional): bytes of the layout alone (the scratch may be reused after routing).
size_t block_route_bytes(const RoutingCall& call, size_t* layout_bytes = nullptr);
// Routes into `workspace` (block_route_bytes of it); *density = kept / visible block pairs.
void route_blocks(const RoutingCall& call, void* workspace, BlockLayout* layout, double* density);

}  // namespace qwen3vl::detail
