// qwen3vl-decode-step-microbench: the host overhead of one decode step per layer, before and after
// the plan-once shape (a model of 36 layers, Qwen3-VL-8B's attention: Hq 32, Hkv 8, D 128, one
// sequence, a short cache so the kernel is small and the host side shows).
//   CPU, per layer call:     forward() (validates and plans every call)  vs  run() with the step's
//   plan CUDA, per step (36 layers), host time from the first launch to the last, GPU waits
//   excluded:
//     per-layer copies of lengths + block table from pageable memory and forward()  vs
//     one mirror upload (pinned staging) and run() with one plan
// Flags: Google Benchmark's own; --benchmark_filter=Cpu / Cuda.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#if QWEN3VL_BENCH_CUDA
#include <cuda_runtime.h>

#include "qwen3vl/kv_cache/cuda.hpp"
#endif

namespace qwen3vl {
namespace {

using testing::fill_uniform;

constexpr int64_t kHeads = 32, kKvHeads = 8, kDim = 128, kLayers = 36, kBlock = 16;

KvCacheConfig cache_config(int64_t keys) {
  KvCacheConfig c;
  c.layout = KvLayout::kPaged;
  c.batch = 1;
  c.kv_heads = kKvHeads;
  c.head_dim = kDim;
  c.dtype = DType::kF16;
  c.block_size = kBlock;
  c.max_blocks = (keys + kBlock - 1) / kBlock + 1;
  c.num_blocks = c.max_blocks;
  return c;
}

// A host cache holding `keys` tokens, and a decode problem over it.
struct HostStep {
  Tensor k, v, q, out, src;
  KvCache cache;
  DecodeParams params;
  explicit HostStep(int64_t keys) {
    const KvCacheConfig c = cache_config(keys);
    k = Tensor(c.dtype, kv_storage_shape(c));
    v = Tensor(c.dtype, kv_storage_shape(c));
    throw_if_error(KvCache::create(c, k.view(), v.view(), &cache));
    src = Tensor(DType::kF32, {1, keys, kKvHeads, kDim});
    fill_uniform(src, 1);
    throw_if_error(cache.append(src.view(), src.view()));
    q = Tensor(DType::kF16, {1, 1, kHeads, kDim});
    fill_uniform(q, 2);
    out = Tensor(DType::kF16, {1, 1, kHeads, kDim});
    params.q = q.view();
    params.kv = cache.view();
    params.out = out.view();
  }
};

std::unique_ptr<DecodeAttention> cpu_decode() {
  CpuOptions o;
  o.num_threads = 1;  // the host path, not the kernel's parallelism
  std::unique_ptr<DecodeAttention> d;
  throw_if_error(create_decode_cpu(o, &d));
  return d;
}

void BM_CpuDecodeForwardPerLayer(benchmark::State& state) {
  HostStep s(state.range(0));
  const auto dec = cpu_decode();
  std::vector<char> ws(dec->workspace_size(s.params));
  for (auto _ : state) {
    const Status st = dec->forward(s.params, Workspace{ws.data(), ws.size()});
    if (!st.ok()) state.SkipWithError(st.to_string().c_str());
  }
}

void BM_CpuDecodePlannedRunPerLayer(benchmark::State& state) {
  HostStep s(state.range(0));
  const auto dec = cpu_decode();
  DecodePlan plan;
  throw_if_error(dec->plan(s.params, &plan));
  std::vector<char> ws(plan.workspace_bytes);
  for (auto _ : state) {
    const Status st = dec->run(plan, s.params, Workspace{ws.data(), ws.size()});
    if (!st.ok()) state.SkipWithError(st.to_string().c_str());
  }
}

BENCHMARK(BM_CpuDecodeForwardPerLayer)->Arg(16)->Arg(1024);
BENCHMARK(BM_CpuDecodePlannedRunPerLayer)->Arg(16)->Arg(1024);

#if QWEN3VL_BENCH_CUDA
// Device memory for a tensor of `like`'s shape, holding its bytes.
struct DeviceCopy {
  void* data = nullptr;
  TensorView view;
  explicit DeviceCopy(const TensorView& like) {
    const size_t bytes = static_cast<size_t>(like.numel() * size_of(like.dtype));
    if (cudaMalloc(&data, bytes) != cudaSuccess)
      throw Error(StatusCode::kOutOfMemory, "cudaMalloc");
    cudaMemcpy(data, like.data, bytes, cudaMemcpyHostToDevice);
    view = like;
    view.data = data;
    view.device = Device::kCUDA;
  }
  ~DeviceCopy() { cudaFree(data); }
};

struct DeviceStep {
  HostStep host;
  DeviceCopy k, v, q, out;
  KvCache cache;
  std::unique_ptr<DecodeAttention> dec;
  cudaStream_t stream = nullptr;
  explicit DeviceStep(int64_t keys)
      : host(keys), k(host.k.view()), v(host.v.view()), q(host.q.view()), out(host.out.view()) {
    const KvCacheConfig c = cache_config(keys);
    throw_if_error(KvCache::create(c, k.view, v.view, &cache, &cuda_kv_storage_ops()));
    Tensor src(DType::kF32, {1, keys, kKvHeads, kDim});
    DeviceCopy dsrc(src.view());
    throw_if_error(cache.append(dsrc.view, dsrc.view));
    cudaDeviceSynchronize();
    throw_if_error(create_decode_cuda(CudaOptions{0}, &dec));
    cudaStreamCreate(&stream);
  }
  ~DeviceStep() { cudaStreamDestroy(stream); }
  DecodeParams params(const KvCacheView& kv) const {
    DecodeParams p;
    p.q = q.view;
    p.kv = kv;
    p.out = out.view;
    return p;
  }
};

// Before: every layer copied lengths and block table from pageable host memory, then forward().
void BM_CudaDecodeStepPerLayerCopies(benchmark::State& state) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0)
    return state.SkipWithError("no CUDA device");
  DeviceStep s(state.range(0));
  const KvCacheConfig c = s.cache.config();
  int32_t *lens = nullptr, *table = nullptr;
  cudaMalloc(&lens, sizeof(int32_t) * c.batch);
  cudaMalloc(&table, sizeof(int32_t) * c.batch * c.max_blocks);
  KvCacheView kv = s.cache.view();
  kv.seq_lens.data = lens;
  kv.block_table.data = table;
  kv.seq_lens.device = kv.block_table.device = Device::kCUDA;
  const DecodeParams p = s.params(kv);
  void* ws = nullptr;
  const size_t bytes = s.dec->workspace_size(p);
  cudaMalloc(&ws, bytes + 1);
  for (auto _ : state) {
    for (int l = 0; l < kLayers; ++l) {
      cudaMemcpyAsync(lens, s.cache.lengths().data(), sizeof(int32_t) * c.batch,
                      cudaMemcpyHostToDevice, s.stream);
      cudaMemcpyAsync(table, s.cache.block_table().data(), sizeof(int32_t) * c.batch * c.max_blocks,
                      cudaMemcpyHostToDevice, s.stream);
      const Status st = s.dec->forward(p, Workspace{ws, bytes}, s.stream);
      if (!st.ok()) state.SkipWithError(st.to_string().c_str());
    }
    state.PauseTiming();
    cudaStreamSynchronize(s.stream);
    state.ResumeTiming();
  }
  cudaFree(ws);
  cudaFree(lens);
  cudaFree(table);
  state.counters["layers"] = kLayers;
}

// After: one upload of the table's mirror a step, one plan, run() per layer.
void BM_CudaDecodeStepSharedTable(benchmark::State& state) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0)
    return state.SkipWithError("no CUDA device");
  DeviceStep s(state.range(0));
  KvPageTable& table = s.cache.table();
  throw_if_error(table.sync_mirror(s.stream));
  const DecodeParams p = s.params(s.cache.storage().device_view(table));
  DecodePlan plan;
  throw_if_error(s.dec->plan(p, &plan));
  void* ws = nullptr;
  cudaMalloc(&ws, plan.workspace_bytes + 1);
  for (auto _ : state) {
    // A new step: the table changed (an empty append bumps its version), one upload.
    throw_if_error(table.begin_append(0));
    throw_if_error(table.sync_mirror(s.stream));
    for (int l = 0; l < kLayers; ++l) {
      const Status st = s.dec->run(plan, p, Workspace{ws, plan.workspace_bytes}, s.stream);
      if (!st.ok()) state.SkipWithError(st.to_string().c_str());
    }
    throw_if_error(table.commit());
    state.PauseTiming();
    cudaStreamSynchronize(s.stream);
    state.ResumeTiming();
  }
  cudaFree(ws);
  state.counters["layers"] = kLayers;
  state.counters["uploads_per_step"] =
      static_cast<double>(table.mirror()->uploads()) / static_cast<double>(state.iterations() + 1);
}

BENCHMARK(BM_CudaDecodeStepPerLayerCopies)->Arg(16)->UseRealTime();
BENCHMARK(BM_CudaDecodeStepSharedTable)->Arg(16)->UseRealTime();
#endif

}  // namespace
}  // namespace qwen3vl

BENCHMARK_MAIN();
