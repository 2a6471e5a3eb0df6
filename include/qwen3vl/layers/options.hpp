// What both Qwen3-VL attention layers share: where they run, the activation dtype, the attention
// kernel the selector builds for them, and the (host) weight form they are created from.
#pragma once

#include <cstdint>

#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/cpu/options.hpp"
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
};

}  // namespace qwen3vl::layers
