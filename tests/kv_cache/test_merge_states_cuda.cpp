// merge_states_cuda equals the host merge_states (to the last ulp of the device's expf / logf;
// empty partials exactly): every dtype pairing, empty partials (-inf LSE, NaN in the output never
// read), out aliasing o1 and lse_out aliasing lse1; host views are typed errors. Skips where no
// CUDA device exists.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "qwen3vl/cuda/merge_states.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "support/cuda_device.hpp"

namespace qwen3vl {
namespace {

// A device copy of a host tensor, and back.
struct DeviceCopy {
  void* data = nullptr;
  TensorView view;
  explicit DeviceCopy(const Tensor& t) {
    EXPECT_EQ(cudaMalloc(&data, static_cast<size_t>(t.bytes()) + 1), cudaSuccess);
    EXPECT_EQ(
        cudaMemcpy(data, t.view().data, static_cast<size_t>(t.bytes()), cudaMemcpyHostToDevice),
        cudaSuccess);
    view = t.view();
    view.data = data;
    view.device = Device::kCUDA;
  }
  ~DeviceCopy() { cudaFree(data); }
  void to_host(Tensor* t) const {
    EXPECT_EQ(
        cudaMemcpy(t->view().data, data, static_cast<size_t>(t->bytes()), cudaMemcpyDeviceToHost),
        cudaSuccess);
  }
};

TEST(MergeStatesCuda, EqualsTheHostMerge) {
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device";
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (DType a : {DType::kF32, DType::kF16, DType::kBF16})
    for (DType out_type : {DType::kF32, DType::kBF16})
      for (bool alias : {false, true}) {
        SCOPED_TRACE(std::string(to_string(a)) + " -> " + to_string(out_type) +
                     (alias ? " aliased" : ""));
        const int64_t tokens = 37, heads = 5, dim = 72;
        Tensor o1(a, {tokens, heads, dim}), o2(DType::kF16, {tokens, heads, dim});
        Tensor l1(DType::kF32, {tokens, heads}), l2(DType::kF32, {tokens, heads});
        testing::fill_uniform(o1, 1, -3.0f, 3.0f);
        testing::fill_uniform(o2, 2, -3.0f, 3.0f);
        testing::fill_uniform(l1, 3, -20.0f, 20.0f);
        testing::fill_uniform(l2, 4, -20.0f, 20.0f);
        for (int64_t r = 0; r < tokens * heads; r += 7) {  // empty partials, their o never read
          if (r % 2) {
            l1.set(r, neg_inf);
            for (int64_t c = 0; c < dim; ++c) o1.set(r * dim + c, nan);
          } else {
            l2.set(r, neg_inf);
          }
        }
        l1.set(3, neg_inf);
        l2.set(3, neg_inf);  // both empty: 0 and -inf
        const DType out_dtype = alias ? a : out_type;
        Tensor want(out_dtype, {tokens, heads, dim}), want_lse(DType::kF32, {tokens, heads});
        ASSERT_TRUE(merge_states(o1, l1, o2, l2, want, want_lse).ok());
        DeviceCopy d1(o1), d2(o2), dl1(l1), dl2(l2);
        Tensor got(out_dtype, {tokens, heads, dim}), got_lse(DType::kF32, {tokens, heads});
        DeviceCopy dout(got), dlo(got_lse);
        const TensorView& out = alias ? d1.view : dout.view;
        const TensorView& lo = alias ? dl1.view : dlo.view;
        ASSERT_TRUE(merge_states_cuda(d1.view, dl1.view, d2.view, dl2.view, out, lo).ok());
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        (alias ? d1 : dout).to_host(&got);
        (alias ? dl1 : dlo).to_host(&got_lse);
        // expf / logf of the device may differ from the host's in the last ulp: values to
        // rounding, empty and single partials exactly (no exponential is taken for them).
        const double tol = out_dtype == DType::kF32 ? 2e-6 : 8e-3;
        for (int64_t i = 0; i < want.numel(); ++i) {
          const double x = got.get(i), y = want.get(i);
          ASSERT_LE(std::abs(x - y), tol * std::max(1.0, std::abs(y))) << "element " << i;
        }
        for (int64_t r = 0; r < tokens * heads; ++r) {
          if (std::isinf(want_lse.get(r)) || std::isinf(l1.get(r)) || std::isinf(l2.get(r)))
            ASSERT_EQ(got_lse.get(r), want_lse.get(r)) << "row " << r;
          else
            ASSERT_NEAR(got_lse.get(r), want_lse.get(r), 1e-5) << "row " << r;
        }
      }
}

TEST(MergeStatesCuda, HostViewsAreTypedErrors) {
  Tensor o(DType::kF32, {2, 3, 8}), l(DType::kF32, {2, 3});
  const Status st = merge_states_cuda(o, l, o, l, o, l);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_NE(st.message().find("device memory"), std::string::npos) << st.message();
  TensorView device_o = o.view(), device_l = l.view();
  device_o.device = device_l.device = Device::kCUDA;
  TensorView bad = device_o;
  bad.shape[2] = 7;
  EXPECT_EQ(merge_states_cuda(device_o, device_l, bad, device_l, device_o, device_l).code(),
            StatusCode::kShapeMismatch);
}

}  // namespace
}  // namespace qwen3vl
