// One ISA's Eigen sgemm (see eigen_sgemm.hpp); included after isa_prologue.hpp.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "eigen_sgemm.hpp"

namespace qwen3vl::bench::QWEN3VL_ISA_NS {

void eigen_sgemm(tbb::task_arena& arena, const float* a, const float* b, float* c, int64_t n) {
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMatrix> am(a, n, n), bm(b, n, n);
  Eigen::Map<RowMatrix> cm(c, n, n);
  constexpr int64_t kRows = 128;  // rows of C per task: many tasks per thread, each a full GEMM
  arena.execute([&] {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, (n + kRows - 1) / kRows, 1),
                      [&](const tbb::blocked_range<int64_t>& blocks) {
      for (int64_t blk = blocks.begin(); blk != blocks.end(); ++blk) {
        const int64_t r0 = blk * kRows, rows = n - r0 < kRows ? n - r0 : kRows;
        cm.middleRows(r0, rows).noalias() = am.middleRows(r0, rows) * bm;
      }
    });
  });
}

}  // namespace qwen3vl::bench::QWEN3VL_ISA_NS
