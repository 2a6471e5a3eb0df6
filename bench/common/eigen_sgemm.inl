// One ISA's Eigen sgemm (see eigen_sgemm.hpp), compiled per ISA by qwen3vl_add_isa_kernels.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <Eigen/Core>

#include "eigen_sgemm.hpp"

namespace qwen3vl::bench::QWEN3VL_ISA_NS {

void eigen_sgemm(tbb::task_arena& arena, const float* a, const float* b, float* c, int64_t n) {
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMatrix> am(a, n, n), bm(b, n, n);
  Eigen::Map<RowMatrix> cm(c, n, n);
  // About 4 row blocks per thread for balance, each tall enough for Eigen's own cache blocking
  // (thin blocks lose ~20% to repacking B).
  const int64_t tasks = 4 * static_cast<int64_t>(arena.max_concurrency());
  const int64_t rows = ((n + tasks - 1) / tasks + 63) / 64 * 64;
  arena.execute([&] {
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, n, rows),
        [&](const tbb::blocked_range<int64_t>& r) {
          cm.middleRows(r.begin(), r.size()).noalias() = am.middleRows(r.begin(), r.size()) * bm;
        },
        tbb::simple_partitioner());
  });
}

}  // namespace qwen3vl::bench::QWEN3VL_ISA_NS

namespace qwen3vl::bench {
QWEN3VL_DEFINE_ISA_TABLE(EigenSgemmKernels, &QWEN3VL_ISA_NS::eigen_sgemm)
}  // namespace qwen3vl::bench
