// The Qwen3-VL attention layers: text (projections, QK-norm, M-RoPE, GQA, KV cache) and vision
// (fused qkv, 2-D RoPE, per-frame attention).
#pragma once

#include "qwen3vl/layers/options.hpp"
#include "qwen3vl/layers/text_attention.hpp"
#include "qwen3vl/layers/vision_attention.hpp"
