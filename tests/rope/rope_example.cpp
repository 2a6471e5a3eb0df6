// The RoPE example of docs/api.md (a test keeps the two equal): M-RoPE position ids for a prompt
// with one image, the cos/sin the text table gives them, and RoPE applied to q and k in place.
#include <qwen3vl/attention.hpp>
#include <qwen3vl/testing/random_fill.hpp>

#include <cstdio>
#include <memory>
#include <vector>

using namespace qwen3vl;
using qwen3vl::testing::fill_uniform;

int main() {
  // [x x x <6 image tokens> x x]: token types, and the image's patch grid before the 2x2 merge.
  std::vector<int32_t> types = {0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0};
  rope::RopeIndexInput index;  // Qwen3-VL, batch 1
  index.seq_len = 11;
  index.token_types = types.data();
  index.image_grid_thw = {{1, 4, 6}};
  rope::RopeIndexOutput ids;  // positions [3, 1, 11] (t, h, w) and the rope delta per sequence
  throw_if_error(rope::get_rope_index(index, &ids));

  // The text table of a head of 32 (sections add up to 16 slots), interleaved as in Qwen3-VL.
  rope::RopeConfig rc;
  rc.head_dim = 32;
  rc.theta = 5e6;
  rope::RopeTable table;
  throw_if_error(rope::make_text_table(rc, rope::MRopeLayout::kInterleaved, {6, 5, 5},
                                       /*max_position=*/4096, rope::AngleRecipe::kExact,
                                       rope::TableLayout::kSplit, &table));
  const TensorView positions = TensorView::contiguous(ids.positions.data(), DType::kI32, {3, 11});
  Tensor cos(DType::kF32, {11, 16}), sin(DType::kF32, {11, 16});
  throw_if_error(rope::rope_cos_sin(table.view(), positions, cos, sin));

  Tensor q(DType::kF32, {11, 4, 32}), k(DType::kF32, {11, 2, 32});  // packed [tokens, heads, D]
  fill_uniform(q, 1);
  fill_uniform(k, 2);
  std::unique_ptr<rope::RopeApplier> rope_cpu;
  throw_if_error(rope::create_rope_cpu(CpuOptions{}, &rope_cpu));
  rope::RopeApplyParams apply;
  apply.q = q;
  apply.k = k;
  apply.positions = positions;
  apply.table = table.view();
  rope_cpu->run(apply);  // rotates q and k in place

  std::printf("token 4 at (t, h, w) = (%d, %d, %d); delta %d; slot 1 of token 4: cos %.6f\n",
              ids.positions[4], ids.positions[11 + 4], ids.positions[22 + 4], ids.delta[0],
              cos.get(4 * 16 + 1));
  return ids.delta[0] == -3 ? 0 : 1;
}
