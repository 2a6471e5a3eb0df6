// The rope routine on a CUDA device: the fused q+k apply at Qwen3-VL text shapes against a
// device-to-device copy of the same bytes (q and k read and written once), timed with CUDA events
// in this run (bench/common/cuda_timing.hpp; median of --reps after 3 warm-ups).
#include <cuda_runtime.h>

#include <memory>

#include "common/cuda_timing.hpp"
#include "qwen3vl/cuda/device_buffer.cuh"
#include "qwen3vl/rope/cuda.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "rope_bench_common.hpp"

using namespace qwen3vl;
using qwen3vl::testing::fill_uniform;

namespace {

// Seconds per call: the median of `reps` after 3 warm-ups; throws on a CUDA error.
template <class F>
double time_median(int reps, F&& f) {
  return bench::cuda_median_ms(nullptr, 3, reps, 1, f) * 1e-3;
}

}  // namespace

int qwen3vl::bench::run_rope_cuda(const bench::RopeBenchOptions& o, bench::Report* out) {
  std::unique_ptr<rope::RopeApplier> applier;
  throw_if_error(rope::create_rope_cuda(0, &applier));
  cudaDeviceProp prop{};
  throw_if_error(cuda_status(cudaGetDeviceProperties(&prop, 0), "properties"));
  std::printf("# %s; %s\n", applier->describe().c_str(), prop.name);
  for (DType dt : {DType::kF32, DType::kBF16}) {
    Tensor qh(dt, {o.tokens, o.q_heads, o.head_dim}), kh(dt, {o.tokens, o.k_heads, o.head_dim});
    fill_uniform(qh, 1);
    fill_uniform(kh, 2);
    const DeviceBuffer q = DeviceBuffer::copy_of(qh), k = DeviceBuffer::copy_of(kh),
                       q2 = DeviceBuffer::copy_of(qh), k2 = DeviceBuffer::copy_of(kh);
    const double bytes = 2.0 * static_cast<double>(qh.bytes() + kh.bytes());
    for (const bench::RopeMode& m : bench::rope_modes(o.tokens)) {
      const rope::RopeTable table = bench::make_bench_table(o, m);
      rope::DeviceRopeTable dtable;
      throw_if_error(rope::DeviceRopeTable::upload(table, 0, &dtable));
      const Tensor positions = bench::make_bench_positions(o, m);
      const DeviceBuffer pos = DeviceBuffer::copy_of(positions);
      rope::RopeApplyParams p;
      p.q = q.view_like(qh.view());
      p.k = k.view_like(kh.view());
      p.positions = pos.view_like(positions.view());
      p.table = dtable.view();
      const double copy_s = time_median(o.reps, [&] {
        throw_if_error(cuda_status(
            cudaMemcpyAsync(q2.data(), q.data(), q.bytes(), cudaMemcpyDeviceToDevice), "copy"));
        throw_if_error(cuda_status(
            cudaMemcpyAsync(k2.data(), k.data(), k.bytes(), cudaMemcpyDeviceToDevice), "copy"));
      });
      const double rope_s = time_median(o.reps, [&] { throw_if_error(applier->apply(p)); });
      throw_if_error(applier->take_error());
      bench::report(out, "cuda", o, dt, m, bytes, rope_s, copy_s);
    }
  }
  return 0;
}
