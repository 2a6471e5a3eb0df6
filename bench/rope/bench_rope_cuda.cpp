// The rope routine on a CUDA device: the fused q+k apply at Qwen3-VL text shapes against a
// device-to-device copy of the same bytes (q and k read and written once), timed with CUDA events
// in this run (bench/common/cuda_timing.hpp; median of --reps after 3 warm-ups).
#include <cuda_runtime.h>

#include <memory>

#include "common/cuda_timing.hpp"
#include "qwen3vl/rope/cuda.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "rope_bench_common.hpp"

using namespace qwen3vl;
using qwen3vl::testing::fill_uniform;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Seconds per call: the median of `reps` after 3 warm-ups; exits on a CUDA error.
template <class F>
double time_median(int reps, F&& f) {
  return bench::cuda_median_ms(nullptr, 3, reps, 1, f) * 1e-3;
}

void* device_copy(const Tensor& t) {
  void* p = nullptr;
  check(cudaMalloc(&p, static_cast<size_t>(t.bytes())), "cudaMalloc");
  check(cudaMemcpy(p, t.view().data, static_cast<size_t>(t.bytes()), cudaMemcpyHostToDevice),
        "cudaMemcpy");
  return p;
}

}  // namespace

int qwen3vl::bench::run_rope_cuda(const bench::RopeBenchOptions& o, bench::Report* out) {
  std::unique_ptr<rope::RopeApplier> applier;
  throw_if_error(rope::create_rope_cuda(0, &applier));
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  std::printf("# %s; %s\n", applier->describe().c_str(), prop.name);
  for (DType dt : {DType::kF32, DType::kBF16}) {
    Tensor qh(dt, {o.tokens, o.q_heads, o.head_dim}), kh(dt, {o.tokens, o.k_heads, o.head_dim});
    fill_uniform(qh, 1);
    fill_uniform(kh, 2);
    void* q = device_copy(qh);
    void* k = device_copy(kh);
    void* q2 = device_copy(qh);
    void* k2 = device_copy(kh);
    const double bytes = 2.0 * static_cast<double>(qh.bytes() + kh.bytes());
    for (const bench::RopeMode& m : bench::rope_modes(o.tokens)) {
      const rope::RopeTable table = bench::make_bench_table(o, m);
      rope::DeviceRopeTable dtable;
      throw_if_error(rope::DeviceRopeTable::upload(table, 0, &dtable));
      const Tensor positions = bench::make_bench_positions(o, m);
      void* pos = device_copy(positions);
      rope::RopeApplyParams p;
      p.q = qh.view();
      p.q.data = q;
      p.q.device = Device::kCUDA;
      p.k = kh.view();
      p.k.data = k;
      p.k.device = Device::kCUDA;
      p.positions = positions.view();
      p.positions.data = pos;
      p.positions.device = Device::kCUDA;
      p.table = dtable.view();
      const double copy_s = time_median(o.reps, [&] {
        check(cudaMemcpyAsync(q2, q, static_cast<size_t>(qh.bytes()), cudaMemcpyDeviceToDevice),
              "copy");
        check(cudaMemcpyAsync(k2, k, static_cast<size_t>(kh.bytes()), cudaMemcpyDeviceToDevice),
              "copy");
      });
      const double rope_s = time_median(o.reps, [&] { throw_if_error(applier->apply(p)); });
      throw_if_error(applier->take_error());
      bench::report(out, "cuda", o, dt, m, bytes, rope_s, copy_s);
      cudaFree(pos);
    }
    for (void* ptr : {q, k, q2, k2}) cudaFree(ptr);
  }
  return 0;
}
