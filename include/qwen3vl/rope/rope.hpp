// Rotary position embeddings: frequencies and scaling, M-RoPE section maps, cos/sin tables, the
// position-id builder, vision 2-D RoPE, the fused q+k apply (CPU here; CUDA in rope/cuda.hpp) and
// the cos/sin lookup for given positions.
#pragma once

#include "qwen3vl/rope/apply.hpp"
#include "qwen3vl/rope/cos_sin.hpp"
#include "qwen3vl/rope/grid.hpp"
#include "qwen3vl/rope/mrope.hpp"
#include "qwen3vl/rope/position_ids.hpp"
#include "qwen3vl/rope/scaling.hpp"
#include "qwen3vl/rope/table.hpp"
#include "qwen3vl/rope/vision.hpp"
