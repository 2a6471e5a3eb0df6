// The moh routine on a CUDA device: mixture-of-heads against dense CUDA flash2 in the same run
// (CUDA events, bench/common/cuda_timing.hpp: median of --reps single calls after 2 warm-ups;
// at least 10), the same problem and routings as on the CPU.
#include <cuda_runtime.h>

#include <memory>

#include "common/cuda_timing.hpp"
#include "moh_bench_common.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/testing/random_fill.hpp"

using namespace qwen3vl;
using qwen3vl::testing::fill_uniform;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// A device copy of a host tensor, seen through the host view's shape and strides.
TensorView on_device(const Tensor& t, std::vector<void*>* owned) {
  void* d = nullptr;
  check(cudaMalloc(&d, static_cast<size_t>(t.bytes())), "cudaMalloc");
  check(cudaMemcpy(d, t.view().data, static_cast<size_t>(t.bytes()), cudaMemcpyHostToDevice),
        "cudaMemcpy");
  owned->push_back(d);
  TensorView v = t.view();
  v.data = d;
  v.device = Device::kCUDA;
  return v;
}

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
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  std::printf("# %s\n# %s\n", prop.name, moh->describe().c_str());
  Tensor q(DType::kF32, {1, o.tokens, o.heads, o.head_dim}),
      out(DType::kF32, {1, o.tokens, o.heads, o.head_dim});
  Tensor k(DType::kF32, {1, o.tokens, o.kv_heads, o.head_dim}),
      v(DType::kF32, {1, o.tokens, o.kv_heads, o.head_dim});
  fill_uniform(q, 1);
  fill_uniform(k, 2);
  fill_uniform(v, 3);
  std::vector<void*> owned;
  AttentionParams p;
  p.q = on_device(q, &owned);
  p.k = on_device(k, &owned);
  p.v = on_device(v, &owned);
  p.out = on_device(out, &owned);
  p.mask = o.causal ? MaskKind::kCausal : MaskKind::kNone;
  void* ws = nullptr;
  const size_t ws_bytes = std::max(dense->workspace_size(p), moh->workspace_size(p));
  check(cudaMalloc(&ws, ws_bytes), "cudaMalloc workspace");
  const Workspace w{ws, ws_bytes};
  const double dense_ms = time_ms(o.reps, [&] { throw_if_error(dense->forward(p, w)); });
  std::printf("T %lld Hq %lld Hkv %lld D %lld %s f32, median of %d; workspace %.1f MB\n",
              static_cast<long long>(o.tokens), static_cast<long long>(o.heads),
              static_cast<long long>(o.kv_heads), static_cast<long long>(o.head_dim),
              o.causal ? "causal" : "no mask", o.reps, ws_bytes / 1e6);
  std::printf("%-22s %10s %10s %14s\n", "case", "ms", "vs dense", "dense TFLOP/s");
  std::printf("%-22s %10.3f %10.3f %14.2f\n", "dense flash2", dense_ms, 1.0,
              bench::dense_flops(o) / dense_ms * 1e-9);
  bench::add_moh_row(report, "cuda", "dense flash2", 100, dense_ms, dense_ms, o);
  for (int percent : o.percents) {
    const bench::BenchRouting r = bench::bench_routing(o, percent, 7);
    HeadRouting dr{on_device(r.index, &owned), on_device(r.weight, &owned)};
    const double ms = time_ms(o.reps, [&] { throw_if_error(moh->forward(p, dr, w)); });
    char name[64];
    std::snprintf(name, sizeof name, "moh %d%% heads", percent);
    std::printf("%-22s %10.3f %10.3f %14.2f\n", name, ms, ms / dense_ms,
                bench::dense_flops(o) * percent / 100.0 / ms * 1e-9);
    bench::add_moh_row(report, "cuda", name, percent, ms, dense_ms, o);
  }
  for (void* d : owned) cudaFree(d);
  cudaFree(ws);
  return 0;
}
