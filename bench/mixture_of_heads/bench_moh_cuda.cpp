// The moh routine on a CUDA device: mixture-of-heads against dense CUDA flash2 in the same run
// (CUDA events, bench/common/cuda_timing.hpp: median of --reps single calls after 2 warm-ups;
// at least 10), the same problem and routings as on the CPU.
#include <cuda_runtime.h>

#include <memory>

#include "common/cuda_timing.hpp"
#include "moh_bench_common.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/device_buffer.cuh"
#include "qwen3vl/testing/random_fill.hpp"

using namespace qwen3vl;
using qwen3vl::testing::fill_uniform;

namespace {

template <class F>
double time_ms(int reps, F&& f) {
  return bench::cuda_median_ms(nullptr, 2, reps, 1, f);
}

}  // namespace

int qwen3vl::bench::run_moh_cuda(bench::MoHBenchOptions o, bench::Report* report) {
  if (o.reps < 10) o.reps = 10;
  std::unique_ptr<Attention> dense;
  throw_if_error(create_flash2_cuda(CudaOptions{}, &dense));
  std::unique_ptr<MixtureOfHeadsAttention> moh;
  throw_if_error(create_mixture_of_heads_cuda(CudaOptions{}, MoHConfig{o.heads, 0, o.heads}, &moh));
  cudaDeviceProp prop{};
  throw_if_error(cuda_status(cudaGetDeviceProperties(&prop, 0), "properties"));
  std::printf("# %s\n# %s\n", prop.name, moh->describe().c_str());
  Tensor q(DType::kF32, {1, o.tokens, o.heads, o.head_dim}),
      out(DType::kF32, {1, o.tokens, o.heads, o.head_dim});
  Tensor k(DType::kF32, {1, o.tokens, o.kv_heads, o.head_dim}),
      v(DType::kF32, {1, o.tokens, o.kv_heads, o.head_dim});
  fill_uniform(q, 1);
  fill_uniform(k, 2);
  fill_uniform(v, 3);
  const DeviceBuffer dq = DeviceBuffer::copy_of(q), dk = DeviceBuffer::copy_of(k),
                     dv = DeviceBuffer::copy_of(v), dout = DeviceBuffer::copy_of(out);
  AttentionParams p;
  p.q = dq.view_like(q.view());
  p.k = dk.view_like(k.view());
  p.v = dv.view_like(v.view());
  p.out = dout.view_like(out.view());
  p.mask = o.causal ? MaskKind::kCausal : MaskKind::kNone;
  const size_t ws_bytes = std::max(dense->workspace_size(p), moh->workspace_size(p));
  const DeviceBuffer ws(ws_bytes);
  const Workspace w{ws.data(), ws_bytes};
  const double dense_ms = time_ms(o.reps, [&] { throw_if_error(dense->forward(p, w)); });
  std::printf("T %lld Hq %lld Hkv %lld D %lld %s f32, median of %d; workspace %.1f MB\n",
              static_cast<long long>(o.tokens), static_cast<long long>(o.heads),
              static_cast<long long>(o.kv_heads), static_cast<long long>(o.head_dim),
              o.causal ? "causal" : "no mask", o.reps, ws_bytes / 1e6);
  const bench::MoHTable table{"cuda", 3, "dense TFLOP/s", 14, 2, 1e-9};
  bench::print_moh_header(table);
  bench::moh_row(report, table, "dense flash2", 100, dense_ms, dense_ms, o);
  for (int percent : o.percents) {
    const bench::BenchRouting r = bench::bench_routing(o, percent, 7);
    const DeviceBuffer index = DeviceBuffer::copy_of(r.index),
                       weight = DeviceBuffer::copy_of(r.weight);
    const HeadRouting dr{index.view_like(r.index.view()), weight.view_like(r.weight.view())};
    const double ms = time_ms(o.reps, [&] { throw_if_error(moh->forward(p, dr, w)); });
    bench::moh_row(report, table, bench::moh_case_name(percent), percent, ms, dense_ms, o);
  }
  return 0;
}
