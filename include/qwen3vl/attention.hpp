// qwen3vl-attention: the umbrella header. It brings everything docs/api.md documents: tensors and
// errors, the selector and every variant, KV caches with decode, Quest and merge_states, RoPE and
// the Qwen3-VL layers (and, in a CUDA build, the CUDA entry points). The seeded test-data helper
// qwen3vl/testing/random_fill.hpp is left out on purpose (it brings <random>).
#pragma once

#include "qwen3vl/core/block_layout.hpp"
#include "qwen3vl/core/dtype.hpp"
#include "qwen3vl/core/mask.hpp"
#include "qwen3vl/core/merge_states.hpp"
#include "qwen3vl/core/params.hpp"
#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/hardware/hardware_info.hpp"
#include "qwen3vl/kv_cache/append.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/kv_cache/quest.hpp"
#include "qwen3vl/layers/layers.hpp"
#include "qwen3vl/rope/rope.hpp"
#include "qwen3vl/selector/selector.hpp"
#include "qwen3vl/variants/attention.hpp"
#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/linear.hpp"
#include "qwen3vl/variants/mixture_of_heads.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "qwen3vl/variants/static_sparse.hpp"
#if QWEN3VL_WITH_CUDA  // the CUDA entry points; defined by the target
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/merge_states.hpp"
#include "qwen3vl/kv_cache/cuda.hpp"
#include "qwen3vl/rope/cuda.hpp"
#endif
