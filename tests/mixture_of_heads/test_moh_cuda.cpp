// Mixture-of-heads on CUDA (label gpu; skips without a device): the routed sweep against the
// gated float64 oracle and against the CPU object, all heads with gate 1 == dense, unrouted rows
// exactly 0, a forward captured in a CUDA graph, and typed errors.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "mixture_of_heads/moh_support.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "support/device_problem.hpp"
#include "support/nonfinite.hpp"

namespace qwen3vl::testing {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!cuda_device_present()) GTEST_SKIP() << "no CUDA device"

std::unique_ptr<MixtureOfHeadsAttention> cuda_moh(int64_t heads) {
  std::unique_ptr<MixtureOfHeadsAttention> m;
  throw_if_error(create_mixture_of_heads_cuda(CudaOptions{}, MoHConfig{heads, 0, heads}, &m));
  return m;
}

// A routing's device copy.
struct DeviceRouting {
  explicit DeviceRouting(const Routing& r)
      : index(DeviceBuffer::copy_of(r.index)), weight(DeviceBuffer::copy_of(r.weight)) {
    view = r.view();
    view.head_index.data = index.data();
    view.head_weight.data = weight.data();
    for (TensorView* t : {&view.head_index, &view.head_weight}) {
      t->device = Device::kCUDA;
      t->device_index = cuda_current_device();
    }
  }
  DeviceBuffer index, weight;
  HeadRouting view;
};

// Runs the routed forward on the device (optionally captured in a graph) into the host problem.
void run_cuda(const MixtureOfHeadsAttention& moh, Problem& host, const Routing& r,
              bool graph = false) {
  DeviceProblem dev(host);
  DeviceRouting routing(r);
  ASSERT_TRUE(moh.supports(dev.params, routing.view).ok())
      << moh.supports(dev.params, routing.view).to_string();
  DeviceBuffer ws(moh.workspace_size(dev.params));
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  if (graph) {
    cudaGraph_t g;
    cudaGraphExec_t exec;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
    const Status s =
        moh.forward(dev.params, routing.view, Workspace{ws.data(), ws.bytes()}, stream);
    ASSERT_EQ(cudaStreamEndCapture(stream, &g), cudaSuccess);
    ASSERT_TRUE(s.ok()) << s.to_string();
    ASSERT_EQ(cudaGraphInstantiateWithFlags(&exec, g, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(g);
  } else {
    const Status s =
        moh.forward(dev.params, routing.view, Workspace{ws.data(), ws.bytes()}, stream);
    ASSERT_TRUE(s.ok()) << s.to_string();
  }
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  cudaStreamDestroy(stream);
  dev.download();
}

// Every head routed for every token (gate 1: dense attention through the gathered-rows flash
// launch): Inf / NaN in K or V rows hidden from some rows reach only the rows that see them.
TEST(MoHCuda, NonFiniteValuesReachOnlyTheRowsThatSeeThem) {
  SKIP_WITHOUT_GPU();
  const int64_t ran = check_nonfinite_scenes(
      "mixture-of-heads", {{"cuda", [](Problem& p) {
                              AttentionShape s;
                              throw_if_error(validate(p.params, &s));
                              const auto moh = cuda_moh(s.heads);
                              const int64_t tokens =
                                  p.params.varlen() ? p.params.q.shape[0] : s.batch * s.max_q;
                              const Routing r = all_heads(tokens, s.heads);
                              DeviceProblem dev(p);
                              DeviceRouting routing(r);
                              if (!moh->supports(dev.params, routing.view).ok()) return false;
                              run_cuda(*moh, p, r);
                              return true;
                            }}});
  EXPECT_GT(ran, 0);
}

TEST(MoHCuda, RoutedSweepMatchesGatedDenseAndCpu) {
  SKIP_WITHOUT_GPU();
  for (ProblemSpec s : routed_sweep()) {
    const Routing r = random_routing(routing_tokens(s), s.heads, s.heads / 2 + 1, s.seed * 7);
    if (!s.varlen_q.empty() && s.mask == MaskKind::kSlidingWindow && s.window_right > 0) {
      // Device cu_seqlens: the host cannot rule out a query aligned before the first key, whose
      // right-reaching window a clamped position would change; refused unless q_positions. The
      // same problem then runs with a left window only.
      Problem refused(s);
      DeviceProblem dev(refused);
      DeviceRouting routing(r);
      EXPECT_EQ(cuda_moh(s.heads)->supports(dev.params, routing.view).code(),
                StatusCode::kUnsupported);
      s.window_right = 0;
    }
    Problem gpu(s);
    run_cuda(*cuda_moh(s.heads), gpu, r);
    if (::testing::Test::HasFatalFailure()) return;
    const reference::Result ref = gated_reference(gpu.params, r);
    EXPECT_LE(relative_error(gpu.params, ref), tolerance(s.dtype)) << s.to_string();
    if (!s.bhsd && relative_error(gpu.params, ref) > tolerance(s.dtype))  // the first bad row
      for (int64_t i = 0; i < gpu.out.numel(); ++i)
        if (!(std::fabs(gpu.out.get(i) - ref.out[static_cast<size_t>(i)]) <= 1e-3)) {
          const int64_t row = i / s.head_dim;
          ADD_FAILURE() << "first bad element " << i << " (token " << row / s.heads << ", head "
                        << row % s.heads << "): " << gpu.out.get(i) << " vs "
                        << ref.out[static_cast<size_t>(i)];
          break;
        }
    EXPECT_LE(lse_max_error(gpu.params, ref), s.dtype == DType::kF32 ? 1e-5 : 1e-2)
        << s.to_string();
    Problem cpu(s);  // CUDA == CPU: the CPU object's output as the reference
    CpuOptions o;
    o.num_threads = 2;
    std::unique_ptr<MixtureOfHeadsAttention> host;
    throw_if_error(create_mixture_of_heads_cpu(o, MoHConfig{s.heads, 0, s.heads}, &host));
    host->run(cpu.params, r.view());
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < cpu.out.numel(); ++i) {
      const double a = gpu.out.get(i), b = cpu.out.get(i);
      diff += (a - b) * (a - b);
      norm += b * b;
    }
    EXPECT_LE(std::sqrt(diff / std::max(norm, 1e-30)), tolerance(s.dtype))
        << "vs CPU " << s.to_string();
  }
}

// The one-head calls the driver makes, straight into the CUDA flash object: gathered rows whose
// q_positions skip keys (wider apart than a window), varlen, key padding. Tells a kernel fault
// from a driver fault when the sweep above fails.
TEST(MoHCuda, FlashTakesGatheredPositions) {
  SKIP_WITHOUT_GPU();
  for (const MaskKind mask : {MaskKind::kSlidingWindow, MaskKind::kCausal}) {
    ProblemSpec s;
    s.varlen_q = {17, 5, 30};
    s.varlen_k = {40, 20, 64};
    s.key_lengths = {40, 11, 64};
    s.heads = s.kv_heads = 1;
    s.head_dim = 80;
    s.mask = mask;
    s.window_left = 20;
    s.window_right = 3;
    s.with_lse = true;
    Problem p(s);
    std::vector<int32_t> positions;  // every second or third key position, ascending
    for (size_t b = 0; b < s.varlen_q.size(); ++b)
      for (int32_t i = 0; i < s.varlen_q[b]; ++i)
        positions.push_back(std::min(i * 2 + i / 3, s.key_lengths[b] - 1));
    Tensor qp(DType::kI32, {static_cast<int64_t>(positions.size())});
    std::copy(positions.begin(), positions.end(), qp.data<int32_t>());
    p.params.q_positions = qp.view();
    const reference::Result ref = reference::attention(p.params);
    DeviceProblem dev(p);
    DeviceBuffer dqp = DeviceBuffer::copy_of(qp);
    dev.params.q_positions.data = dqp.data();
    dev.params.q_positions.device = Device::kCUDA;
    std::unique_ptr<Attention> flash;
    throw_if_error(create_flash2_cuda(CudaOptions{}, &flash));
    const Status st = flash->forward(dev.params, Workspace{});
    ASSERT_TRUE(st.ok()) << st.to_string();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    dev.download();
    EXPECT_LE(relative_error(p.params, ref), 1e-5) << to_string(mask);
    EXPECT_LE(lse_max_error(p.params, ref), 1e-5) << to_string(mask);
  }
}

TEST(MoHCuda, AllHeadsGateOneIsDenseAndGraphCaptureWorks) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.batch = 2;
  s.seq_q = s.seq_k = 97;
  s.heads = 8;
  s.kv_heads = 2;
  s.head_dim = 128;
  s.mask = MaskKind::kCausal;
  s.with_lse = true;
  Problem p(s);
  run_cuda(*cuda_moh(s.heads), p, all_heads(routing_tokens(s), s.heads), /*graph=*/true);
  const reference::Result ref = reference::attention(p.params);
  EXPECT_LE(relative_error(p.params, ref), 1e-5);
  EXPECT_LE(lse_max_error(p.params, ref), 1e-5);
}

TEST(MoHCuda, UnroutedRowsAreExactlyZero) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.seq_q = s.seq_k = 45;
  s.heads = 4;
  s.kv_heads = 1;
  s.with_lse = true;
  Routing r{Tensor(DType::kI32, {45, 1}), Tensor(DType::kF32, {45, 1})};
  for (int64_t t = 0; t < 45; ++t) {  // head 2 only, gate 0 on every third token
    r.index.data<int32_t>()[t] = 2;
    r.weight.data<float>()[t] = t % 3 ? 0.75f : 0.0f;
  }
  Problem p(s);
  run_cuda(*cuda_moh(4), p, r);
  for (int64_t t = 0; t < 45; ++t)
    for (int64_t h = 0; h < 4; ++h) {
      if (h == 2 && t % 3) continue;
      EXPECT_EQ(p.lse.get(h * 45 + t), -std::numeric_limits<float>::infinity());
      for (int64_t c = 0; c < s.head_dim; ++c)
        ASSERT_EQ(p.out.get((t * 4 + h) * s.head_dim + c), 0.0f);
    }
  EXPECT_LE(relative_error(p.params, gated_reference(p.params, r)), 1e-5);
}

TEST(MoHCuda, HostRoutingAndBadShapesAreTypedErrors) {
  SKIP_WITHOUT_GPU();
  ProblemSpec s;
  s.heads = 4;
  s.kv_heads = 2;
  Problem p(s);
  DeviceProblem dev(p);
  const Routing r = random_routing(16, 4, 2, 9);
  const auto moh = cuda_moh(4);
  EXPECT_FALSE(moh->supports(dev.params, r.view()).ok());  // host routing for a device object
  const Routing short_r = random_routing(15, 4, 2, 9);
  DeviceRouting d(short_r);
  EXPECT_EQ(moh->supports(dev.params, d.view).code(), StatusCode::kShapeMismatch);
  EXPECT_EQ(cuda_moh(8)->supports(dev.params).code(), StatusCode::kShapeMismatch);
  DeviceRouting good(r);
  DeviceBuffer small(64);
  EXPECT_EQ(moh->forward(dev.params, good.view, Workspace{small.data(), small.bytes()}).code(),
            StatusCode::kWorkspaceTooSmall);
}

}  // namespace
}  // namespace qwen3vl::testing
