// The vision layer example of docs/api.md (a test keeps the two equal): two images packed into
// one call, 2-D RoPE positions from their grids, attention within each image (cu_seqlens).
#include <qwen3vl/attention.hpp>
#include <qwen3vl/testing/random_fill.hpp>

#include <cstdio>
#include <vector>

using namespace qwen3vl;
using qwen3vl::testing::fill_uniform;

int main() {
  layers::VisionAttentionConfig config;  // a small encoder layer: D = 64 / 4 = 16
  config.hidden_size = 64;
  config.num_heads = 4;
  Tensor qkv_weight(DType::kF32, {192, 64}), qkv_bias(DType::kF32, {192});
  Tensor proj_weight(DType::kF32, {64, 64}), proj_bias(DType::kF32, {64});
  fill_uniform(qkv_weight, 1, -0.1f, 0.1f), fill_uniform(proj_weight, 2, -0.1f, 0.1f);
  auto layer = layers::Qwen3VLVisionAttention::create(
      config, {qkv_weight, qkv_bias, proj_weight, proj_bias});

  // Patch grids (t, h, w) of two images; patches arrive in 2x2 merge-block order.
  const std::vector<rope::GridThw> grids = {{1, 4, 6}, {1, 2, 2}};
  std::vector<int32_t> rows_cols;  // [2, N]: every patch's row, then every patch's column
  throw_if_error(rope::vision_positions(grids, /*merge=*/2, &rows_cols));
  const int64_t n = rope::vision_patches(grids);  // 24 + 4
  std::vector<int32_t> cu = {0, 24, 28};          // one segment per image (per frame of a video)

  Tensor hidden(DType::kF32, {n, 64});
  fill_uniform(hidden, 3);
  const Tensor out = (*layer)(hidden, TensorView::contiguous(rows_cols.data(), DType::kI32, {2, n}),
                              TensorView::contiguous(cu.data(), DType::kI32, {3}));
  std::printf("%s\n%lld patches, out[0] = %g\n", layer->describe().c_str(),
              static_cast<long long>(out.size(0)), out.get(0));
  return out.size(0) == n ? 0 : 1;
}
