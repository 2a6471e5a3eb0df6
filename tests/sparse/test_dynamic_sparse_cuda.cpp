// Dynamic sparse prefill on CUDA (block top-k): the device router lists what the CPU router lists,
// the routed forward equals the float64 reference run with the device layout, keep-all equals
// dense attention, and the methods not built on CUDA are typed errors. Skips without a GPU.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "cuda/device_problem.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "support/problem.hpp"

namespace qwen3vl::testing {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!cuda_device_present()) GTEST_SKIP() << "no CUDA device"

// A device layout brought back to host memory (views into the vectors).
struct HostLayout {
  std::vector<int32_t> indptr, indices;
  BlockLayout view;
};

HostLayout download(const BlockLayout& device) {
  HostLayout h;
  h.indptr.resize(static_cast<size_t>(device.indptr.numel()));
  h.indices.resize(static_cast<size_t>(device.indices.numel()));
  throw_if_error(cuda_status(cudaMemcpy(h.indptr.data(), device.indptr.data, h.indptr.size() * 4,
                                        cudaMemcpyDeviceToHost), "cudaMemcpy"));
  throw_if_error(cuda_status(cudaMemcpy(h.indices.data(), device.indices.data, h.indices.size() * 4,
                                        cudaMemcpyDeviceToHost), "cudaMemcpy"));
  h.view = device;
  h.view.indptr = TensorView::contiguous(h.indptr.data(), DType::kI32,
                                         {device.indptr.shape[0], device.indptr.shape[1]});
  h.view.indices = TensorView::contiguous(h.indices.data(), DType::kI32,
                                          {device.indices.shape[0], device.indices.shape[1]});
  return h;
}

std::vector<std::vector<int32_t>> rows_of(const BlockLayout& bl) {
  std::vector<std::vector<int32_t>> rows;
  for (int64_t l = 0; l < bl.layouts(); ++l)
    for (int64_t r = 0; r < bl.row_blocks(); ++r)
      rows.emplace_back(bl.col_ptr(l) + bl.row_ptr(l)[r], bl.col_ptr(l) + bl.row_ptr(l)[r + 1]);
  return rows;
}

std::vector<ProblemSpec> cases() {
  std::vector<ProblemSpec> specs = {
      problem_spec(300, 300, 4, 2, 72, MaskKind::kCausal, 81),
      problem_spec(130, 211, 6, 3, 80, MaskKind::kNone, 82),
      problem_spec(257, 257, 2, 1, 64, MaskKind::kCausal, 83, 2),
      problem_spec(200, 200, 4, 4, 128, MaskKind::kSlidingWindow, 84)};
  specs[2].key_lengths = {257, 150};
  specs[3].window_left = 60;
  specs[3].window_right = 0;
  specs[3].dtype = DType::kBF16;
  ProblemSpec varlen = problem_spec(0, 0, 4, 2, 64, MaskKind::kCausal, 85);
  varlen.varlen_q = varlen.varlen_k = {100, 0, 145};
  specs.push_back(varlen);
  return specs;
}

DynamicSparseConfig routed_config() {
  DynamicSparseConfig c;
  c.method = DynamicSparseMethod::kBlockTopK;
  c.block_q = c.block_k = 32;
  c.top_k_blocks = 2;
  return c;
}

TEST(DynamicSparseCuda, RouterMatchesCpuAndForwardMatchesReference) {
  SKIP_WITHOUT_GPU();
  const DynamicSparseConfig cfg = routed_config();
  std::unique_ptr<DynamicSparseAttention> gpu, cpu;
  throw_if_error(create_dynamic_sparse_cuda(CudaOptions{}, cfg, &gpu));
  CpuOptions o;
  o.num_threads = 2;
  throw_if_error(create_dynamic_sparse_cpu(o, cfg, &cpu));
  for (const ProblemSpec& s : cases()) {
    Problem host(s);
    DeviceProblem dev(host);
    DeviceBuffer ws(gpu->workspace_size(dev.params));
    BlockLayout device_layout;
    throw_if_error(gpu->estimate(dev.params, Workspace{ws.data(), ws.bytes()}, &device_layout));
    const HostLayout got = download(device_layout);
    std::vector<unsigned char> scratch(cpu->estimate_workspace_size(host.params));
    BlockLayout cpu_layout;
    throw_if_error(cpu->estimate(host.params, Workspace{scratch.data(), scratch.size()}, &cpu_layout));
    // Float sums in another order may flip a near tie: the rows must agree almost everywhere.
    const auto a = rows_of(got.view), b = rows_of(cpu_layout);
    ASSERT_EQ(a.size(), b.size()) << s.to_string();
    size_t same = 0;
    for (size_t r = 0; r < a.size(); ++r) {
      EXPECT_EQ(a[r].size(), b[r].size()) << s.to_string() << " row " << r;
      same += a[r] == b[r];
    }
    EXPECT_GE(same * 100, a.size() * 95) << s.to_string();

    throw_if_error(gpu->forward(dev.params, Workspace{ws.data(), ws.bytes()}));
    throw_if_error(cuda_status(cudaDeviceSynchronize(), "sync"));
    dev.download();
    const HostLayout routed = download(device_layout);  // forward routed again, identically
    EXPECT_EQ(rows_of(routed.view), a) << s.to_string();
    AttentionParams with = host.params;
    with.block_layout = routed.view;
    const reference::Result ref = reference::attention(with);
    EXPECT_LE(relative_error(host.params, ref), tolerance(s.dtype)) << s.to_string();
    EXPECT_LE(lse_max_error(host.params, ref), s.dtype == DType::kF32 ? 1e-4 : 1e-2) << s.to_string();
  }
}

TEST(DynamicSparseCuda, KeepAllEqualsDense) {
  SKIP_WITHOUT_GPU();
  DynamicSparseConfig cfg = routed_config();
  cfg.keep_fraction = 1.0;
  std::unique_ptr<Attention> gpu;
  throw_if_error(create_dynamic_sparse_cuda(CudaOptions{}, cfg, &gpu));
  for (const ProblemSpec& s : cases()) {
    Problem host(s);
    const reference::Result ref = reference::attention(host.params);
    DeviceProblem dev(host);
    DeviceBuffer ws(gpu->workspace_size(dev.params));
    throw_if_error(gpu->forward(dev.params, Workspace{ws.data(), ws.bytes()}));
    throw_if_error(cuda_status(cudaDeviceSynchronize(), "sync"));
    dev.download();
    EXPECT_LE(relative_error(host.params, ref), tolerance(s.dtype)) << s.to_string();
  }
}

TEST(DynamicSparseCuda, OtherMethodsAreNotBuilt) {
  SKIP_WITHOUT_GPU();
  for (DynamicSparseMethod m : {DynamicSparseMethod::kVerticalSlash, DynamicSparseMethod::kExactTopK}) {
    DynamicSparseConfig c;
    c.method = m;
    std::unique_ptr<Attention> a;
    EXPECT_EQ(create_dynamic_sparse_cuda(CudaOptions{}, c, &a).code(), StatusCode::kNotImplemented);
  }
}

}  // namespace
}  // namespace qwen3vl::testing
