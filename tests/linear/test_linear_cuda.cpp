// Linear attention on CUDA against the float64 oracle and the CPU variant: elu+1 and Performer,
// causal and not, odd lengths, D 64/72/128/256, GQA, varlen, key padding, bf16/f16, the state API
// (prefill + steps == one prefill, and the states equal the CPU's). Skips without a CUDA device.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "linear/linear_cases.hpp"
#include "linear/linear_nonfinite.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/variants/linear.hpp"
#include "support/device_problem.hpp"
#include "support/linear_oracle.hpp"

namespace qwen3vl::testing {
namespace {

#define SKIP_WITHOUT_DEVICE() \
  if (!cuda_device_present()) GTEST_SKIP() << "no CUDA device"

std::unique_ptr<LinearAttention> make_cuda(const LinearConfig& config) {
  std::unique_ptr<LinearAttention> a;
  throw_if_error(create_linear_cuda(CudaOptions{}, config, &a));
  return a;
}

// Runs one forward on the device (one shared cu_seqlens for causal varlen) and downloads `out`.
void run_on_device(const LinearAttention& attn, Problem& p) {
  DeviceProblem dp(p);
  if (p.params.mask != MaskKind::kNone && p.params.varlen())
    dp.params.cu_seqlens_k = dp.params.cu_seqlens_q;
  ASSERT_TRUE(attn.supports(dp.params).ok()) << attn.supports(dp.params).to_string();
  DeviceBuffer ws(attn.workspace_size(dp.params));
  const Status s = attn.forward(dp.params, {ws.data(), attn.workspace_size(dp.params)});
  ASSERT_TRUE(s.ok()) << s.to_string();
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  dp.download();
}

void expect_matches_oracle(const LinearConfig& config, const ProblemSpec& spec, double tol) {
  Problem p(spec);
  const reference::Result ref = LinearOracle::of(config, spec.head_dim).run(p.params);
  run_on_device(*make_cuda(config), p);
  EXPECT_LE(relative_error(p.params, ref), tol) << spec.to_string();
}

// A later key's Inf / NaN never reaches earlier rows (prefix state, own chunk, Performer
// stabiliser); rows that see it are non-finite.
TEST(LinearCuda, CausalRowsNeverSeeLaterNonFiniteKeys) {
  SKIP_WITHOUT_DEVICE();
  EXPECT_EQ(
      check_linear_nonfinite({{"cuda", [](const LinearConfig& config,
                                          Problem& p) { run_on_device(*make_cuda(config), p); }}},
                             /*chunk=*/64),  // the CUDA kernels' chunk
      kLinearNonFiniteCases);
}

TEST(LinearCuda, ChunkedMatchesQuadraticOracle) {
  SKIP_WITHOUT_DEVICE();
  for (const ProblemSpec& spec :
       chunked_cases({MaskKind::kNone, MaskKind::kCausal}, {1, 63, 65, 333}, {64, 72, 128, 256}))
    expect_matches_oracle(LinearConfig{}, spec, 1e-5);
}

TEST(LinearCuda, VarlenPaddingStridesAndLengths) {
  SKIP_WITHOUT_DEVICE();
  for (MaskKind mask : {MaskKind::kNone, MaskKind::kCausal}) {
    ProblemSpec spec;
    spec.varlen_q = spec.varlen_k = {5, 0, 130, 64};
    spec.batch = 4;
    spec.head_dim = 80;
    spec.mask = mask;
    expect_matches_oracle(LinearConfig{}, spec, 1e-5);
    ProblemSpec pad;
    pad.batch = 3;
    pad.seq_q = pad.seq_k = 70;
    pad.key_lengths = {70, 33, 0};
    pad.bhsd = true;
    pad.mask = mask;
    expect_matches_oracle(LinearConfig{}, pad, 1e-5);
  }
  ProblemSpec cross;  // non-causal, Lq != Lk, MQA
  cross.seq_q = 65;
  cross.seq_k = 200;
  cross.heads = 4;
  cross.kv_heads = 1;
  expect_matches_oracle(LinearConfig{}, cross, 1e-5);
}

TEST(LinearCuda, HalfStorageAndPerformer) {
  SKIP_WITHOUT_DEVICE();
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    ProblemSpec spec;
    spec.dtype = dtype;
    spec.seq_q = spec.seq_k = 333;
    spec.head_dim = 128;
    spec.mask = MaskKind::kCausal;
    expect_matches_oracle(LinearConfig{}, spec, 2e-2);
  }
  for (MaskKind mask : {MaskKind::kNone, MaskKind::kCausal})
    for (int64_t d : {64, 72}) {
      LinearConfig config;
      config.feature_map = LinearFeatureMap::kPerformer;
      config.head_dim = d;
      config.performer_seed = 3;
      ProblemSpec spec;
      spec.varlen_q = spec.varlen_k = {97, 1, 40};
      spec.batch = 3;
      spec.head_dim = d;
      spec.mask = mask;
      expect_matches_oracle(config, spec, 2e-5);
    }
}

// prefill(70) + steps of 1..64 tokens on the device == the oracle; the final state == the CPU's.
TEST(LinearCuda, PrefillThenStepsEqualCpu) {
  SKIP_WITHOUT_DEVICE();
  ProblemSpec spec;
  spec.batch = 2;
  spec.seq_q = spec.seq_k = 150;
  spec.head_dim = 72;
  spec.mask = MaskKind::kCausal;
  Problem p(spec);
  const reference::Result ref = LinearOracle(LinearConfig{}, {}).run(p.params);
  const int64_t f = 72, states = 2 * 2 * f * f, zs = 2 * 2 * f;
  StateBuffers cpu_state(2, 2, f, f), gpu_state(2, 2, f, f);
  {
    std::unique_ptr<LinearAttention> cpu;
    throw_if_error(create_linear_cpu(CpuOptions{}, LinearConfig{}, &cpu));
    std::vector<unsigned char> ws(cpu->workspace_size(p.params));
    ASSERT_TRUE(cpu->prefill(p.params, cpu_state.view(), {ws.data(), ws.size()}).ok());
  }
  const auto attn = make_cuda(LinearConfig{});
  DeviceProblem dp(p);
  DeviceBuffer s_dev(states * sizeof(float)), z_dev(zs * sizeof(float));
  LinearState state{TensorView::contiguous(s_dev.data(), DType::kF32, {2, 2, f, f}),
                    TensorView::contiguous(z_dev.data(), DType::kF32, {2, 2, f})};
  state.s.device = state.z.device = Device::kCUDA;
  state.s.device_index = state.z.device_index = cuda_current_device();
  DeviceBuffer ws(attn->workspace_size(dp.params));
  const Workspace w{ws.data(), attn->workspace_size(dp.params)};
  ASSERT_TRUE(attn->prefill(token_slice(dp.params, 0, 70), state, w).ok());
  int64_t pos = 70;
  for (int64_t n : {1, 1, 5, 64, 1, 8}) {
    const Status st = attn->step(token_slice(dp.params, pos, n), state, w);
    ASSERT_TRUE(st.ok()) << st.to_string();
    pos += n;
  }
  ASSERT_EQ(pos, 150);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  dp.download();
  EXPECT_LE(relative_error(p.params, ref), 1e-5);
  s_dev.download(gpu_state.s.data<float>(), states * sizeof(float));
  z_dev.download(gpu_state.z.data<float>(), zs * sizeof(float));
  EXPECT_LE(state_difference(gpu_state, cpu_state), 1e-5);
}

TEST(LinearCuda, BadInputGivesTypedErrors) {
  SKIP_WITHOUT_DEVICE();
  const auto attn = make_cuda(LinearConfig{});
  ProblemSpec spec;
  spec.mask = MaskKind::kCausal;
  Problem p(spec);
  EXPECT_EQ(attn->supports(p.params).code(), StatusCode::kUnsupported);  // host memory
  DeviceProblem dp(p);
  dp.params.mask = MaskKind::kSlidingWindow;
  dp.params.window_left = 2;
  EXPECT_EQ(attn->supports(dp.params).code(), StatusCode::kUnsupported);
  dp.params.mask = MaskKind::kCausal;
  EXPECT_EQ(attn->forward(dp.params, {nullptr, 0}).code(), StatusCode::kWorkspaceTooSmall);
  LinearConfig chunk32;
  chunk32.chunk = 32;
  std::unique_ptr<LinearAttention> out;
  EXPECT_EQ(create_linear_cuda(CudaOptions{}, chunk32, &out).code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace qwen3vl::testing
