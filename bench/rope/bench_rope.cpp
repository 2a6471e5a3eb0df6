// qwen3vl-attn-bench rope: the fused q+k RoPE apply at Qwen3-VL text shapes against a plain copy
// of the same bytes (q and k read and written once), both measured in this run. CPU here (the
// same threads, wall clock, alternated), CUDA in bench_rope_cuda.cpp.
#include <cstring>
#include <memory>
#include <utility>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "cli/routines.hpp"
#include "qwen3vl/hardware/hardware_info.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "rope_bench_common.hpp"

using namespace qwen3vl;
using qwen3vl::testing::fill_uniform;

namespace {

// Medians of a and b, timed alternately so that both see the same machine load.
template <class A, class B>
std::pair<double, double> time_pair(int reps, A&& a, B&& b) {
  a();  // warm-up
  b();
  std::vector<double> sa, sb;
  for (int r = 0; r < reps; ++r) {
    sa.push_back(bench::wall_ms(a) * 1e-3);
    sb.push_back(bench::wall_ms(b) * 1e-3);
  }
  return {bench::median(sa), bench::median(sb)};
}

}  // namespace

namespace qwen3vl::bench {

#if !QWEN3VL_BENCH_CUDA
int run_rope_cuda(const RopeBenchOptions&, Report*) { return no_cuda_error("rope"); }
#endif

int run_rope_cpu(const RopeBenchOptions& o, Report* out) {
  CpuOptions options;
  options.num_threads = o.threads;
  std::unique_ptr<rope::RopeApplier> applier;
  throw_if_error(rope::create_rope_cpu(options, &applier));
  const int threads = o.threads > 0 ? o.threads : std::max(1, CpuInfo::current().physical_cores);
  tbb::task_arena arena(threads);
  std::printf("# %s; %s\n", applier->describe().c_str(), CpuInfo::current().brand.c_str());
  for (DType dt : {DType::kF32, DType::kBF16}) {
    Tensor q(dt, {o.tokens, o.q_heads, o.head_dim}), k(dt, {o.tokens, o.k_heads, o.head_dim});
    Tensor q2(dt, {o.tokens, o.q_heads, o.head_dim}), k2(dt, {o.tokens, o.k_heads, o.head_dim});
    fill_uniform(q, 1);
    fill_uniform(k, 2);
    const double bytes = 2.0 * static_cast<double>(q.bytes() + k.bytes());
    const auto copy = [&] {
      arena.execute([&] {
        const int64_t chunk = 1 << 20;
        const auto part = [&](const Tensor& src, const Tensor& dst) {
          const int64_t n = src.bytes();
          tbb::parallel_for(tbb::blocked_range<int64_t>(0, (n + chunk - 1) / chunk),
                            [&](const auto& r) {
                              for (int64_t c = r.begin(); c < r.end(); ++c)
                                std::memcpy(static_cast<char*>(dst.view().data) + c * chunk,
                                            static_cast<const char*>(src.view().data) + c * chunk,
                                            static_cast<size_t>(std::min(chunk, n - c * chunk)));
                            });
        };
        part(q, q2);
        part(k, k2);
      });
    };
    for (const bench::RopeMode& m : bench::rope_modes(o.tokens)) {
      const rope::RopeTable table = bench::make_bench_table(o, m);
      const Tensor positions = bench::make_bench_positions(o, m);
      rope::RopeApplyParams p;
      p.q = q.view();
      p.k = k.view();
      p.positions = positions.view();
      p.table = table.view();
      const auto [copy_s, rope_s] =
          time_pair(o.reps, copy, [&] { throw_if_error(applier->apply(p)); });
      bench::report(out, "cpu", o, dt, m, bytes, rope_s, copy_s);
    }
  }
  return 0;
}

int rope_routine(const std::vector<std::string>& args) {
  RopeBenchOptions o;
  std::string device = "cpu";
  ArgParser parser(
      "rope",
      R"(RoPE bandwidth: the fused q+k apply in place (rope-1d, M-RoPE with the full and the split
table; f32 and bf16) against a plain copy of the same bytes (q and k read and written once), both
measured in this run (was qwen3vl-rope-bench / qwen3vl-rope-bench-cuda). cpu: the copy on the
same threads, wall clock, the two alternated, medians of --reps after a warm-up. cuda: a
device-to-device copy (cudaMemcpyAsync), CUDA events, medians of --reps single calls after 3
warm-ups. Ratio: copy time / RoPE time.)");
  parser.add_choice("--device", &device, {"cpu", "cuda"}, "where it runs");
  parser.add_int("--tokens", &o.tokens, 1, int64_t(1) << 22, "tokens T");
  parser.add_int("--q-heads", &o.q_heads, 1, 1024, "query heads");
  parser.add_int("--kv-heads", &o.k_heads, 1, 1024, "key heads");
  parser.add_int("--head-dim", &o.head_dim, 2, 1024, "head dim (even)");
  parser.add_int("--reps", &o.reps, 1, 100000, "timed calls");
  parser.add_int("--threads", &o.threads, 0, 1024, "CPU threads (0: physical cores)");
  return run_routine(parser, args, [&](Report& report) {
    if (o.head_dim % 2)
      return usage_error("rope", make_error(StatusCode::kInvalidArgument, "--head-dim = ",
                                            o.head_dim, ": allowed an even number"));
    return device == "cuda" ? run_rope_cuda(o, &report) : run_rope_cpu(o, &report);
  });
}

}  // namespace qwen3vl::bench
