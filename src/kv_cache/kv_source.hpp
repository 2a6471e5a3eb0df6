// The source rows of a table's append step, as every K/V writer takes them (KvLayerStorage, the
// tiered store's arena): the checks, and the rank-4 view the step's runs address.
#pragma once

#include "qwen3vl/kv_cache/page_table.hpp"

namespace qwen3vl::detail {

// Where the rows go: the storage's geometry and device.
struct KvSourceTarget {
  int64_t batch = 0, kv_heads = 0, head_dim = 0;
  Device device = Device::kCPU;
  int device_index = 0;
};

// k, v as the open step takes them: [batch, step.rows, Hkv, D], or ragged [step.rows, Hkv, D];
// any float dtype, on the target's device, last dimension contiguous.
Status check_kv_source(const TensorView& k, const TensorView& v, const KvAppendStep& step,
                       const KvSourceTarget& target);

// A rank-3 packed view [T, H, D] seen as rank 4 [1, T, H, D], so runs address every source alike.
TensorView kv_source_rows(const TensorView& t);

}  // namespace qwen3vl::detail
