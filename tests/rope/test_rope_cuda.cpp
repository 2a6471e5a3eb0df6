// CUDA RoPE equals CPU RoPE bit for bit (dtypes, styles, arithmetic, layouts, M-RoPE, table
// layouts, vector and scalar paths), and out-of-range device positions are reported, not read.
// Label gpu: skips cleanly where no CUDA device exists.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <memory>

#include "qwen3vl/rope/cuda.hpp"
#include "support/cuda_device.hpp"
#include "support/rope_problem.hpp"

namespace qwen3vl {
namespace {

using rope::MRopeLayout;
using rope::RopeArithmetic;
using rope::RopeStyle;
using rope::TableLayout;
using testing::RopeProblem;
using testing::RopeSpec;

// A device copy of a host tensor, with the host view's shape and strides.
struct DeviceCopy {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit DeviceCopy(const Tensor& t) : bytes(static_cast<size_t>(t.bytes())) {
    EXPECT_EQ(cudaMalloc(&ptr, bytes ? bytes : 1), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr, t.view().data, bytes, cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceCopy() { cudaFree(ptr); }
  TensorView view(const TensorView& host) const {
    TensorView v = host;
    v.data = ptr;
    v.device = Device::kCUDA;
    return v;
  }
  void back(Tensor* t) const {
    EXPECT_EQ(cudaMemcpy(t->view().data, ptr, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  }
};

// Runs `spec` on the CPU and on the GPU from the same inputs; the results must be identical.
void expect_cuda_equals_cpu(const RopeSpec& spec) {
  RopeProblem cpu_p(spec), gpu_p(spec);
  std::unique_ptr<rope::RopeApplier> cpu, gpu;
  ASSERT_TRUE(rope::create_rope_cpu(CpuOptions{}, &cpu).ok());
  ASSERT_TRUE(rope::create_rope_cuda(0, &gpu).ok());
  ASSERT_TRUE(cpu->apply(cpu_p.params).ok()) << spec.to_string();
  rope::DeviceRopeTable table;
  ASSERT_TRUE(rope::DeviceRopeTable::upload(gpu_p.table, 0, &table).ok());
  DeviceCopy q(gpu_p.q), k(gpu_p.k), pos(gpu_p.positions);
  rope::RopeApplyParams p = gpu_p.params;
  p.q = q.view(p.q);
  p.k = k.view(p.k);
  p.positions = pos.view(p.positions);
  p.table = table.view();
  ASSERT_TRUE(gpu->apply(p).ok()) << spec.to_string();
  ASSERT_TRUE(gpu->take_error().ok()) << spec.to_string();
  q.back(&gpu_p.q);
  k.back(&gpu_p.k);
  EXPECT_EQ(testing::rope_bits(gpu_p.q), testing::rope_bits(cpu_p.q)) << spec.to_string();
  EXPECT_EQ(testing::rope_bits(gpu_p.k), testing::rope_bits(cpu_p.k)) << spec.to_string();
}

TEST(RopeCuda, EqualsCpuBitForBit) {
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device";
  uint64_t seed = 1;
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kGptj})
      for (RopeArithmetic arith : {RopeArithmetic::kFused, RopeArithmetic::kTransformersFp32,
                                   RopeArithmetic::kTransformersStorage})
        for (int64_t d : {64, 72, 80, 128}) {
          RopeSpec s;
          s.dtype = dt;
          s.style = style;
          s.arithmetic = arith;
          s.head_dim = d;
          s.seq = seed % 2 ? 17 : 65;
          s.seed = seed++;
          s.packed = seed % 3 == 0;
          s.bhsd = seed % 3 == 1;
          s.mrope = seed % 2 ? MRopeLayout::kInterleaved : MRopeLayout::kChunked;
          s.table_layout = seed % 4 < 2 ? TableLayout::kSplit : TableLayout::kFull;
          s.max_position = s.table_layout == TableLayout::kSplit ? 262144 : 4096;
          s.theta = 5e6;
          expect_cuda_equals_cpu(s);
        }
}

TEST(RopeCuda, ScalarPathsPartialRotaryAndDecode) {
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device";
  for (int64_t rot : {2, 6, 20, 64}) {  // half 1, 3, 10: the one-slot (unvectorised) kernel
    RopeSpec s;
    s.head_dim = 80;
    s.rotary_dim = rot;
    s.style = rot % 4 ? RopeStyle::kGptj : RopeStyle::kNeox;
    s.seed = static_cast<uint64_t>(rot);
    expect_cuda_equals_cpu(s);
  }
  RopeSpec decode;  // one token, GQA 32/8 as in Qwen3-VL text
  decode.batch = 1;
  decode.seq = 1;
  decode.q_heads = 32;
  decode.k_heads = 8;
  decode.mrope = MRopeLayout::kInterleaved;
  expect_cuda_equals_cpu(decode);
}

TEST(RopeCuda, OutOfRangePositionsAreReportedAndSkipped) {
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device";
  RopeSpec s;
  s.mrope = MRopeLayout::kInterleaved;
  RopeProblem hp(s);
  const int64_t n = s.batch * s.seq;
  hp.positions.data<int32_t>()[n + 3] = 99999;  // axis 1 (h), token 3: beyond max_position 4096
  const Tensor before = [&] {
    Tensor t(hp.q.dtype(), {hp.q.numel()});
    for (int64_t i = 0; i < t.numel(); ++i) t.set(i, hp.q.get(i));
    return t;
  }();
  std::unique_ptr<rope::RopeApplier> gpu;
  ASSERT_TRUE(rope::create_rope_cuda(0, &gpu).ok());
  rope::DeviceRopeTable table;
  ASSERT_TRUE(rope::DeviceRopeTable::upload(hp.table, 0, &table).ok());
  DeviceCopy q(hp.q), pos(hp.positions);
  rope::RopeApplyParams p = hp.params;
  p.q = q.view(p.q);
  p.k = TensorView{};
  p.positions = pos.view(p.positions);
  p.table = table.view();
  ASSERT_TRUE(gpu->apply(p).ok());
  const Status st = gpu->take_error();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("positions[axis 1, token 3] = 99999"), std::string::npos)
      << st.message();
  EXPECT_TRUE(gpu->take_error().ok()) << "the record is cleared once reported";
  q.back(&hp.q);
  const int64_t row = s.q_heads * s.head_dim;
  for (int64_t e = 0; e < row; ++e) ASSERT_EQ(hp.q.get(3 * row + e), before.get(3 * row + e)) << e;
  int64_t changed = 0;
  for (int64_t e = 0; e < row; ++e) changed += hp.q.get(4 * row + e) != before.get(4 * row + e);
  EXPECT_GT(changed, 0) << "the other tokens are rotated";
  // Host memory is refused up front.
  EXPECT_EQ(gpu->apply(hp.params).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qwen3vl
