// What both Qwen3-VL attention layers share: where they run, the activation dtype, the attention
// kernel the selector builds for them, and the (host) weight form they are created from.
#pragma once

#include <cstdint>

#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/kv_cache/kv_format.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl::layers {

struct LayerOptions {
  Device device = Device::kCPU;
  int device_index = 0;
  // Activations, q/k/v and the output are stored in this dtype (f32, f16 or bf16); projections,
  // norms and softmax compute in fp32 and round to it where transformers rounds to its dtype.
  DType dtype = DType::kF32;
  Variant variant = Variant::kAuto;  // the attention kernel, through Selector::create
  bool need_weights = false;         // the layer can return attention weights (standard variant)
  CpuOptions cpu;                    // threads and ISA of every CPU step
  // The text layer's KV cache format (KvCacheConfig::format of the caches it is given: a cache of
  // another format is refused). kFloat: f32, f16 or bf16 storage; int8 / int4 / fp8e4m3 caches
  // (kv_cache/kv_format.hpp) are read by the CPU decode path. The vision layer keeps no cache.
  KvFormat kv_format = KvFormat::kFloat;
  // int8 caches: decode's Q.K as integer dot products (DecodeParams::integer_qk).
  bool kv_integer_qk = false;
};

}  // namespace qwen3vl::layers
