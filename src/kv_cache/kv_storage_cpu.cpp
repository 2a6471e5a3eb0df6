// Token-row movement for KV storage in host memory: one templated row copy per (source, storage)
// dtype pair, converting through fp32 with round-to-nearest-even; compressed storage encodes rows
// with kv_encode_row and copies codes and scales inside the storage.
#include "qwen3vl/kv_cache/kv_cache.hpp"

#include <cmath>
#include <cstring>

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

// Compressed storage: codes (u8 [major, minor, Hkv, bytes]) and f16 scales alike.
template <class Src>
void encode_rows(KvFormat f, const TensorView& codes, const TensorView& scales,
                 const TensorView& src, const KvRun& run) {
  const int64_t heads = codes.shape[2], d = src.shape[3];
  float row[256];
  for (int64_t i = 0; i < run.count; ++i)
    for (int64_t h = 0; h < heads; ++h) {
      const Src* s = src.ptr<const Src>() + src.offset(run.src_major, run.src_minor + i, h);
      for (int64_t c = 0; c < d; ++c) row[c] = to_float(s[c]);
      kv_encode_row(f, row, d,
                    codes.ptr<uint8_t>() + codes.offset(run.dst_major, run.dst_minor + i, h),
                    scales.ptr<half>() + scales.offset(run.dst_major, run.dst_minor + i, h));
    }
}

template <class T>
void copy_coded_rows(const TensorView& t, const KvRun& run) {
  const int64_t heads = t.shape[2], n = t.shape[3];
  for (int64_t i = 0; i < run.count; ++i)
    for (int64_t h = 0; h < heads; ++h)
      std::memcpy(t.ptr<T>() + t.offset(run.dst_major, run.dst_minor + i, h),
                  t.ptr<const T>() + t.offset(run.src_major, run.src_minor + i, h),
                  static_cast<size_t>(n) * sizeof(T));
}

Status write_coded_cpu(const KvCodedStorage& dst, const TensorView& src_k, const TensorView& src_v,
                       const KvRun* runs, int64_t count, void* /*stream*/) {
  if (src_k.data == dst.k.data && src_v.data == dst.v.data) {  // a copy inside the storage
    for (int64_t r = 0; r < count; ++r) {
      copy_coded_rows<uint8_t>(dst.k, runs[r]);
      copy_coded_rows<uint8_t>(dst.v, runs[r]);
      copy_coded_rows<half>(dst.k_scales, runs[r]);
      copy_coded_rows<half>(dst.v_scales, runs[r]);
    }
    return Status();
  }
  const TensorView* sets[2][3] = {{&dst.k, &dst.k_scales, &src_k}, {&dst.v, &dst.v_scales, &src_v}};
  for (auto& set : sets)
    dispatch_float_dtype(set[2]->dtype, [&](auto s) {
      for (int64_t r = 0; r < count; ++r)
        encode_rows<decltype(s)>(dst.format, *set[0], *set[1], *set[2], runs[r]);
    });
  return Status();
}

Status fold_coded_key_bounds_cpu(const TensorView& bounds, const KvCodedStorage& st,
                                 const KvRun* runs, int64_t count, void* /*stream*/) {
  const int64_t heads = st.k.shape[2], d = bounds.shape[3];
  float x[256];
  for (int64_t r = 0; r < count; ++r) {
    const KvRun& run = runs[r];
    for (int64_t h = 0; h < heads; ++h) {
      float* lo = bounds.ptr<float>() + bounds.offset(run.dst_major, 0, h);
      float* hi = bounds.ptr<float>() + bounds.offset(run.dst_major, 1, h);
      if (run.dst_minor == 0)
        for (int64_t c = 0; c < d; ++c) {
          lo[c] = INFINITY;
          hi[c] = -INFINITY;
        }
      for (int64_t i = 0; i < run.count; ++i) {
        kv_decode_row(
            st.format, st.k.ptr<const uint8_t>() + st.k.offset(run.dst_major, run.dst_minor + i, h),
            st.k_scales.ptr<const half>() + st.k_scales.offset(run.dst_major, run.dst_minor + i, h),
            d, x);
        for (int64_t c = 0; c < d; ++c) {
          lo[c] = x[c] < lo[c] ? x[c] : lo[c];
          hi[c] = x[c] > hi[c] ? x[c] : hi[c];
        }
      }
    }
  }
  return Status();
}

}  // namespace

const KvStorageOps& cpu_kv_storage_ops() {
  static const KvStorageOps ops{Device::kCPU, &write_cpu,       &fold_key_bounds_cpu,
                                nullptr,      &write_coded_cpu, &fold_coded_key_bounds_cpu};
  return ops;
}

}  // namespace qwen3vl
