// The CUDA side of the decode routine: a paged (or contiguous) f16 cache filled by device
// appends, decode timed against a device-to-device copy of 1 GiB, and a check of the output
// against the CPU kernel on the same cache. The calls cycle through copies of the cache storage
// (at least 512 MiB of them, 10x the H100/H200 L2), so that every call reads its K/V from HBM as a
// real decode step does, not from the L2 the previous call filled.
//
// Timing (bench/common/cuda_timing.hpp): the decode and the copy are each timed twice, the same
// two ways, and each ratio divides numbers measured the same way:
//  - events (the headline ms, copy GB/s, ratio): back-to-back launches on one stream outside any
//    graph, an event before and after each group of calls; the median over groups of the time per
//    call. If the host launches slower than the GPU runs the calls, this figure shows it.
//  - graph: the same calls captured into a CUDA graph, its replays timed between events (no host
//    launch gaps).
// The copy is one kernel (bench/common/copy_kernel.cu) in both: a graph's memcpy node ran at about
// 2.7 TB/s (read + written) against 4.14 TB/s for cudaMemcpyAsync on an H200, which made the graph
// ratio of earlier versions about 1.5x high.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/copy_kernel.hpp"
#include "common/cuda_timing.hpp"
#include "decode_bench.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/cuda/device_buffer.cuh"
#include "qwen3vl/kv_cache/cuda.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl::bench {

using testing::fill_uniform;

namespace {

void check(cudaError_t e, const char* what) { throw_if_error(cuda_status(e, what)); }

// Milliseconds per call of `record`: the median of `repeats` event-timed groups of `per_sample`
// calls after one untimed group.
template <class F>
double events_ms(cudaStream_t stream, int per_sample, int repeats, F&& record) {
  return cuda_median_ms(stream, per_sample, repeats, per_sample, record);
}

// The same from a graph of `per_sample` calls, replayed `repeats` times after one warm-up replay.
template <class F>
double graph_ms(cudaStream_t stream, int per_sample, int repeats, F&& record) {
  std::vector<double> ms;
  throw_if_error(cuda_graph_samples(stream, 1, repeats, per_sample, record, &ms));
  return median(ms);
}

}  // namespace

DecodeResult run_cuda_decode(const DecodeCase& c) {
  const KvCacheConfig config = cache_config(c);
  const std::vector<int64_t> shape = kv_storage_shape(config);
  int64_t elems = 1;
  for (int64_t x : shape) elems *= x;
  const size_t bytes = static_cast<size_t>(elems * size_of(c.dtype));
  DeviceBuffer k_store(bytes), v_store(bytes);
  TensorView kv = TensorView::contiguous(k_store.data(), c.dtype,
                                         {shape[0], shape[1], shape[2], shape[3]}, Device::kCUDA);
  if (c.head_major) {  // [major, Hkv, minor, D] memory order, the same logical shape
    kv.stride[0] = shape[1] * shape[2] * shape[3];
    kv.stride[1] = shape[3];
    kv.stride[2] = shape[1] * shape[3];
  }
  TensorView vv = kv;
  vv.data = v_store.data();
  KvCache cache;
  throw_if_error(KvCache::create(config, kv, vv, &cache, &cuda_kv_storage_ops()));

  // Append the cache in chunks from one random device chunk (device-side conversion and copies).
  const int64_t chunk = std::min<int64_t>(c.kv_len, 4096);
  Tensor k(c.dtype, {c.batch, chunk, c.kv_heads, c.head_dim}),
      v(c.dtype, {c.batch, chunk, c.kv_heads, c.head_dim});
  fill_uniform(k, 1);
  fill_uniform(v, 2);
  DeviceBuffer kd = DeviceBuffer::copy_of(k), vd = DeviceBuffer::copy_of(v);
  for (int64_t done = 0; done < c.kv_len; done += chunk) {
    TensorView a = kd.view_like(k.view()), b = vd.view_like(v.view());
    a.shape[1] = b.shape[1] = std::min(chunk, c.kv_len - done);
    throw_if_error(cache.append(a, b));
  }
  CudaKvMetadata meta;
  throw_if_error(CudaKvMetadata::create(config, 0, &meta));
  throw_if_error(meta.upload(cache));

  // Identical copies of the storage to rotate through (the same block table serves all).
  constexpr size_t kRotateBytes = size_t(512) << 20;
  const size_t copies = std::max<size_t>(2, (kRotateBytes + 2 * bytes - 1) / (2 * bytes));
  std::vector<DeviceBuffer> k_copies, v_copies;
  for (size_t i = 1; i < copies; ++i) {
    k_copies.emplace_back(bytes);
    v_copies.emplace_back(bytes);
    check(cudaMemcpy(k_copies.back().data(), k_store.data(), bytes, cudaMemcpyDeviceToDevice),
          "cudaMemcpy");
    check(cudaMemcpy(v_copies.back().data(), v_store.data(), bytes, cudaMemcpyDeviceToDevice),
          "cudaMemcpy");
  }

  Tensor q(c.dtype, {c.batch, c.rows, c.heads, c.head_dim}),
      out(c.dtype, {c.batch, c.rows, c.heads, c.head_dim});
  fill_uniform(q, 3);
  DeviceBuffer qd = DeviceBuffer::copy_of(q), od(static_cast<size_t>(out.bytes()));
  DecodeParams p;
  p.q = qd.view_like(q.view());
  p.out = od.view_like(out.view());
  p.kv = meta.view(cache);
  p.num_splits = c.num_splits;
  std::unique_ptr<DecodeAttention> decode;
  CudaOptions options;
  options.decode.tensor_cores = c.tensor_cores;
  throw_if_error(create_decode_cuda(options, &decode));
  throw_if_error(decode->supports(p));
  DeviceBuffer ws(decode->workspace_size(p));
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "cudaStreamCreate");

  DecodeResult r;
  r.device = decode->describe();
  r.splits = decode->splits(p);
  // Copy bandwidth: a device-to-device copy of a buffer much larger than L2, sampled before and
  // after the decode, each sample both ways (events and graph).
  const size_t copy_bytes = size_t(1) << 30;
  DeviceBuffer src(copy_bytes), dst(copy_bytes);
  src.fill_bytes(1);
  auto copy_once = [&] { return launch_copy_kernel(dst.data(), src.data(), copy_bytes, stream); };
  auto gbps = [&](double ms) {
    return 2.0 * static_cast<double>(copy_bytes) / (ms * 1e6);
  };  // read + written
  std::vector<double> copy, graph_copy;
  auto sample_copy = [&] {
    copy.push_back(gbps(events_ms(stream, 4, 10, copy_once)));
    graph_copy.push_back(gbps(graph_ms(stream, 4, 10, copy_once)));
  };
  sample_copy();
  size_t call = 0;
  auto decode_once = [&] {
    DecodeParams pc = p;
    const size_t i = call++ % copies;
    if (i > 0) {
      pc.kv.k.data = k_copies[i - 1].data();
      pc.kv.v.data = v_copies[i - 1].data();
    }
    throw_if_error(decode->forward(pc, Workspace{ws.data(), ws.bytes()}, stream));
  };
  r.ms = events_ms(stream, 20, c.repeats, decode_once);
  r.graph_ms = graph_ms(stream, 20, c.repeats, decode_once);
  r.min_ms = r.ms;
  sample_copy();
  r.copy_gbps = median(copy);
  r.best_copy_gbps = *std::max_element(copy.begin(), copy.end());
  r.graph_copy_gbps = median(graph_copy);

  // The same decode on the CPU from a host copy of the cache.
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  od.download(out.view().data, static_cast<size_t>(out.bytes()));
  Tensor hk(c.dtype, shape), hv(c.dtype, shape),
      ref(c.dtype, {c.batch, c.rows, c.heads, c.head_dim});
  k_store.download(hk.view().data, bytes);
  v_store.download(hv.view().data, bytes);
  DecodeParams hp = p;
  hp.q = q.view();
  hp.out = ref.view();
  hp.kv = cache.view();
  hp.kv.k = hk.view();
  hp.kv.v = hv.view();
  std::unique_ptr<DecodeAttention> cpu;
  throw_if_error(create_decode_cpu(CpuOptions{}, &cpu));
  cpu->run(hp);
  r.max_abs_diff = 0;
  for (int64_t i = 0; i < out.numel(); ++i)
    r.max_abs_diff =
        std::max(r.max_abs_diff, static_cast<double>(std::fabs(out.get(i) - ref.get(i))));
  cudaStreamDestroy(stream);
  return r;
}

}  // namespace qwen3vl::bench
