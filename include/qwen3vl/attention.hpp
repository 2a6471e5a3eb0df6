// qwen3vl-attention: the umbrella header.
#pragma once

#include "qwen3vl/core/dtype.hpp"
#include "qwen3vl/core/mask.hpp"
#include "qwen3vl/core/params.hpp"
#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/hardware/hardware_info.hpp"
#include "qwen3vl/layers/layers.hpp"
#include "qwen3vl/rope/rope.hpp"
#include "qwen3vl/selector/selector.hpp"
#include "qwen3vl/variants/attention.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/linear.hpp"
#include "qwen3vl/variants/moe.hpp"
#include "qwen3vl/variants/sparse.hpp"
#include "qwen3vl/variants/standard.hpp"
#if QWEN3VL_WITH_CUDA  // the CUDA variants (standard, flash2, sm61_tiled); defined by the target
#include "qwen3vl/cuda/attention_cuda.hpp"
#endif
