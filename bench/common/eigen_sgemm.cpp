#include "eigen_sgemm.hpp"

namespace qwen3vl::bench {

void eigen_sgemm(CpuIsa isa, tbb::task_arena& arena, const float* a, const float* b, float* c,
                 int64_t n) {
  detail::isa_table<EigenSgemmKernels>(isa).run(arena, a, b, c, n);
}

}  // namespace qwen3vl::bench
