// Block-sparse layouts and query positions in the CUDA flash kernel (block_sparse on the generic
// tiles, sm61_tiled on the compact ones, flash2) against the float64 reference: every block size
// pair 16..128, odd N, D 64/72/128, GQA, one / Hkv / B x Hkv layouts, masks, varlen, f32/f16/bf16,
// empty row blocks, gathered query rows; a full layout equals dense flash2; the CPU block-sparse
// variant agrees. Skips where no CUDA device exists.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/variants/block_sparse.hpp"
#include "support/block_layouts.hpp"
#include "support/block_sparse_cases.hpp"
#include "support/device_problem.hpp"
#include "support/nonfinite.hpp"

namespace qwen3vl {
namespace {

using testing::DeviceProblem;
using testing::HostLayout;
using testing::LayoutCase;
using testing::LayoutProblem;
using testing::Problem;
using testing::ProblemSpec;
using testing::RandomLayoutSpec;

#define QWEN3VL_REQUIRE_GPU() \
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device"

using CudaFactory = Status (*)(const CudaOptions&, std::unique_ptr<Attention>*);

std::unique_ptr<Attention> make(CudaFactory create) {
  std::unique_ptr<Attention> a;
  throw_if_error(create(CudaOptions{}, &a));
  return a;
}

// A contiguous host view copied to the device; `view` is the device view.
struct DeviceCopy {
  DeviceBuffer buffer;
  TensorView view;
  explicit DeviceCopy(const TensorView& host) : view(host) {
    buffer = DeviceBuffer(static_cast<size_t>(host.numel() * size_of(host.dtype)));
    if (host.numel() > 0) buffer.upload(host.data, buffer.bytes());
    view.data = buffer.data();
    view.device = Device::kCUDA;
    view.device_index = testing::cuda_current_device();
  }
};

// A problem on the device with its layout and query positions (host ones in p.params) copied too.
class DeviceRun {
 public:
  explicit DeviceRun(Problem& p) : problem_(p) {
    if (p.params.block_layout.present()) {
      indptr_ = std::make_unique<DeviceCopy>(p.params.block_layout.indptr);
      indices_ = std::make_unique<DeviceCopy>(p.params.block_layout.indices);
      problem_.params.block_layout.indptr = indptr_->view;
      problem_.params.block_layout.indices = indices_->view;
    }
    if (p.params.q_positions.present()) {
      positions_ = std::make_unique<DeviceCopy>(p.params.q_positions);
      problem_.params.q_positions = positions_->view;
    }
  }
  AttentionParams& params() { return problem_.params; }

  Status run(const Attention& attn) {
    QWEN3VL_RETURN_IF_ERROR(attn.supports(problem_.params));
    QWEN3VL_RETURN_IF_ERROR(attn.forward(problem_.params, Workspace{}, nullptr));
    QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaDeviceSynchronize(), "cudaDeviceSynchronize"));
    problem_.download();
    return Status();
  }

 private:
  DeviceProblem problem_;
  std::unique_ptr<DeviceCopy> indptr_, indices_, positions_;
};

// Runs `p` with `create` and compares with the reference `ref`: output within the dtype's
// tolerance, LSE within 1e-5 (f32) / 1e-2, -inf rows exact. Returns "" or the failure.
std::string check(CudaFactory create, Problem& p, const reference::Result& ref) {
  DeviceRun d(p);
  const Status st = d.run(*make(create));
  if (!st.ok()) return st.to_string();
  std::string failure;
  const double err = testing::relative_error(p.params, ref);
  if (!(err <= testing::tolerance(p.spec.dtype))) failure += " out error " + std::to_string(err);
  if (p.spec.with_lse) {
    const double lse = testing::lse_max_error(p.params, ref);
    if (!(lse <= (p.spec.dtype == DType::kF32 ? 1e-5 : 1e-2)))
      failure += " lse error " + std::to_string(lse);
  }
  return failure;
}

struct Kernel {
  const char* name;
  CudaFactory create;
};
// block_sparse runs the generic tiles (64 x 64), sm61_tiled the compact ones (64 x 32, 32 x 32).
const Kernel kLayoutKernels[] = {{"block_sparse", &create_block_sparse_cuda},
                                 {"sm61_tiled", &create_sm61_tiled_cuda}};

// Checks `p` (host layout / positions attached) on both tile configurations; a
// testing::LayoutCheck.
void expect_both_tiles_match(Problem& p, const std::string& label) {
  const reference::Result ref = reference::attention(p.params);
  for (const Kernel& k : kLayoutKernels)
    EXPECT_EQ(check(k.create, p, ref), "") << k.name << " " << label;
}

// Query block sizes below, equal to and above the kernels' 64 (and 32) rows, misaligned ones (48,
// 80, 112) whose blocks straddle a kernel tile, against key blocks of every width.
TEST(BlockSparseCuda, RandomLayoutsMatchTheFloat64Reference) {
  QWEN3VL_REQUIRE_GPU();
  testing::LayoutSweep w;
  w.q_blocks = {16, 32, 48, 64, 80, 128};
  w.k_blocks = {16, 48, 64, 112, 128};
  w.lengths = {{517, 333}, {333, 517}};
  w.batches = {2};
  w.masks = {MaskKind::kNone, MaskKind::kCausal, MaskKind::kSlidingWindow,
             MaskKind::kCausalTopLeft};
  w.dtypes = {DType::kF32, DType::kF16, DType::kBF16};
  w.seed = 9000;
  testing::check_random_layouts(w, &expect_both_tiles_match);
}

// Rows of an empty row block see no key: output 0 and LSE -inf, never NaN.
TEST(BlockSparseCuda, EmptyRowBlocksGiveZeroAndMinusInfLse) {
  QWEN3VL_REQUIRE_GPU();
  for (const Kernel& k : kLayoutKernels) {
    LayoutProblem p = testing::empty_row_blocks_problem();
    DeviceRun d(p.problem);
    ASSERT_TRUE(d.run(*make(k.create)).ok()) << k.name;
    testing::expect_empty_row_blocks_zero(p.problem, k.name);
  }
}

// A layout listing every block is dense attention: bit for bit where the walk visits the same
// tiles as the dense one (no mask, causal), to 1e-6 under a window (the walk starts on a 16-key
// granule, the dense one at the first visible key).
TEST(BlockSparseCuda, FullLayoutEqualsDenseFlash2) {
  QWEN3VL_REQUIRE_GPU();
  uint64_t seed = 9100;
  for (MaskKind mask : {MaskKind::kNone, MaskKind::kCausal, MaskKind::kSlidingWindow})
    for (int32_t block : {16, 64, 128}) {
      const ProblemSpec s = testing::full_layout_spec(mask, 333, 517, 8, ++seed);
      LayoutProblem sparse(testing::full_layout(block, block, 1, s.seq_q, s.seq_k), s);
      Problem dense(s);
      DeviceRun ds(sparse.problem), dd(dense);
      ASSERT_TRUE(ds.run(*make(&create_block_sparse_cuda)).ok());
      ASSERT_TRUE(dd.run(*make(&create_flash2_cuda)).ok());
      testing::expect_same_as_dense(sparse.problem, dense, /*with_lse=*/false,
                                    s.to_string() + " block " + std::to_string(block));
    }
}

// Gathered query rows: dense (flash2, sm61_tiled) and with a layout on top, every mask.
TEST(BlockSparseCuda, QueryPositionsMatchTheReference) {
  QWEN3VL_REQUIRE_GPU();
  uint64_t seed = 9200;
  for (MaskKind mask :
       {MaskKind::kCausal, MaskKind::kCausalTopLeft, MaskKind::kSlidingWindow, MaskKind::kNone})
    for (bool with_layout : {false, true}) {
      const LayoutCase c = testing::query_positions_case(mask, with_layout, 150, 517, 8, ++seed);
      LayoutProblem p = testing::query_positions_problem(c, with_layout);
      const reference::Result ref = reference::attention(p.problem.params);
      const Kernel kernels[] = {{"flash2", &create_flash2_cuda},
                                {"sm61_tiled", &create_sm61_tiled_cuda},
                                {"block_sparse", &create_block_sparse_cuda}};
      for (const Kernel& k : kernels) {
        if (!with_layout && k.create == &create_block_sparse_cuda) continue;
        EXPECT_EQ(check(k.create, p.problem, ref), "")
            << k.name << " " << c.spec.to_string() << (with_layout ? " q_positions + layout" : "");
      }
    }
}

// Packed sequences (one without queries, one without keys), one layout per (sequence, KV head),
// then q_positions on the packed rows with a window.
TEST(BlockSparseCuda, VarlenWithPerSequenceLayouts) {
  QWEN3VL_REQUIRE_GPU();
  testing::check_varlen_layouts(testing::varlen_case(DType::kF16, 9300), &expect_both_tiles_match);
}

// Token-level masks inside visited blocks: additive mask, key padding and soft-cap; a rank-1
// layout with MQA.
TEST(BlockSparseCuda, TokenMasksInsideBlocksAndRankOneLayout) {
  QWEN3VL_REQUIRE_GPU();
  const LayoutCase masks = testing::token_masks_case(9400);
  {
    LayoutProblem p(masks);
    expect_both_tiles_match(p.problem, masks.label());
  }
  LayoutCase flat = testing::rank_one_case(128, 9401);
  flat.layout.keep_diagonal = true;  // the token-mask case's layout at 48 x 32
  flat.layout.seed = masks.layout.seed;
  LayoutProblem p(flat, /*flat=*/true);
  ASSERT_EQ(p.layout.layout.indptr.rank, 1);
  expect_both_tiles_match(p.problem, flat.label() + " rank 1");
}

// Keys that every row hides by an additive -inf, inside tiles other keys make visible, hold NaN
// in K and V: they weigh exactly 0 and their V rows are zeroed (0 x NaN would leak), in every
// flash kernel (block_sparse with a full layout).
TEST(BlockSparseCuda, NanInKeysHiddenByAnAdditiveMaskDoesNotLeak) {
  QWEN3VL_REQUIRE_GPU();
  for (DType dtype : {DType::kF32, DType::kF16}) {
    ProblemSpec s;
    s.seq_q = 70;
    s.seq_k = 150;
    s.heads = 4;
    s.kv_heads = 2;
    s.head_dim = 128;
    s.additive_mask = true;
    s.dtype = dtype;
    s.seed = 9700;
    Problem p(s);
    testing::poison_keys(p, {3, 64, 100, 149});
    const HostLayout layout = testing::full_layout(32, 16, 1, s.seq_q, s.seq_k);
    const reference::Result dense_ref = reference::attention(p.params);
    const Kernel kernels[] = {{"flash2", &create_flash2_cuda},
                              {"sm61_tiled", &create_sm61_tiled_cuda},
                              {"block_sparse", &create_block_sparse_cuda}};
    for (const Kernel& k : kernels) {
      if (k.create == &create_block_sparse_cuda) p.params.block_layout = layout.layout;
      EXPECT_EQ(check(k.create, p, dense_ref), "") << k.name << " " << s.to_string();
    }
  }
}

// Inf / NaN in K or V rows that the layout or a mask hides from some rows reach only the rows
// that see them, on both tile configurations.
TEST(BlockSparseCuda, NonFiniteValuesReachOnlyTheRowsThatSeeThem) {
  QWEN3VL_REQUIRE_GPU();
  for (const Kernel& k : kLayoutKernels) {
    const auto attn = make(k.create);
    const int64_t ran = testing::check_nonfinite_scenes(k.name,
                                                        {{"cuda",
                                                          [&attn](Problem& p) {
                                                            DeviceRun d(p);
                                                            if (!attn->supports(d.params()).ok())
                                                              return false;
                                                            throw_if_error(d.run(*attn));
                                                            return true;
                                                          }}},
                                                        /*with_layout=*/true);
    EXPECT_GT(ran, 0) << k.name;
  }
}

// The CPU block-sparse variant computes the same thing (both within float rounding of the
// reference, and of each other).
TEST(BlockSparseCuda, AgreesWithTheCpuVariant) {
  QWEN3VL_REQUIRE_GPU();
  ProblemSpec s = testing::problem_spec(300, 300, 8, 2, 128, MaskKind::kCausal, 9500, 2);
  s.with_lse = false;
  RandomLayoutSpec l;
  l.block_q = 32;
  l.block_k = 64;
  l.layouts = s.kv_heads;
  l.density = 0.4;
  l.keep_diagonal = true;
  l.seed = 9500;
  const HostLayout layout = testing::random_layout(l, s.seq_q, s.seq_k);
  Problem gpu(s), cpu(s);
  gpu.params.block_layout = cpu.params.block_layout = layout.layout;
  DeviceRun d(gpu);
  ASSERT_TRUE(d.run(*make(&create_block_sparse_cuda)).ok());
  std::unique_ptr<Attention> host;
  ASSERT_TRUE(create_block_sparse_cpu(CpuOptions{}, &host).ok());
  host->run(cpu.params);
  EXPECT_LE(testing::relative_difference(gpu.out, cpu.out), 1e-5);
}

TEST(BlockSparseCuda, RequiresADeviceLayoutAndDescribesItself) {
  QWEN3VL_REQUIRE_GPU();
  const auto attn = make(&create_block_sparse_cuda);
  EXPECT_EQ(attn->variant(), Variant::kBlockSparse);
  EXPECT_EQ(attn->device(), Device::kCUDA);
  EXPECT_NE(attn->describe().find("block_sparse"), std::string::npos) << attn->describe();
  Problem p{ProblemSpec{}};
  {
    DeviceRun d(p);
    const Status st = attn->supports(d.params());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("block_layout is absent"), std::string::npos) << st.message();
  }
  const HostLayout layout(16, 16, {{{0}}});
  DeviceRun d(p);
  d.params().block_layout = layout.layout;  // host memory
  const Status st = attn->supports(d.params());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("block_layout"), std::string::npos) << st.message();
  const Tensor positions(DType::kI32, {1, 16});
  d.params().block_layout = BlockLayout{};
  d.params().q_positions = positions.view();
  const Status qp = make(&create_flash2_cuda)->supports(d.params());  // host positions
  EXPECT_FALSE(qp.ok());
  EXPECT_NE(qp.message().find("q_positions"), std::string::npos) << qp.message();
}

// The reduced case compute-sanitizer runs: straddling row blocks, a partial key block, varlen.
TEST(CudaSanitize, BlockSparseReducedCases) {
  QWEN3VL_REQUIRE_GPU();
  LayoutCase c;
  c.spec = testing::problem_spec(70, 101, 4, 2, 72, MaskKind::kCausal, 9600);
  c.layout.block_q = 48;
  c.layout.block_k = 16;
  c.layout.layouts = 2;
  c.layout.density = 0.5;
  c.layout.seed = 9600;
  LayoutProblem p(c);
  expect_both_tiles_match(p.problem, c.label());
}

}  // namespace
}  // namespace qwen3vl
