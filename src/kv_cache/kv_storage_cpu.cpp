// Token-row movement for KV storage in host memory: one templated row copy per (source, storage)
// dtype pair, converting through fp32 with round-to-nearest-even.
#include "qwen3vl/kv_cache/kv_cache.hpp"

#include <cmath>

namespace qwen3vl {
namespace {

template <class Src, class Dst>
void copy_rows(const TensorView& dst, const TensorView& src, const KvRun& run) {
  const int64_t heads = dst.shape[2], d = dst.shape[3];
  for (int64_t i = 0; i < run.count; ++i)
    for (int64_t h = 0; h < heads; ++h) {
      const Src* s = src.ptr<const Src>() + src.offset(run.src_major, run.src_minor + i, h);
      Dst* o = dst.ptr<Dst>() + dst.offset(run.dst_major, run.dst_minor + i, h);
      for (int64_t c = 0; c < d; ++c) o[c] = from_float<Dst>(to_float(s[c]));
    }
}

Status write_cpu(const TensorView& dst_k, const TensorView& dst_v, const TensorView& src_k,
                 const TensorView& src_v, const KvRun* runs, int64_t count, void* /*stream*/) {
  const TensorView* pairs[2][2] = {{&dst_k, &src_k}, {&dst_v, &src_v}};
  for (auto& pair : pairs) {
    const TensorView& dst = *pair[0];
    const TensorView& src = *pair[1];
    dispatch_float_dtype(src.dtype, [&](auto s) {
      dispatch_float_dtype(dst.dtype, [&](auto o) {
        for (int64_t r = 0; r < count; ++r) copy_rows<decltype(s), decltype(o)>(dst, src, runs[r]);
      });
    });
  }
  return Status();
}

// bounds[run.dst_major] over the run's stored rows: min into [., 0], max into [., 1].
template <class T>
void fold_rows(const TensorView& bounds, const TensorView& k, const KvRun& run) {
  const int64_t heads = k.shape[2], d = k.shape[3];
  for (int64_t h = 0; h < heads; ++h) {
    float* lo = bounds.ptr<float>() + bounds.offset(run.dst_major, 0, h);
    float* hi = bounds.ptr<float>() + bounds.offset(run.dst_major, 1, h);
    if (run.dst_minor == 0)
      for (int64_t c = 0; c < d; ++c) {
        lo[c] = INFINITY;
        hi[c] = -INFINITY;
      }
    for (int64_t i = 0; i < run.count; ++i) {
      const T* row = k.ptr<const T>() + k.offset(run.dst_major, run.dst_minor + i, h);
      for (int64_t c = 0; c < d; ++c) {
        const float x = to_float(row[c]);
        lo[c] = x < lo[c] ? x : lo[c];
        hi[c] = x > hi[c] ? x : hi[c];
      }
    }
  }
}

Status fold_key_bounds_cpu(const TensorView& bounds, const TensorView& k_storage, const KvRun* runs,
                           int64_t count, void* /*stream*/) {
  dispatch_float_dtype(k_storage.dtype, [&](auto t) {
    for (int64_t r = 0; r < count; ++r) fold_rows<decltype(t)>(bounds, k_storage, runs[r]);
  });
  return Status();
}

}  // namespace

const KvStorageOps& cpu_kv_storage_ops() {
  static const KvStorageOps ops{Device::kCPU, &write_cpu, &fold_key_bounds_cpu};
  return ops;
}

}  // namespace qwen3vl
