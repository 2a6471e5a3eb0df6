// The CUDA variants (standard, flash2, sm61_tiled) against the float64 reference: a seeded random
// sweep, every mask form, GQA/MQA, LSE, varlen with an empty segment, BHSD strides, fully masked
// rows, NaN in hidden K/V, offsets past 2^31, CUDA-graph capture and argument errors. Skips where
// no CUDA device exists.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/selector/selector.hpp"
#include "support/device_problem.hpp"
#include "support/empty_rows.hpp"
#include "support/nonfinite.hpp"
#include "support/sweep.hpp"

namespace qwen3vl {
namespace {

using testing::DeviceProblem;
using testing::Problem;
using testing::ProblemSpec;

#define QWEN3VL_REQUIRE_GPU() \
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device"

struct CudaVariant {
  const char* name;
  Status (*create)(const CudaOptions&, std::unique_ptr<Attention>*);
  bool weights;  // returns attention weights
};

const CudaVariant kVariants[] = {{"standard", &create_standard_cuda, true},
                                 {"flash2", &create_flash2_cuda, false},
                                 {"sm61_tiled", &create_sm61_tiled_cuda, false}};

std::unique_ptr<Attention> make(const CudaVariant& v) {
  std::unique_ptr<Attention> a;
  throw_if_error(v.create(CudaOptions{}, &a));
  return a;
}

// Runs `attn` on a device copy of `p` (with a device workspace) and brings the outputs back.
Status run_on_device(const Attention& attn, Problem& p, cudaStream_t stream = nullptr) {
  DeviceProblem d(p);
  QWEN3VL_RETURN_IF_ERROR(attn.supports(d.params));
  DeviceBuffer ws(attn.workspace_size(d.params));
  QWEN3VL_RETURN_IF_ERROR(attn.forward(d.params, Workspace{ws.data(), ws.bytes()}, stream));
  QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaDeviceSynchronize(), "cudaDeviceSynchronize"));
  d.download();
  return Status();
}

double weights_max_error(const Problem& p, const reference::Result& ref) {
  double worst = 0.0;
  for (int64_t i = 0; i < p.weights.numel(); ++i) {
    const double got = p.weights.get(i);
    if (!std::isfinite(got)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, std::fabs(got - ref.weights[static_cast<size_t>(i)]));
  }
  return worst;
}

// Checks one problem on one variant; returns a description of the failure, or "" when it passes.
std::string check_variant(const CudaVariant& v, const ProblemSpec& base) {
  ProblemSpec spec = base;
  spec.with_weights = spec.with_weights && v.weights && spec.varlen_q.empty();
  Problem p(spec);
  const reference::Result ref = reference::attention(p.params, spec.with_weights);
  const Status st = run_on_device(*make(v), p);
  if (!st.ok()) return st.to_string();
  const double tol = testing::tolerance(spec.dtype);
  const double err = testing::relative_error(p.params, ref);
  std::string failure;
  if (!(err <= tol)) failure += " out error " + std::to_string(err);
  if (spec.with_lse) {
    const double lse_err = testing::lse_max_error(p.params, ref);
    if (!(lse_err <= (spec.dtype == DType::kF32 ? 1e-5 : 1e-2)))
      failure += " lse error " + std::to_string(lse_err);
  }
  if (spec.with_weights) {
    const double w_err = weights_max_error(p, ref);
    if (!(w_err <= (spec.dtype == DType::kF32 ? 1e-6 : 1e-3)))
      failure += " weights error " + std::to_string(w_err);
  }
  return failure;
}

class CudaVariants : public ::testing::TestWithParam<CudaVariant> {};

TEST_P(CudaVariants, MatchesTheFloat64ReferenceOnTheSweep) {
  QWEN3VL_REQUIRE_GPU();
  for (const ProblemSpec& spec : testing::attention_sweep()) {
    const std::string failure = check_variant(GetParam(), spec);
    EXPECT_EQ(failure, "") << GetParam().name << " " << spec.to_string();
  }
}

TEST_P(CudaVariants, FullyMaskedRowsGiveZeroAndMinusInfLse) {
  QWEN3VL_REQUIRE_GPU();
  ProblemSpec s;
  s.seq_q = 80;
  s.seq_k = 3;
  s.mask = MaskKind::kCausal;  // rows 0..76 see nothing
  s.with_lse = true;
  s.batch = 2;
  s.key_lengths = {3, 0};  // the second sequence sees nothing at all
  Problem p(s);
  ASSERT_TRUE(run_on_device(*make(GetParam()), p).ok());
  testing::expect_empty_rows_zero(
      p, [](int64_t b, int64_t i) { return b == 1 || i < 77; }, GetParam().name);
}

TEST_P(CudaVariants, NanInMaskedOutKeysDoesNotLeak) {
  QWEN3VL_REQUIRE_GPU();
  // Keys beyond key_lengths and keys before every row's window hold NaN, in K and in V.
  for (DType dtype : {DType::kF32, DType::kF16}) {
    ProblemSpec s;
    s.seq_q = 3;
    s.seq_k = 200;
    s.mask = MaskKind::kSlidingWindow;
    s.window_left = 4;
    s.window_right = 0;
    s.key_lengths = {150};
    s.dtype = dtype;
    s.head_dim = 128;
    Problem p(s);
    testing::poison_keys(p, {0, 5, 20, 100, 150, 170, 199});
    const reference::Result ref = reference::attention(p.params);
    ASSERT_TRUE(run_on_device(*make(GetParam()), p).ok());
    EXPECT_LE(testing::relative_error(p.params, ref), testing::tolerance(dtype)) << GetParam().name;
  }
}

// Inf / NaN in K or V rows hidden from some rows (causal, window, additive -inf, key padding,
// varlen) reach only the rows that see them; NaN in q makes its row NaN.
TEST_P(CudaVariants, NonFiniteValuesReachOnlyTheRowsThatSeeThem) {
  QWEN3VL_REQUIRE_GPU();
  const auto attn = make(GetParam());
  const int64_t ran =
      testing::check_nonfinite_scenes(GetParam().name, {{"cuda", [&attn](Problem& p) {
                                                           DeviceProblem d(p);
                                                           if (!attn->supports(d.params).ok())
                                                             return false;
                                                           throw_if_error(run_on_device(*attn, p));
                                                           return true;
                                                         }}});
  EXPECT_GT(ran, 0);
}

TEST_P(CudaVariants, CapturedInACudaGraphGivesTheSameResult) {
  QWEN3VL_REQUIRE_GPU();
  ProblemSpec s;
  s.seq_q = 70;
  s.seq_k = 90;
  s.mask = MaskKind::kCausal;
  s.with_lse = true;
  Problem p(s);
  const reference::Result ref = reference::attention(p.params);
  const auto attn = make(GetParam());
  DeviceProblem d(p);
  DeviceBuffer ws(attn->workspace_size(d.params));
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  const Status st = attn->forward(d.params, Workspace{ws.data(), ws.bytes()}, stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_TRUE(st.ok()) << st.to_string();
  ASSERT_EQ(cudaGraphInstantiateWithFlags(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  d.download();
  EXPECT_LE(testing::relative_error(p.params, ref), 1e-5);
  EXPECT_LE(testing::lse_max_error(p.params, ref), 1e-5);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

TEST_P(CudaVariants, RejectsHostMemoryAndForeignArguments) {
  QWEN3VL_REQUIRE_GPU();
  Problem p{ProblemSpec{}};
  const auto attn = make(GetParam());
  // Host tensors: tagged CPU, and tagged CUDA while pointing at host memory.
  EXPECT_EQ(attn->supports(p.params).code(), StatusCode::kUnsupported);
  AttentionParams lie = p.params;
  for (TensorView* t : {&lie.q, &lie.k, &lie.v, &lie.out}) {
    t->device = Device::kCUDA;
    t->device_index = testing::cuda_current_device();
  }
  // A plan (and so supports()) is made from shapes and device tags; run() finds the host memory
  // (given the workspace the plan asks for, so that the pointers are what it refuses).
  EXPECT_TRUE(attn->supports(lie).ok());
  DeviceBuffer lie_ws(attn->workspace_size(lie));
  EXPECT_EQ(attn->forward(lie, Workspace{lie_ws.data(), lie_ws.bytes()}, nullptr).code(),
            StatusCode::kInvalidArgument);
  DeviceProblem d(p);
  ASSERT_TRUE(attn->supports(d.params).ok());
  AttentionParams bad = d.params;
  bad.q.stride[3] = 2;
  EXPECT_EQ(attn->supports(bad).code(), StatusCode::kBadStride);
  bad = d.params;
  bad.k.shape[2] = 3;  // 4 query heads over 3 KV heads
  EXPECT_EQ(attn->forward(bad, Workspace{}, nullptr).code(), StatusCode::kInvalidArgument);
  if (!GetParam().weights) {
    ProblemSpec w;
    w.with_weights = true;
    Problem pw(w);
    DeviceProblem dw(pw);
    EXPECT_EQ(attn->supports(dw.params).code(), StatusCode::kUnsupported);
  } else {
    const size_t need = attn->workspace_size(d.params);
    DeviceBuffer small(need / 2);
    EXPECT_EQ(attn->forward(d.params, Workspace{small.data(), small.bytes()}, nullptr).code(),
              StatusCode::kWorkspaceTooSmall);
    std::vector<char> host(need);
    EXPECT_EQ(attn->forward(d.params, Workspace{host.data(), host.size()}, nullptr).code(),
              StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(attn->describe().empty());
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaVariants, ::testing::ValuesIn(kVariants),
                         [](const ::testing::TestParamInfo<CudaVariant>& info) {
                           return std::string(info.param.name);
                         });

// The reduced sweep compute-sanitizer runs (memcheck and racecheck): small shapes that still cross
// tile edges, every mask, varlen, GQA, each storage dtype.
TEST(CudaSanitize, ReducedSweep) {
  QWEN3VL_REQUIRE_GPU();
  std::vector<ProblemSpec> specs;
  ProblemSpec a;
  a.seq_q = 70;
  a.seq_k = 37;
  a.head_dim = 72;
  a.mask = MaskKind::kCausal;
  a.with_lse = true;
  specs.push_back(a);
  ProblemSpec b = a;
  b.bhsd = true;
  b.head_dim = 33;
  b.dtype = DType::kF16;
  b.mask = MaskKind::kSlidingWindow;
  b.window_left = 9;
  b.window_right = 3;
  specs.push_back(b);
  ProblemSpec c;
  c.varlen_q = {40, 0, 7};
  c.varlen_k = {33, 5, 70};
  c.head_dim = 128;
  c.dtype = DType::kBF16;
  c.with_lse = true;
  specs.push_back(c);
  ProblemSpec d;
  d.batch = 2;
  d.seq_q = 5;
  d.seq_k = 66;
  d.head_dim = 256;
  d.key_lengths = {66, 20};
  d.additive_mask = true;
  d.softcap = 3.0f;
  d.with_weights = true;
  specs.push_back(d);
  for (const CudaVariant& v : kVariants)
    for (const ProblemSpec& spec : specs)
      EXPECT_EQ(check_variant(v, spec), "") << v.name << " " << spec.to_string();
}

// Element offsets past 2^31: four tensors share one f16 allocation of about 4.3 GB, with the second
// sequence of each more than 2^31 elements from the first.
TEST(CudaLargeOffsets, ElementOffsetsBeyondTwoToThe31) {
  QWEN3VL_REQUIRE_GPU();
  size_t free_bytes = 0, total_bytes = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
  const int64_t batch_stride = (int64_t{1} << 31) + 4096;  // elements
  if (free_bytes < static_cast<size_t>(batch_stride * 2) + (size_t{1} << 30))
    GTEST_SKIP() << "needs about 5 GB of free device memory";
  ProblemSpec s;
  s.batch = 2;
  s.seq_q = 70;
  s.seq_k = 90;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 64;
  s.dtype = DType::kF16;
  s.mask = MaskKind::kCausal;
  s.with_lse = true;
  Problem p(s);
  const reference::Result ref = reference::attention(p.params);
  DeviceBuffer big(static_cast<size_t>(batch_stride + 4 * 70 * 4 * 64) * 2 + 4096 * 2);
  DeviceBuffer lse(static_cast<size_t>(p.lse.bytes()));
  // Each tensor at its own offset inside one batch slot; slot b starts b * batch_stride elements
  // in.
  const Tensor* tensors[] = {&p.q, &p.k, &p.v, &p.out};
  TensorView* views[] = {&p.params.q, &p.params.k, &p.params.v, &p.params.out};
  AttentionParams dev = p.params;
  TensorView* dev_views[] = {&dev.q, &dev.k, &dev.v, &dev.out};
  int64_t slot_offset = 0;
  for (int t = 0; t < 4; ++t) {
    const int64_t per_batch = tensors[t]->numel() / 2;
    TensorView v = *views[t];
    v.data = static_cast<uint16_t*>(big.data()) + slot_offset;
    v.device = Device::kCUDA;
    v.device_index = testing::cuda_current_device();
    v.stride[0] = batch_stride;
    for (int64_t b = 0; b < 2; ++b)
      big.upload(static_cast<const uint16_t*>(tensors[t]->view().data) + b * per_batch,
                 static_cast<size_t>(per_batch) * 2,
                 static_cast<size_t>(slot_offset + b * batch_stride) * 2);
    *dev_views[t] = v;
    slot_offset += per_batch;
  }
  dev.lse = p.params.lse;
  dev.lse.data = lse.data();
  dev.lse.device = Device::kCUDA;
  dev.lse.device_index = testing::cuda_current_device();
  for (const CudaVariant& variant : kVariants) {
    const auto attn = make(variant);
    ASSERT_TRUE(attn->supports(dev).ok()) << attn->supports(dev).to_string();
    DeviceBuffer ws(attn->workspace_size(dev));
    ASSERT_TRUE(attn->forward(dev, Workspace{ws.data(), ws.bytes()}, nullptr).ok());
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const int64_t per_batch = p.out.numel() / 2;
    const int64_t out_offset =
        static_cast<const uint16_t*>(dev.out.data) - static_cast<uint16_t*>(big.data());
    for (int64_t b = 0; b < 2; ++b)
      big.download(static_cast<uint16_t*>(p.out.view().data) + b * per_batch,
                   static_cast<size_t>(per_batch) * 2,
                   static_cast<size_t>(out_offset + b * batch_stride) * 2);
    lse.download(p.lse.view().data, static_cast<size_t>(p.lse.bytes()));
    EXPECT_LE(testing::relative_error(p.params, ref), 1e-2) << variant.name;
    EXPECT_LE(testing::lse_max_error(p.params, ref), 1e-2) << variant.name;
  }
}

TEST(CudaSelector, AutoPicksFlashOrSm61ByComputeCapabilityAndStandardForWeights) {
  QWEN3VL_REQUIRE_GPU();
  int major = 0, minor = 0;
  ASSERT_TRUE(cuda_compute_capability(-1, &major, &minor).ok());
  AttentionConfig c;
  c.device = Device::kCUDA;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 128;
  auto a = Selector::create(c);
  EXPECT_EQ(a->device(), Device::kCUDA);
  EXPECT_EQ(a->variant(), major == 6 ? Variant::kSm61Tiled : Variant::kFlash2) << a->describe();
  c.need_weights = true;
  EXPECT_EQ(Selector::create(c)->variant(), Variant::kStandard);
  c.need_weights = false;
  c.variant = Variant::kSm61Tiled;
  EXPECT_EQ(Selector::create(c)->variant(), Variant::kSm61Tiled);
  // A simulated Pascal machine gets the sm61 tiles.
  HardwareInfo pascal = HardwareInfo::current();
  ASSERT_FALSE(pascal.gpus.empty());
  for (GpuInfo& g : pascal.gpus) g.sm_major = 6, g.sm_minor = 1;
  c.variant = Variant::kAuto;
  c.hardware = &pascal;
  EXPECT_EQ(Selector::create(c)->variant(), Variant::kSm61Tiled);
}

}  // namespace
}  // namespace qwen3vl
