// The bad-input corpus: a table of invalid arguments for each part of the public API (attention
// params on every CPU variant the selector builds, the KV cache, decode, RoPE, position ids, the
// two layers, options). Every case must return a typed error whose message names the argument,
// and leave every buffer it was given (outputs, inputs, cache storage and metadata) byte for byte
// as it was. Each suite prints how many cases it ran.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "layers/layer_support.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/rope/apply.hpp"
#include "qwen3vl/rope/position_ids.hpp"
#include "qwen3vl/selector/selector.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/standard.hpp"
#include "robustness/rejected.hpp"
#include "support/block_layouts.hpp"
#include "support/problem.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

constexpr int64_t kHuge = int64_t{1} << 61;
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

// Fills a tensor with a sentinel byte pattern (an output that must stay untouched).
void sentinel(Tensor& t) {
  if (t.bytes() > 0) std::memset(t.view().data, 0xA5, static_cast<size_t>(t.bytes()));
}

using testing::expect_rejected;
using testing::Snapshot;

void report(const char* suite, int cases) {
  std::printf("[ corpus   ] %s: %d bad-input cases\n", suite, cases);
  ::testing::Test::RecordProperty("bad_input_cases", cases);
}

// ---------------------------------------------------------------------------------------------
// Attention params, on every CPU variant the selector builds.

struct AttnCase {
  const char* name;
  const char* mentions;
  std::function<void(testing::Problem&)> mutate;
};

testing::ProblemSpec attention_base(bool varlen) {
  testing::ProblemSpec s = testing::problem_spec(32, 32, 4, 2, 16, MaskKind::kNone, 7, 2);
  s.with_lse = true;
  if (varlen) {
    s.varlen_q = {20, 12};
    s.varlen_k = {16, 32};
  }
  return s;
}

void set_i32(const Tensor& t, int64_t i, int32_t v) {
  const_cast<Tensor&>(t).data<int32_t>()[i] = v;
}

std::vector<AttnCase> fixed_length_cases() {
  using P = testing::Problem;
  static Tensor i32_lengths(DType::kI32, {2}), f32_lengths(DType::kF32, {2}),
      i32_three(DType::kI32, {3});
  static Tensor positions(DType::kI32, {2, 32}), f32_positions(DType::kF32, {2, 32});
  static Tensor mask4(DType::kF32, {2, 1, 32, 32}), mask_i32(DType::kI32, {2, 1, 32, 32}),
      mask_bad(DType::kF32, {2, 3, 32, 32}), weights(DType::kF32, {2, 4, 32, 32}),
      weights_f16(DType::kF16, {2, 4, 32, 32}), weights_short(DType::kF32, {2, 4, 32, 31}),
      lse_f16(DType::kF16, {2, 4, 32}), lse_short(DType::kF32, {2, 4, 31});
  const auto key_lengths = [](int32_t a, int32_t b) {
    return [a, b](P& p) {
      set_i32(i32_lengths, 0, a);
      set_i32(i32_lengths, 1, b);
      p.params.key_lengths = i32_lengths.view();
    };
  };
  const auto q_positions = [](int64_t at, int32_t value) {
    return [at, value](P& p) {
      for (int64_t i = 0; i < 64; ++i) set_i32(positions, i, static_cast<int32_t>(i % 32));
      set_i32(positions, at, value);
      p.params.q_positions = positions.view();
    };
  };
  return {
      {"q absent", "q", [](P& p) { p.params.q = {}; }},
      {"k absent", "k", [](P& p) { p.params.k = {}; }},
      {"v absent", "v", [](P& p) { p.params.v = {}; }},
      {"out absent", "out", [](P& p) { p.params.out = {}; }},
      {"q null", "q.data", [](P& p) { p.params.q.data = nullptr; }},
      {"k null", "k.data", [](P& p) { p.params.k.data = nullptr; }},
      {"v null", "v.data", [](P& p) { p.params.v.data = nullptr; }},
      {"out null", "out.data", [](P& p) { p.params.out.data = nullptr; }},
      {"q i32", "q.dtype", [](P& p) { p.params.q.dtype = DType::kI32; }},
      {"k f16", "k.dtype", [](P& p) { p.params.k.dtype = DType::kF16; }},
      {"v bf16", "v.dtype", [](P& p) { p.params.v.dtype = DType::kBF16; }},
      {"out f16", "out.dtype", [](P& p) { p.params.out.dtype = DType::kF16; }},
      {"k on cuda", "k.device", [](P& p) { p.params.k.device = Device::kCUDA; }},
      {"out device index", "out.device", [](P& p) { p.params.out.device_index = 3; }},
      {"q last stride 2", "q.stride[3]", [](P& p) { p.params.q.stride[3] = 2; }},
      {"k last stride 0", "k.stride[3]", [](P& p) { p.params.k.stride[3] = 0; }},
      {"out last stride 2", "out.stride[3]", [](P& p) { p.params.out.stride[3] = 2; }},
      {"q rank 3", "q.", [](P& p) { p.params.q.rank = 3; }},
      {"q rank 5", "q.rank", [](P& p) { p.params.q.rank = 5; }},
      {"q rank -1", "q", [](P& p) { p.params.q.rank = -1; }},
      {"k rank 2", "k.", [](P& p) { p.params.k.rank = 2; }},
      {"v rank 9", "v.rank", [](P& p) { p.params.v.rank = 9; }},
      {"head_dim 0", "head_dim", [](P& p) { p.params.q.shape[3] = 0; }},
      {"head_dim 300", "head_dim", [](P& p) { p.params.q.shape[3] = 300; }},
      {"no q heads", "q heads", [](P& p) { p.params.q.shape[2] = 0; }},
      {"Hkv 3", "k heads", [](P& p) { p.params.k.shape[2] = 3; }},
      {"k batch", "k.shape", [](P& p) { p.params.k.shape[0] = 3; }},
      {"v length", "v.shape", [](P& p) { p.params.v.shape[1] = 31; }},
      {"out length", "out.shape", [](P& p) { p.params.out.shape[1] = 31; }},
      {"out heads", "out.shape", [](P& p) { p.params.out.shape[2] = 2; }},
      {"negative batch", "q.shape[0]", [](P& p) { p.params.q.shape[0] = -1; }},
      {"negative key length", "k.shape[1]", [](P& p) { p.params.k.shape[1] = -5; }},
      {"q stride 2^61", "q.stride", [](P& p) { p.params.q.stride[1] = kHuge; }},
      {"k stride 2^62", "k.stride", [](P& p) { p.params.k.stride[0] = 2 * kHuge; }},
      {"v stride -2^62", "v.stride", [](P& p) { p.params.v.stride[1] = -2 * kHuge; }},
      {"out stride 2^61", "out.stride", [](P& p) { p.params.out.stride[0] = kHuge; }},
      {"k stride INT64_MIN", "k.stride", [](P& p) { p.params.k.stride[2] = INT64_MIN; }},
      {"q shape 2^62", "q.shape",
       [](P& p) { p.params.q.shape[1] = p.params.out.shape[1] = 2 * kHuge; }},
      {"k shape 2^40 x 2^40", "k.shape",
       [](P& p) {
         p.params.k.shape[0] = p.params.v.shape[0] = int64_t{1} << 40;
         p.params.k.shape[1] = p.params.v.shape[1] = int64_t{1} << 40;
       }},
      {"out aliases q", "share memory with q", [](P& p) { p.params.out.data = p.params.q.data; }},
      // out is larger than k and v under GQA: from their start it may also reach the next buffer,
      // which the check can name first; either way out is refused for sharing memory.
      {"out aliases k", "out must not share memory with",
       [](P& p) { p.params.out.data = p.params.k.data; }},
      {"out aliases v", "out must not share memory with",
       [](P& p) { p.params.out.data = p.params.v.data; }},
      {"out overlaps q tail", "share memory with q",
       [](P& p) { p.params.out.data = p.q.data<char>() + p.q.bytes() / 2; }},
      {"out row stride 0", "out.stride[1]", [](P& p) { p.params.out.stride[1] = 0; }},
      {"out head stride 0", "out.stride[2]", [](P& p) { p.params.out.stride[2] = 0; }},
      {"out batch stride 0", "out.stride[0]", [](P& p) { p.params.out.stride[0] = 0; }},
      {"out heads overlap", "out.stride[2]", [](P& p) { p.params.out.stride[2] = 8; }},
      {"lse f16", "lse.dtype", [](P& p) { p.params.lse = lse_f16.view(); }},
      {"lse shape", "lse.shape", [](P& p) { p.params.lse = lse_short.view(); }},
      {"lse null", "lse.data", [](P& p) { p.params.lse.data = nullptr; }},
      {"lse aliases out", "lse", [](P& p) { p.params.lse.data = p.params.out.data; }},
      {"lse aliases q", "lse", [](P& p) { p.params.lse.data = p.params.q.data; }},
      {"lse stride 0", "lse.stride", [](P& p) { p.params.lse.stride[2] = 0; }},
      {"lse stride 2^62", "lse.stride", [](P& p) { p.params.lse.stride[0] = 2 * kHuge; }},
      {"weights shape", "weights", [](P& p) { p.params.weights = weights_short.view(); }},
      {"weights f16", "weights", [](P& p) { p.params.weights = weights_f16.view(); }},
      {"weights aliases out", "weights",
       [](P& p) {
         p.params.weights = weights.view();
         p.params.weights.data = p.params.out.data;
       }},
      {"weights stride 0", "weights",
       [](P& p) {
         p.params.weights = weights.view();
         p.params.weights.stride[2] = 0;
       }},
      {"scale NaN", "scale", [](P& p) { p.params.scale = kNaN; }},
      {"scale inf", "scale", [](P& p) { p.params.scale = kInf; }},
      {"softcap -1", "softcap", [](P& p) { p.params.softcap = -1.0f; }},
      {"softcap NaN", "softcap", [](P& p) { p.params.softcap = kNaN; }},
      {"softcap inf", "softcap", [](P& p) { p.params.softcap = kInf; }},
      {"mask 9", "mask", [](P& p) { p.params.mask = static_cast<MaskKind>(9); }},
      {"mask 255", "mask", [](P& p) { p.params.mask = static_cast<MaskKind>(255); }},
      {"window left -2", "window",
       [](P& p) {
         p.params.mask = MaskKind::kSlidingWindow;
         p.params.window_left = -2;
         p.params.window_right = 0;
       }},
      {"window right -7", "window",
       [](P& p) {
         p.params.mask = MaskKind::kSlidingWindow;
         p.params.window_left = 3;
         p.params.window_right = -7;
       }},
      {"window INT64_MIN", "window",
       [](P& p) {
         p.params.mask = MaskKind::kSlidingWindow;
         p.params.window_left = INT64_MIN;
         p.params.window_right = INT64_MIN;
       }},
      {"cu_seqlens_q alone", "cu_seqlens_k",  // the one missing
       [](P& p) { p.params.cu_seqlens_q = i32_three.view(); }},
      {"cu_seqlens_k alone", "cu_seqlens_q",
       [](P& p) { p.params.cu_seqlens_k = i32_three.view(); }},
      {"additive mask rank 1", "additive_mask",
       [](P& p) {
         p.params.additive_mask = mask4.view();
         p.params.additive_mask.rank = 1;
       }},
      {"additive mask shape", "additive_mask",
       [](P& p) { p.params.additive_mask = mask_bad.view(); }},
      {"additive mask i32", "additive_mask",
       [](P& p) { p.params.additive_mask = mask_i32.view(); }},
      {"additive mask null", "additive_mask",
       [](P& p) {
         p.params.additive_mask = mask4.view();
         p.params.additive_mask.data = nullptr;
       }},
      {"additive mask stride 2^61", "additive_mask",
       [](P& p) {
         p.params.additive_mask = mask4.view();
         p.params.additive_mask.stride[0] = kHuge;
       }},
      {"key_lengths f32", "key_lengths", [](P& p) { p.params.key_lengths = f32_lengths.view(); }},
      {"key_lengths 33", "key_lengths", key_lengths(33, 4)},
      {"key_lengths -1", "key_lengths", key_lengths(4, -1)},
      {"key_lengths INT32_MAX", "key_lengths", key_lengths(INT32_MAX, 4)},
      {"key_lengths shape", "key_lengths", [](P& p) { p.params.key_lengths = i32_three.view(); }},
      {"key_lengths null", "key_lengths",
       [](P& p) {
         p.params.key_lengths = i32_lengths.view();
         p.params.key_lengths.data = nullptr;
       }},
      {"key_lengths stride 2^62", "key_lengths",
       [key_lengths](P& p) {
         key_lengths(3, 3)(p);
         p.params.key_lengths.stride[0] = 2 * kHuge;
       }},
      {"q_positions f32", "q_positions", [](P& p) { p.params.q_positions = f32_positions.view(); }},
      {"q_positions decreasing", "q_positions", q_positions(5, 1)},
      {"q_positions negative", "q_positions", q_positions(0, -1)},
      {"q_positions shape", "q_positions",
       [q_positions](P& p) {
         q_positions(0, 0)(p);
         p.params.q_positions.shape[1] = 31;
       }},
      {"q_positions null", "q_positions",
       [q_positions](P& p) {
         q_positions(0, 0)(p);
         p.params.q_positions.data = nullptr;
       }},
      {"q_positions stride 2^61", "q_positions",
       [q_positions](P& p) {
         q_positions(0, 0)(p);
         p.params.q_positions.stride[0] = kHuge;
       }},
  };
}

std::vector<AttnCase> varlen_cases() {
  using P = testing::Problem;
  static Tensor f32_cu(DType::kF32, {3}), short_cu(DType::kI32, {1}), long_cu(DType::kI32, {4}),
      mask4(DType::kF32, {2, 1, 32, 32}), weights(DType::kF32, {2, 4, 32, 32});
  const auto cu_value = [](bool q, int64_t i, int32_t v) {
    return [q, i, v](P& p) { (q ? p.cu_q : p.cu_k).data<int32_t>()[i] = v; };
  };
  return {
      {"cu_seqlens_q[0] = 1", "cu_seqlens_q[0]", cu_value(true, 0, 1)},
      {"cu_seqlens_q decreasing", "cu_seqlens_q", cu_value(true, 1, 40)},
      {"cu_seqlens_k past tokens", "cu_seqlens_k", cu_value(false, 2, 49)},
      {"cu_seqlens_k negative", "cu_seqlens_k", cu_value(false, 1, -3)},
      {"cu_seqlens_q f32", "cu_seqlens_q", [](P& p) { p.params.cu_seqlens_q = f32_cu.view(); }},
      {"cu_seqlens_q [1]", "cu_seqlens_q", [](P& p) { p.params.cu_seqlens_q = short_cu.view(); }},
      {"cu_seqlens batch mismatch", "cu_seqlens_k",
       [](P& p) {
         for (int i = 0; i < 4; ++i) long_cu.data<int32_t>()[i] = 0;
         p.params.cu_seqlens_k = long_cu.view();
       }},
      {"cu_seqlens_q null", "cu_seqlens_q", [](P& p) { p.params.cu_seqlens_q.data = nullptr; }},
      {"cu_seqlens_k null", "cu_seqlens_k", [](P& p) { p.params.cu_seqlens_k.data = nullptr; }},
      {"cu_seqlens_q stride 2^62", "cu_seqlens_q",
       [](P& p) { p.params.cu_seqlens_q.stride[0] = 2 * kHuge; }},
      {"cu_seqlens_q rank 2", "cu_seqlens_q", [](P& p) { p.params.cu_seqlens_q.rank = 2; }},
      {"max_seqlen_q -1", "max_seqlen_q/k", [](P& p) { p.params.max_seqlen_q = -1; }},
      {"max_seqlen_k too small", "max_seqlen_q/k", [](P& p) { p.params.max_seqlen_k = 3; }},
      {"varlen weights", "weights", [](P& p) { p.params.weights = weights.view(); }},
      {"varlen additive mask", "additive_mask",
       [](P& p) { p.params.additive_mask = mask4.view(); }},
      {"varlen q rank 4", "q.rank", [](P& p) { p.params.q.rank = 4; }},
      {"varlen v tokens", "v.shape", [](P& p) { p.params.v.shape[0] = 47; }},
      {"varlen out tokens", "out.shape", [](P& p) { p.params.out.shape[0] = 33; }},
      // q and out are wider than k under GQA, so an out placed at k also overlaps whatever the
      // allocator put after k (q, on some heaps): the message may name either input.
      {"varlen out aliases k", "out must not share memory with",
       [](P& p) { p.params.out.data = p.params.k.data; }},
      {"varlen out token stride 0", "out.stride[0]", [](P& p) { p.params.out.stride[0] = 0; }},
      {"varlen lse shape", "lse.shape", [](P& p) { p.params.lse.shape[1] = 31; }},
  };
}

// A CPU variant through the selector, with what its base problem needs (a dense block layout for
// the block-sparse variant).
struct VariantUnderTest {
  Variant variant;
  std::unique_ptr<Attention> attention;
  bool wants_layout = false;
};

std::vector<VariantUnderTest> cpu_variants() {
  std::vector<VariantUnderTest> out;
  for (const auto& [variant, device] : Selector::built()) {
    if (device != Device::kCPU) continue;
    AttentionConfig c;
    c.variant = variant;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 16;
    c.mask = MaskKind::kNone;
    c.cpu.num_threads = 2;
    c.mixture_of_heads.num_shared_heads = 2;
    c.mixture_of_heads.top_k = 1;
    c.static_sparse.block = 16;
    c.dynamic_sparse.block_q = c.dynamic_sparse.block_k = 16;
    VariantUnderTest v{variant, nullptr, variant == Variant::kBlockSparse};
    const Status s = Selector::try_create(c, 0, &v.attention);
    EXPECT_TRUE(s.ok()) << to_string(variant) << ": " << s.to_string();
    if (s.ok()) out.push_back(std::move(v));
  }
  return out;
}

int run_attention_cases(bool varlen) {
  const std::vector<AttnCase> cases = varlen ? varlen_cases() : fixed_length_cases();
  int count = 0;
  for (VariantUnderTest& v : cpu_variants()) {
    const std::string variant = to_string(v.variant);
    testing::HostLayout layout;
    if (v.wants_layout) layout = testing::full_layout(16, 16, 1, 32, 32);
    // A base problem this variant accepts (lse dropped where a variant has none).
    testing::ProblemSpec spec = attention_base(varlen);
    testing::Problem probe(spec);
    if (v.wants_layout) probe.params.block_layout = layout.layout;
    if (!v.attention->supports(probe.params).ok()) spec.with_lse = false;
    testing::Problem base(spec);
    if (v.wants_layout) base.params.block_layout = layout.layout;
    const Status ok = v.attention->supports(base.params);
    if (!ok.ok()) {
      // Some variants take no varlen batch: their refusal must still be typed and named.
      EXPECT_TRUE(varlen) << variant << ": the base problem is refused: " << ok.to_string();
      EXPECT_EQ(ok.code(), StatusCode::kUnsupported) << variant << ": " << ok.to_string();
      continue;
    }
    const size_t ws_bytes = v.attention->workspace_size(base.params) + (1 << 20);
    std::vector<char> ws(ws_bytes);
    for (const AttnCase& c : cases) {
      const std::string name = c.name;
      if (!spec.with_lse && (name.rfind("lse ", 0) == 0 || name.rfind("varlen lse ", 0) == 0))
        continue;  // this variant's base problem has no lse to corrupt
      testing::Problem p(spec);
      if (v.wants_layout) p.params.block_layout = layout.layout;
      sentinel(p.out);
      sentinel(p.lse);
      c.mutate(p);
      Snapshot snap;
      snap.add("q", p.q);
      snap.add("k", p.k);
      snap.add("v", p.v);
      snap.add("out", p.out);
      snap.add("lse", p.lse);
      snap.add("cu_seqlens_q", p.cu_q);
      snap.add("cu_seqlens_k", p.cu_k);
      const std::string label = variant + (varlen ? " varlen: " : ": ") + c.name;
      // A null data pointer of q, k, v, out, lse or the additive mask is a run-time fact: plans
      // are made from shapes (supports() and workspace_size() are plan()'s), run() refuses it.
      const std::string mentions = c.mentions;
      const bool data_pointer =
          std::string(c.name) == "additive mask null" ||
          (mentions.size() > 5 && mentions.compare(mentions.size() - 5, 5, ".data") == 0);
      if (!data_pointer) {
        expect_rejected(v.attention->supports(p.params), c.mentions, snap, label + " (supports)");
        EXPECT_EQ(v.attention->workspace_size(p.params), 0u) << label;
      }
      expect_rejected(v.attention->forward(p.params, Workspace{ws.data(), ws.size()}), c.mentions,
                      snap, label + " (forward)");
      ++count;
    }
  }
  return count;
}

TEST(BadInputs, AttentionParamsOnEveryCpuVariant) {
  report("attention (fixed length) x CPU variants", run_attention_cases(false));
}

TEST(BadInputs, VarlenAttentionParamsOnEveryCpuVariant) {
  report("attention (varlen) x CPU variants", run_attention_cases(true));
}

TEST(BadInputs, BlockLayouts) {
  int count = 0;
  AttentionConfig c;
  c.variant = Variant::kBlockSparse;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.cpu.num_threads = 2;
  std::unique_ptr<Attention> attention;
  ASSERT_TRUE(Selector::try_create(c, 0, &attention).ok());
  using Mutate = std::function<void(testing::HostLayout&)>;
  const std::vector<std::pair<const char*, Mutate>> cases = {
      {"block_q 17", [](testing::HostLayout& l) { l.layout.block_q = 17; }},
      {"block_k 0", [](testing::HostLayout& l) { l.layout.block_k = 0; }},
      {"block_k 256", [](testing::HostLayout& l) { l.layout.block_k = 256; }},
      {"indptr absent", [](testing::HostLayout& l) { l.layout.indptr = {}; }},
      {"indices null", [](testing::HostLayout& l) { l.layout.indices.data = nullptr; }},
      {"indptr f32", [](testing::HostLayout& l) { l.layout.indptr.dtype = DType::kF32; }},
      {"indptr rank 3", [](testing::HostLayout& l) { l.layout.indptr.rank = 3; }},
      {"indptr short", [](testing::HostLayout& l) { l.layout.indptr.shape[1] = 2; }},
      {"indptr last stride 2", [](testing::HostLayout& l) { l.layout.indptr.stride[1] = 2; }},
      {"indices stride 2^62 over two layouts",
       [](testing::HostLayout& l) {
         l.layout.indices.shape[0] = l.layout.indptr.shape[0] = 2;
         l.layout.indices.stride[0] = 2 * kHuge;
       }},
      {"indices column 99", [](testing::HostLayout& l) { l.indices.data<int32_t>()[0] = 99; }},
      {"indices column -1", [](testing::HostLayout& l) { l.indices.data<int32_t>()[1] = -1; }},
      {"indptr decreasing", [](testing::HostLayout& l) { l.indptr.data<int32_t>()[1] = 9; }},
      {"indptr start 1", [](testing::HostLayout& l) { l.indptr.data<int32_t>()[0] = 1; }},
  };
  std::vector<char> ws(1 << 22);
  for (const auto& [name, mutate] : cases) {
    testing::HostLayout layout = testing::full_layout(16, 16, 1, 32, 32);
    testing::Problem p(attention_base(false));
    sentinel(p.out);
    sentinel(p.lse);
    mutate(layout);
    p.params.block_layout = layout.layout;
    Snapshot snap;
    snap.add("out", p.out);
    snap.add("lse", p.lse);
    snap.add("indptr", layout.indptr);
    snap.add("indices", layout.indices);
    expect_rejected(attention->supports(p.params), "block_layout", snap, name);
    expect_rejected(attention->forward(p.params, Workspace{ws.data(), ws.size()}), "block_layout",
                    snap, name);
    ++count;
  }
  report("block layouts (block-sparse variant)", count);
}

// ---------------------------------------------------------------------------------------------
// The KV cache: create, append, fork, reset; every rejected call leaves it as it was.

constexpr int64_t kHkv = 2, kD = 16;

KvCacheConfig paged_config() {
  KvCacheConfig c;
  c.layout = KvLayout::kPaged;
  c.batch = 2;
  c.kv_heads = kHkv;
  c.head_dim = kD;
  c.dtype = DType::kF32;
  c.num_blocks = 6;
  c.block_size = 16;
  c.max_blocks = 3;
  return c;
}

KvCacheConfig contiguous_config() {
  KvCacheConfig c = paged_config();
  c.layout = KvLayout::kContiguous;
  c.max_len = 48;
  return c;
}

// A cache holding 20 tokens in sequence 0 and 5 in sequence 1, plus its storage.
struct FilledCache {
  Tensor k, v;
  KvCache cache;
  explicit FilledCache(const KvCacheConfig& c)
      : k(c.dtype, kv_storage_shape(c)), v(c.dtype, kv_storage_shape(c)) {
    fill_uniform(k, 11);
    fill_uniform(v, 12);
    throw_if_error(KvCache::create(c, k.view(), v.view(), &cache));
    Tensor nk(DType::kF32, {25, kHkv, kD}), nv(DType::kF32, {25, kHkv, kD});
    fill_uniform(nk, 13);
    fill_uniform(nv, 14);
    Tensor cu(DType::kI32, {3});
    cu.data<int32_t>()[0] = 0;
    cu.data<int32_t>()[1] = 20;
    cu.data<int32_t>()[2] = 25;
    throw_if_error(cache.append(nk.view(), nv.view(), cu.view()));
  }
  // Metadata and storage as they are now, for "unchanged" checks.
  struct State {
    std::vector<int32_t> lengths, table;
    int32_t free_blocks;
    std::vector<int32_t> refs;
  };
  State state() const {
    State s{cache.lengths(), cache.block_table(), cache.allocator().free_count(), {}};
    for (int32_t id = 0; id < cache.allocator().capacity(); ++id)
      s.refs.push_back(cache.allocator().ref_count(id));
    return s;
  }
};

void expect_same_state(const FilledCache::State& a, const FilledCache::State& b,
                       const std::string& label) {
  EXPECT_EQ(a.lengths, b.lengths) << label;
  EXPECT_EQ(a.table, b.table) << label;
  EXPECT_EQ(a.free_blocks, b.free_blocks) << label;
  EXPECT_EQ(a.refs, b.refs) << label;
}

struct AppendInputs {
  Tensor k, v, cu;
  TensorView kv, vv, cuv;
  AppendInputs()
      : k(DType::kF32, {2, 4, kHkv, kD}), v(DType::kF32, {2, 4, kHkv, kD}), cu(DType::kI32, {3}) {
    fill_uniform(k, 21);
    fill_uniform(v, 22);
    kv = k.view();
    vv = v.view();
  }
  void ragged(int32_t a, int32_t b) {  // k, v [8, Hkv, D] packed, cu_seqlens {0, a, a + b}
    kv = TensorView::contiguous(k.view().data, DType::kF32, {8, kHkv, kD});
    vv = TensorView::contiguous(v.view().data, DType::kF32, {8, kHkv, kD});
    cu.data<int32_t>()[0] = 0;
    cu.data<int32_t>()[1] = a;
    cu.data<int32_t>()[2] = a + b;
    cuv = cu.view();
  }
};

TEST(BadInputs, KvCacheAppendForkReset) {
  using A = AppendInputs;
  using Mutate = std::function<void(A&)>;
  const std::vector<std::tuple<const char*, const char*, Mutate>> appends = {
      {"k absent", "k", [](A& a) { a.kv = {}; }},
      {"v absent", "v", [](A& a) { a.vv = {}; }},
      {"k null", "k.data", [](A& a) { a.kv.data = nullptr; }},
      {"v null", "v.data", [](A& a) { a.vv.data = nullptr; }},
      {"k rank 3 without cu_seqlens", "k.rank", [](A& a) { a.kv.rank = 3; }},
      {"k rank 5", "k.rank", [](A& a) { a.kv.rank = 5; }},
      {"k batch 3", "k.shape", [](A& a) { a.kv.shape[0] = 3; }},
      {"k Hkv 3", "k.shape", [](A& a) { a.kv.shape[2] = 3; }},
      {"v D 8", "v.shape", [](A& a) { a.vv.shape[3] = 8; }},
      {"v tokens differ", "v.shape", [](A& a) { a.vv.shape[1] = 3; }},
      {"k i32", "k.dtype", [](A& a) { a.kv.dtype = DType::kI32; }},
      {"v on cuda", "v.device", [](A& a) { a.vv.device = Device::kCUDA; }},
      {"k last stride 2", "k.stride[3]", [](A& a) { a.kv.stride[3] = 2; }},
      {"k stride 2^61", "k.stride", [](A& a) { a.kv.stride[1] = kHuge; }},
      {"v stride -2^62", "v.stride", [](A& a) { a.vv.stride[0] = -2 * kHuge; }},
      {"k tokens negative", "k.shape", [](A& a) { a.kv.shape[1] = a.vv.shape[1] = -4; }},
      {"k shape overflow", "k.shape", [](A& a) { a.kv.shape[1] = a.vv.shape[1] = 2 * kHuge; }},
      {"past capacity", "capacity",
       [](A& a) {
         static Tensor big(DType::kF32, {2, 40, kHkv, kD});
         a.kv = a.vv = big.view();
       }},
      {"cu_seqlens f32", "cu_seqlens",
       [](A& a) {
         a.ragged(4, 4);
         a.cuv.dtype = DType::kF32;
       }},
      {"cu_seqlens[0] = 2", "cu_seqlens[0]",
       [](A& a) {
         a.ragged(4, 4);
         a.cu.data<int32_t>()[0] = 2;
       }},
      {"cu_seqlens decreasing", "cu_seqlens", [](A& a) { a.ragged(6, -3); }},
      {"cu_seqlens past tokens", "cu_seqlens", [](A& a) { a.ragged(4, 5); }},
      {"cu_seqlens batch", "cu_seqlens",
       [](A& a) {
         a.ragged(4, 4);
         a.cuv.shape[0] = 2;
       }},
      {"cu_seqlens null", "cu_seqlens",
       [](A& a) {
         a.ragged(4, 4);
         a.cuv.data = nullptr;
       }},
      {"cu_seqlens stride 2^62", "cu_seqlens",
       [](A& a) {
         a.ragged(4, 4);
         a.cuv.stride[0] = 2 * kHuge;
       }},
      {"cu_seqlens on cuda", "cu_seqlens",
       [](A& a) {
         a.ragged(4, 4);
         a.cuv.device = Device::kCUDA;
       }},
      {"ragged k rank 4", "k.rank",
       [](A& a) {
         a.ragged(4, 4);
         a.kv = a.k.view();
       }},
  };
  int count = 0;
  for (const KvCacheConfig& config : {paged_config(), contiguous_config()}) {
    const std::string layout = to_string(config.layout);
    for (const auto& [name, mentions, mutate] : appends) {
      FilledCache f(config);
      A a;
      mutate(a);
      const FilledCache::State before = f.state();
      Snapshot snap;
      snap.add("k_storage", f.k);
      snap.add("v_storage", f.v);
      snap.add("k", a.k);
      snap.add("v", a.v);
      const std::string label = layout + " append: " + name;
      expect_rejected(f.cache.append(a.kv, a.vv, a.cuv), mentions, snap, label);
      expect_same_state(before, f.state(), label);
      ++count;
    }
    using C = std::function<Status(KvCache&)>;
    const std::vector<std::tuple<const char*, const char*, C>> ops = {
        {"fork src -1", "fork src", [](KvCache& c) { return c.fork(-1, 1); }},
        {"fork src 2", "fork src", [](KvCache& c) { return c.fork(2, 1); }},
        {"fork dst INT64_MAX", "fork dst", [](KvCache& c) { return c.fork(0, INT64_MAX); }},
        {"fork dst = src", "fork dst", [](KvCache& c) { return c.fork(0, 0); }},
        {"fork into non-empty", "fork dst", [](KvCache& c) { return c.fork(0, 1); }},
        {"reset -1", "reset seq", [](KvCache& c) { return c.reset(-1); }},
        {"reset 2", "reset seq", [](KvCache& c) { return c.reset(2); }},
        {"reset INT64_MIN", "reset seq", [](KvCache& c) { return c.reset(INT64_MIN); }},
    };
    for (const auto& [name, mentions, op] : ops) {
      FilledCache f(config);
      const FilledCache::State before = f.state();
      Snapshot snap;
      snap.add("k_storage", f.k);
      snap.add("v_storage", f.v);
      const std::string label = layout + ": " + name;
      expect_rejected(op(f.cache), mentions, snap, label);
      expect_same_state(before, f.state(), label);
      ++count;
    }
  }
  // An empty (not created) cache refuses everything.
  KvCache empty;
  AppendInputs a;
  Snapshot none;
  expect_rejected(empty.append(a.kv, a.vv), "cache", none, "append to a cache never created");
  expect_rejected(empty.fork(0, 1), "cache", none, "fork of a cache never created");
  expect_rejected(empty.reset(0), "cache", none, "reset of a cache never created");
  count += 3;
  report("KV cache append / fork / reset", count);
}

TEST(BadInputs, KvCacheCreate) {
  using Mutate = std::function<void(KvCacheConfig&, TensorView&, TensorView&)>;
  const std::vector<std::tuple<const char*, const char*, Mutate>> cases = {
      {"batch 0", "config.batch", [](KvCacheConfig& c, TensorView&, TensorView&) { c.batch = 0; }},
      {"batch 2^40", "config.batch",
       [](KvCacheConfig& c, TensorView&, TensorView&) { c.batch = int64_t{1} << 40; }},
      {"kv_heads 0", "config.kv_heads",
       [](KvCacheConfig& c, TensorView&, TensorView&) { c.kv_heads = 0; }},
      {"head_dim 257", "config.head_dim",
       [](KvCacheConfig& c, TensorView&, TensorView&) { c.head_dim = 257; }},
      {"dtype i32", "config.dtype",
       [](KvCacheConfig& c, TensorView&, TensorView&) { c.dtype = DType::kI32; }},
      {"block_size 24", "config.block_size",
       [](KvCacheConfig& c, TensorView&, TensorView&) { c.block_size = 24; }},
      {"num_blocks 0", "config.num_blocks",
       [](KvCacheConfig& c, TensorView&, TensorView&) { c.num_blocks = 0; }},
      {"max_blocks huge", "config.max_blocks",
       [](KvCacheConfig& c, TensorView&, TensorView&) { c.max_blocks = int64_t{1} << 40; }},
      {"max_blocks * block_size overflow", "config.max_blocks",
       [](KvCacheConfig& c, TensorView&, TensorView&) {
         c.max_blocks = int64_t{1} << 60;
         c.block_size = 1024;
       }},
      {"k_storage absent", "k_storage", [](KvCacheConfig&, TensorView& k, TensorView&) { k = {}; }},
      {"v_storage null", "v_storage.data",
       [](KvCacheConfig&, TensorView&, TensorView& v) { v.data = nullptr; }},
      {"k_storage shape", "k_storage.shape",
       [](KvCacheConfig&, TensorView& k, TensorView&) { k.shape[0] = 5; }},
      {"v_storage f16", "v_storage.dtype",
       [](KvCacheConfig&, TensorView&, TensorView& v) { v.dtype = DType::kF16; }},
      {"k_storage last stride 0", "k_storage.stride[3]",
       [](KvCacheConfig&, TensorView& k, TensorView&) { k.stride[3] = 0; }},
      {"k_storage stride 2^61", "k_storage.stride",
       [](KvCacheConfig&, TensorView& k, TensorView&) { k.stride[0] = kHuge; }},
      {"k_storage rows overlap", "k_storage.stride[1]",
       [](KvCacheConfig&, TensorView& k, TensorView&) { k.stride[1] = 0; }},
      {"v_storage aliases k_storage", "share memory with k_storage",
       [](KvCacheConfig&, TensorView& k, TensorView& v) { v.data = k.data; }},
      {"v_storage on cuda", "v_storage.device",
       [](KvCacheConfig&, TensorView&, TensorView& v) { v.device = Device::kCUDA; }},
  };
  int count = 0;
  for (const auto& [name, mentions, mutate] : cases) {
    KvCacheConfig c = paged_config();
    Tensor k(DType::kF32, kv_storage_shape(c)), v(DType::kF32, kv_storage_shape(c));
    TensorView kv = k.view(), vv = v.view();
    mutate(c, kv, vv);
    KvCache cache;
    Snapshot snap;
    snap.add("k_storage", k);
    snap.add("v_storage", v);
    expect_rejected(KvCache::create(c, kv, vv, &cache), mentions, snap, name);
    EXPECT_EQ(cache.lengths().size(), 0u) << name << ": the output cache was filled in";
    ++count;
  }
  report("KV cache create", count);
}

// ---------------------------------------------------------------------------------------------
// Decode against a filled cache.

TEST(BadInputs, Decode) {
  std::unique_ptr<DecodeAttention> decode;
  CpuOptions o;
  o.num_threads = 2;
  ASSERT_TRUE(create_decode_cpu(o, &decode).ok());
  struct D {
    Tensor q, out, lse;
    DecodeParams p;
    std::vector<int32_t> lens, table;
  };
  using Mutate = std::function<void(D&)>;
  static Tensor lse_f16(DType::kF16, {2, 4, 1}), lens3(DType::kI32, {3});
  const std::vector<std::tuple<const char*, const char*, Mutate>> cases = {
      {"q absent", "q", [](D& d) { d.p.q = {}; }},
      {"out null", "out.data", [](D& d) { d.p.out.data = nullptr; }},
      {"q rank 3", "q.", [](D& d) { d.p.q.rank = 3; }},
      {"rows 0", "rows", [](D& d) { d.p.q.shape[1] = d.p.out.shape[1] = 0; }},
      {"rows 9", "rows", [](D& d) { d.p.q.shape[1] = d.p.out.shape[1] = 9; }},
      {"Hq 3", "Hq", [](D& d) { d.p.q.shape[2] = 3; }},
      {"q batch", "q.shape", [](D& d) { d.p.q.shape[0] = 3; }},
      {"out heads", "out.shape", [](D& d) { d.p.out.shape[2] = 2; }},
      {"q i32", "q.dtype", [](D& d) { d.p.q.dtype = DType::kI32; }},
      {"out f16", "out.dtype", [](D& d) { d.p.out.dtype = DType::kF16; }},
      {"q on cuda", "q.device", [](D& d) { d.p.q.device = Device::kCUDA; }},
      {"out last stride 3", "out.stride[3]", [](D& d) { d.p.out.stride[3] = 3; }},
      {"q stride 2^61", "q.stride", [](D& d) { d.p.q.stride[0] = kHuge; }},
      {"out stride -2^62", "out.stride", [](D& d) { d.p.out.stride[2] = -2 * kHuge; }},
      {"out head stride 0", "out.stride[2]", [](D& d) { d.p.out.stride[2] = 0; }},
      {"out aliases q", "share memory with q", [](D& d) { d.p.out.data = d.p.q.data; }},
      {"out aliases the cache", "share memory with kv.k",
       [](D& d) { d.p.out.data = d.p.kv.k.data; }},
      {"lse f16", "lse.dtype", [](D& d) { d.p.lse = lse_f16.view(); }},
      {"lse shape", "lse.shape", [](D& d) { d.p.lse.shape[1] = 3; }},
      {"lse aliases out", "lse", [](D& d) { d.p.lse.data = d.p.out.data; }},
      {"scale NaN", "scale", [](D& d) { d.p.scale = kNaN; }},
      {"num_splits -1", "num_splits", [](D& d) { d.p.num_splits = -1; }},
      {"num_splits 2000", "num_splits", [](D& d) { d.p.num_splits = 2000; }},
      {"seq_lens value past capacity", "kv.seq_lens", [](D& d) { d.lens[0] = 49; }},
      {"seq_lens negative", "kv.seq_lens", [](D& d) { d.lens[1] = -1; }},
      {"seq_lens beyond max_seq_len", "kv.seq_lens", [](D& d) { d.p.kv.max_seq_len = 10; }},
      {"max_seq_len past capacity", "kv.max_seq_len", [](D& d) { d.p.kv.max_seq_len = 49; }},
      {"block id 6", "kv.block_table", [](D& d) { d.table[0] = 6; }},
      {"block id -1", "kv.block_table", [](D& d) { d.table[1] = -1; }},
      {"block_table absent", "kv.block_table", [](D& d) { d.p.kv.block_table = {}; }},
      {"block_table f32", "kv.block_table", [](D& d) { d.p.kv.block_table.dtype = DType::kF32; }},
      {"block_table stride 2^61", "kv.block_table",
       [](D& d) { d.p.kv.block_table.stride[0] = kHuge; }},
      {"seq_lens null", "kv.seq_lens", [](D& d) { d.p.kv.seq_lens.data = nullptr; }},
      {"seq_lens batch 3", "seq_lens", [](D& d) { d.p.kv.seq_lens = lens3.view(); }},
      {"seq_lens stride 2^62", "kv.seq_lens", [](D& d) { d.p.kv.seq_lens.stride[0] = 2 * kHuge; }},
      {"kv.k rank 3", "kv.k.rank", [](D& d) { d.p.kv.k.rank = 3; }},
      {"kv.v dtype", "kv.v", [](D& d) { d.p.kv.v.dtype = DType::kF16; }},
      {"kv.k stride 2^61", "kv.k.stride", [](D& d) { d.p.kv.k.stride[0] = kHuge; }},
      {"kv.v null", "kv.v.data", [](D& d) { d.p.kv.v.data = nullptr; }},
      {"block_size 8", "block_size", [](D& d) { d.p.kv.k.shape[1] = d.p.kv.v.shape[1] = 8; }},
  };
  int count = 0;
  for (const auto& [name, mentions, mutate] : cases) {
    FilledCache f(paged_config());
    D d{Tensor(DType::kF32, {2, 1, 4, kD}),
        Tensor(DType::kF32, {2, 1, 4, kD}),
        Tensor(DType::kF32, {2, 4, 1}),
        {},
        f.cache.lengths(),
        f.cache.block_table()};
    fill_uniform(d.q, 31);
    sentinel(d.out);
    sentinel(d.lse);
    d.p.q = d.q.view();
    d.p.out = d.out.view();
    d.p.lse = d.lse.view();
    d.p.kv = f.cache.view();
    d.p.kv.seq_lens.data = d.lens.data();  // a copy the case may corrupt
    d.p.kv.block_table.data = d.table.data();
    ASSERT_TRUE(decode->supports(d.p).ok()) << decode->supports(d.p).to_string();
    std::vector<char> ws(decode->workspace_size(d.p) + (1 << 20));
    mutate(d);
    const FilledCache::State before = f.state();
    Snapshot snap;
    snap.add("q", d.q);
    snap.add("out", d.out);
    snap.add("lse", d.lse);
    snap.add("k_storage", f.k);
    snap.add("v_storage", f.v);
    expect_rejected(decode->supports(d.p), mentions, snap, std::string("decode: ") + name);
    expect_rejected(decode->forward(d.p, Workspace{ws.data(), ws.size()}), mentions, snap,
                    std::string("decode forward: ") + name);
    expect_same_state(before, f.state(), name);
    ++count;
  }
  report("decode", count);
}

// ---------------------------------------------------------------------------------------------
// RoPE apply and position ids.

TEST(BadInputs, RopeApply) {
  std::unique_ptr<rope::RopeApplier> applier;
  CpuOptions o;
  o.num_threads = 2;
  ASSERT_TRUE(rope::create_rope_cpu(o, &applier).ok());
  rope::RopeTableSpec spec;
  spec.inv_freq = {1.0f, 0.5f, 0.25f, 0.125f};
  spec.max_position = 32;
  rope::RopeTable table;
  ASSERT_TRUE(rope::RopeTable::create(spec, &table).ok());
  struct R {
    Tensor q, k, pos;
    rope::RopeApplyParams p;
  };
  using Mutate = std::function<void(R&)>;
  static Tensor pos_f32(DType::kF32, {2, 5}), pos_axes(DType::kI32, {3, 2, 5});
  const std::vector<std::tuple<const char*, const char*, Mutate>> cases = {
      {"q rank 2", "q.rank", [](R& r) { r.p.q.rank = 2; }},
      {"q rank 5", "q.rank", [](R& r) { r.p.q.rank = 5; }},
      {"q null", "q.data", [](R& r) { r.p.q.data = nullptr; }},
      {"q i32", "q.dtype", [](R& r) { r.p.q.dtype = DType::kI32; }},
      {"q last stride 2", "q.stride[3]", [](R& r) { r.p.q.stride[3] = 2; }},
      {"q stride 2^61", "q.stride", [](R& r) { r.p.q.stride[1] = kHuge; }},
      {"q negative shape", "q.shape", [](R& r) { r.p.q.shape[1] = r.p.k.shape[1] = -2; }},
      {"q tokens overlap", "q.stride[1]", [](R& r) { r.p.q.stride[1] = 0; }},
      {"k tokens overlap", "k.stride[1]", [](R& r) { r.p.k.stride[1] = 4; }},
      {"k rank 3", "k.rank", [](R& r) { r.p.k.rank = 3; }},
      {"k f16", "k.dtype", [](R& r) { r.p.k.dtype = DType::kF16; }},
      {"k batch", "k.shape[0]", [](R& r) { r.p.k.shape[0] = 1; }},
      {"k head_dim", "k.shape[3]", [](R& r) { r.p.k.shape[3] = 6; }},
      {"k stride -2^62", "k.stride", [](R& r) { r.p.k.stride[0] = -2 * kHuge; }},
      {"table empty", "table", [](R& r) { r.p.table = rope::RopeTableView{}; }},
      {"table on cuda", "table.device", [](R& r) { r.p.table.device = Device::kCUDA; }},
      {"rotary_dim > head_dim", "rotary_dim", [](R& r) { r.p.q.shape[3] = r.p.k.shape[3] = 6; }},
      {"positions f32", "positions.dtype", [](R& r) { r.p.positions = pos_f32.view(); }},
      {"positions rank 1", "positions.rank", [](R& r) { r.p.positions.rank = 1; }},
      {"positions axes 3", "positions.shape[0]", [](R& r) { r.p.positions = pos_axes.view(); }},
      {"positions shape", "positions.shape", [](R& r) { r.p.positions.shape[1] = 4; }},
      {"positions null", "positions.data", [](R& r) { r.p.positions.data = nullptr; }},
      {"positions stride 2^62", "positions", [](R& r) { r.p.positions.stride[0] = 2 * kHuge; }},
      {"position -1", "positions[", [](R& r) { r.pos.data<int32_t>()[3] = -1; }},
      {"position 32", "positions[", [](R& r) { r.pos.data<int32_t>()[9] = 32; }},
      {"position INT32_MAX", "positions[", [](R& r) { r.pos.data<int32_t>()[0] = INT32_MAX; }},
      {"style 2", "style", [](R& r) { r.p.style = static_cast<rope::RopeStyle>(2); }},
      {"style 255", "style", [](R& r) { r.p.style = static_cast<rope::RopeStyle>(255); }},
      {"arithmetic 3", "arithmetic",
       [](R& r) { r.p.arithmetic = static_cast<rope::RopeArithmetic>(3); }},
      {"arithmetic 200", "arithmetic",
       [](R& r) { r.p.arithmetic = static_cast<rope::RopeArithmetic>(200); }},
  };
  int count = 0;
  for (const auto& [name, mentions, mutate] : cases) {
    R r{Tensor(DType::kF32, {2, 5, 3, 8}),
        Tensor(DType::kF32, {2, 5, 1, 8}),
        Tensor(DType::kI32, {2, 5}),
        {}};
    fill_uniform(r.q, 41);
    fill_uniform(r.k, 42);
    for (int i = 0; i < 10; ++i) r.pos.data<int32_t>()[i] = i;
    r.p.q = r.q.view();
    r.p.k = r.k.view();
    r.p.positions = r.pos.view();
    r.p.table = table.view();
    ASSERT_TRUE(applier->apply(r.p).ok());
    fill_uniform(r.q, 41);
    fill_uniform(r.k, 42);
    mutate(r);
    Snapshot snap;
    snap.add("q", r.q);
    snap.add("k", r.k);
    snap.add("positions", r.pos);
    expect_rejected(applier->apply(r.p), mentions, snap, std::string("rope: ") + name);
    ++count;
  }
  report("rope apply", count);
}

TEST(BadInputs, PositionIds) {
  using In = rope::RopeIndexInput;
  using Mutate = std::function<void(In&, std::vector<int32_t>&, std::vector<int32_t>&)>;
  // Base: [x x <image 2x2 merged = 4 tokens> x] for Qwen3-VL, grid (1, 4, 4) with merge 2.
  const std::vector<std::tuple<const char*, const char*, Mutate>> cases = {
      {"batch -1", "batch", [](In& in, auto&, auto&) { in.batch = -1; }},
      {"seq_len -1", "seq_len", [](In& in, auto&, auto&) { in.seq_len = -1; }},
      {"batch x seq_len overflow", "seq_len",
       [](In& in, auto&, auto&) {
         in.batch = int64_t{1} << 33;
         in.seq_len = int64_t{1} << 33;
       }},
      {"batch x seq_len past 2^31", "seq_len",
       [](In& in, auto&, auto&) {
         in.batch = 3;
         in.seq_len = int64_t{1} << 30;
       }},
      {"token_types null", "token_types", [](In& in, auto&, auto&) { in.token_types = nullptr; }},
      {"token type 3", "token_types", [](In&, auto& types, auto&) { types[1] = 3; }},
      {"token type -1", "token_types", [](In&, auto& types, auto&) { types[0] = -1; }},
      {"mask value 2", "attention_mask",
       [](In& in, auto&, auto& mask) {
         mask[2] = 2;
         in.attention_mask = mask.data();
       }},
      {"mask value -1", "attention_mask",
       [](In& in, auto&, auto& mask) {
         mask[6] = -1;
         in.attention_mask = mask.data();
       }},
      {"spatial_merge_size 0", "spatial_merge_size",
       [](In& in, auto&, auto&) { in.spatial_merge_size = 0; }},
      {"spatial_merge_size 65", "spatial_merge_size",
       [](In& in, auto&, auto&) { in.spatial_merge_size = 65; }},
      {"tokens_per_second -1", "tokens_per_second",
       [](In& in, auto&, auto&) { in.tokens_per_second = -1; }},
      {"grid h not a multiple", "image_grid_thw",
       [](In& in, auto&, auto&) { in.image_grid_thw[0].h = 3; }},
      {"grid t 0", "image_grid_thw", [](In& in, auto&, auto&) { in.image_grid_thw[0].t = 0; }},
      {"grid product overflow", "image_grid_thw",
       [](In& in, auto&, auto&) {
         in.image_grid_thw[0] = {int64_t{1} << 40, int64_t{1} << 40, int64_t{1} << 40};
       }},
      {"grid tokens mismatch", "image_grid_thw",
       [](In& in, auto&, auto&) { in.image_grid_thw[0].w = 6; }},
      {"missing grid", "image_grid_thw", [](In& in, auto&, auto&) { in.image_grid_thw.clear(); }},
      {"video without grid", "video_grid_thw",
       [](In&, auto& types, auto&) { types[2] = types[3] = types[4] = types[5] = 2; }},
      {"second_per_grid_ts NaN", "second_per_grid_ts",
       [](In& in, auto& types, auto&) {
         in.model = rope::RopeIndexModel::kQwen25VL;
         types[2] = types[3] = types[4] = types[5] = 2;
         in.video_grid_thw = in.image_grid_thw;
         in.second_per_grid_ts = {static_cast<double>(kNaN)};
       }},
      {"second_per_grid_ts count", "second_per_grid_ts",
       [](In& in, auto& types, auto&) {
         in.model = rope::RopeIndexModel::kQwen25VL;
         types[2] = types[3] = types[4] = types[5] = 2;
         in.video_grid_thw = in.image_grid_thw;
         in.second_per_grid_ts = {1.0, 2.0};
       }},
      {"frame interval overflow", "video_grid_thw",
       [](In& in, auto& types, auto&) {
         in.model = rope::RopeIndexModel::kQwen25VL;
         types[2] = types[3] = types[4] = types[5] = 2;
         in.video_grid_thw = {{4, 2, 2}};
         in.tokens_per_second = 1000000;
         in.second_per_grid_ts = {1e6};
       }},
      {"model 3", "model",
       [](In& in, auto&, auto&) { in.model = static_cast<rope::RopeIndexModel>(3); }},
  };
  int count = 0;
  for (const auto& [name, mentions, mutate] : cases) {
    std::vector<int32_t> types = {0, 0, 1, 1, 1, 1, 0}, mask(7, 1);
    In in;
    in.batch = 1;
    in.seq_len = 7;
    in.token_types = types.data();
    in.image_grid_thw = {{1, 4, 4}};
    rope::RopeIndexOutput out;
    ASSERT_TRUE(rope::get_rope_index(in, &out).ok()) << name;
    out.positions.assign(21, -77);  // sentinels
    out.delta.assign(1, -77);
    mutate(in, types, mask);
    const rope::RopeIndexOutput before = out;
    Snapshot none;
    expect_rejected(rope::get_rope_index(in, &out), mentions, none,
                    std::string("rope index: ") + name);
    EXPECT_EQ(out.positions, before.positions) << name;
    EXPECT_EQ(out.delta, before.delta) << name;
    ++count;
  }
  report("position ids (get_rope_index)", count);
}

// ---------------------------------------------------------------------------------------------
// The two layers and options.

constexpr int64_t kHidden = 32, kHeads = 2, kLayerKv = 1, kLayerDim = 16;

// Position values are checked where RoPE reads them (forward), not by supports(): the layers'
// documented contract, since on CUDA they live in device memory.
bool runtime_value_case(const std::string& name) {
  return name.rfind("position_id ", 0) == 0 || name.rfind("position ", 0) == 0;
}

layers::TextAttentionConfig text_config() {
  layers::TextAttentionConfig c;
  c.hidden_size = kHidden;
  c.num_heads = kHeads;
  c.num_kv_heads = kLayerKv;
  c.head_dim = kLayerDim;
  c.mrope_section = {4, 2, 2};
  c.max_position = 64;
  c.options.cpu.num_threads = 2;
  return c;
}

TEST(BadInputs, TextLayerForward) {
  const testing::TextWeights w(kHidden, kHeads, kLayerKv, kLayerDim, 51);
  const auto layer = layers::Qwen3VLTextAttention::create(text_config(), w.views());
  struct T {
    Tensor x, out, pos, mask, weights;
    layers::TextAttentionInputs in;
    layers::TextAttentionOutputs outs;
    bool use_cache = true;
  };
  using Mutate = std::function<void(T&, KvCache&)>;
  static Tensor pos_f32(DType::kF32, {2, 3}), pos_short(DType::kI32, {2, 2}),
      mask_f32(DType::kF32, {2, 3}), x_f16(DType::kF16, {2, 3, kHidden}),
      big_cache_input(DType::kF32, {2, 60, kHidden}), big_output(DType::kF32, {2, 60, kHidden});
  const std::vector<std::tuple<const char*, const char*, Mutate>> cases = {
      {"hidden absent", "hidden_states", [](T& t, KvCache&) { t.in.hidden_states = {}; }},
      {"hidden null", "hidden_states.data",
       [](T& t, KvCache&) { t.in.hidden_states.data = nullptr; }},
      {"hidden rank 2", "hidden_states", [](T& t, KvCache&) { t.in.hidden_states.rank = 2; }},
      {"hidden width", "hidden_states", [](T& t, KvCache&) { t.in.hidden_states.shape[2] = 31; }},
      {"hidden f16", "hidden_states.dtype",
       [](T& t, KvCache&) { t.in.hidden_states = x_f16.view(); }},
      {"hidden stride 2^61", "hidden_states.stride",
       [](T& t, KvCache&) { t.in.hidden_states.stride[0] = kHuge; }},
      {"hidden last stride 2", "hidden_states.stride[2]",
       [](T& t, KvCache&) { t.in.hidden_states.stride[2] = 2; }},
      {"output shape", "output.shape", [](T& t, KvCache&) { t.outs.output.shape[1] = 2; }},
      {"output null", "output.data", [](T& t, KvCache&) { t.outs.output.data = nullptr; }},
      {"output rows overlap", "output.stride[1]",
       [](T& t, KvCache&) { t.outs.output.stride[1] = 0; }},
      {"output stride -2^62", "output.stride",
       [](T& t, KvCache&) { t.outs.output.stride[0] = -2 * kHuge; }},
      {"output on cuda", "output.device",
       [](T& t, KvCache&) { t.outs.output.device = Device::kCUDA; }},
      {"position_ids f32", "position_ids",
       [](T& t, KvCache&) { t.in.position_ids = pos_f32.view(); }},
      {"position_ids shape", "positions",
       [](T& t, KvCache&) { t.in.position_ids = pos_short.view(); }},
      {"position_ids rank 4", "position_ids", [](T& t, KvCache&) { t.in.position_ids.rank = 4; }},
      {"position_id 64", "positions[", [](T& t, KvCache&) { t.pos.data<int32_t>()[4] = 64; }},
      {"position_id -1", "positions[", [](T& t, KvCache&) { t.pos.data<int32_t>()[0] = -1; }},
      {"position_ids stride 2^62", "positions",
       [](T& t, KvCache&) { t.in.position_ids.stride[0] = 2 * kHuge; }},
      {"attention_mask 2", "attention_mask[",
       [](T& t, KvCache&) {
         t.use_cache = false;
         t.mask.data<int32_t>()[4] = 2;
         t.in.attention_mask = t.mask.view();
       }},
      {"attention_mask -1", "attention_mask[",
       [](T& t, KvCache&) {
         t.use_cache = false;
         t.mask.data<int32_t>()[0] = -1;
         t.in.attention_mask = t.mask.view();
       }},
      {"attention_mask f32", "attention_mask",
       [](T& t, KvCache&) {
         t.use_cache = false;
         t.in.attention_mask = mask_f32.view();
       }},
      {"attention_mask shape", "attention_mask",
       [](T& t, KvCache&) {
         t.use_cache = false;
         t.in.attention_mask = t.mask.view();
         t.in.attention_mask.shape[1] = 2;
       }},
      {"attention_mask null", "attention_mask",
       [](T& t, KvCache&) {
         t.use_cache = false;
         t.in.attention_mask = t.mask.view();
         t.in.attention_mask.data = nullptr;
       }},
      {"attention_mask stride 2^61", "attention_mask",
       [](T& t, KvCache&) {
         t.use_cache = false;
         t.in.attention_mask = t.mask.view();
         t.in.attention_mask.stride[0] = kHuge;
       }},
      {"attention_mask with past tokens", "attention_mask",
       [](T& t, KvCache&) { t.in.attention_mask = t.mask.view(); }},
      {"attn_weights without need_weights", "attn_weights",
       [](T& t, KvCache&) { t.outs.attn_weights = t.weights.view(); }},
      {"past capacity", "capacity",
       [](T& t, KvCache&) {
         t.in.hidden_states = big_cache_input.view();
         t.outs.output = big_output.view();
         t.in.position_ids = {};
       }},
  };
  int count = 0;
  for (const auto& [name, mentions, mutate] : cases) {
    KvCacheConfig kc = contiguous_config();
    kc.kv_heads = kLayerKv;
    kc.max_len = 48;
    Tensor ks(DType::kF32, kv_storage_shape(kc)), vs(DType::kF32, kv_storage_shape(kc));
    KvCache cache;
    ASSERT_TRUE(KvCache::create(kc, ks.view(), vs.view(), &cache).ok());
    Tensor first(DType::kF32, {2, 4, kHidden});
    fill_uniform(first, 52);
    (*layer)(first, {}, {}, &cache);  // 4 past tokens per sequence
    T t{Tensor(DType::kF32, {2, 3, kHidden}),
        Tensor(DType::kF32, {2, 3, kHidden}),
        Tensor(DType::kI32, {2, 3}),
        Tensor(DType::kI32, {2, 3}),
        Tensor(DType::kF32, {2, kHeads, 3, 7}),
        {},
        {}};
    fill_uniform(t.x, 53);
    sentinel(t.out);
    for (int i = 0; i < 6; ++i) t.pos.data<int32_t>()[i] = 4 + i % 3;
    for (int i = 0; i < 6; ++i) t.mask.data<int32_t>()[i] = 1;
    t.in.hidden_states = t.x.view();
    t.in.position_ids = t.pos.view();
    t.outs.output = t.out.view();
    mutate(t, cache);
    KvCache fresh;
    KvCache* used = t.use_cache ? &cache : nullptr;
    const std::vector<int32_t> lengths = cache.lengths();
    Snapshot snap;
    snap.add("hidden_states", t.x);
    snap.add("output", t.out);
    snap.add("k_storage", ks);
    snap.add("v_storage", vs);
    snap.add("position_ids", t.pos);
    const std::string label = std::string("text layer: ") + name;
    if (!runtime_value_case(name))
      expect_rejected(layer->supports(t.in, used, t.outs), mentions, snap, label);
    std::vector<char> ws(1 << 22);
    expect_rejected(layer->forward(t.in, used, t.outs, Workspace{ws.data(), ws.size()}), mentions,
                    snap, label + " (forward)");
    EXPECT_EQ(cache.lengths(), lengths) << label;
    ++count;
  }
  report("text layer forward", count);
}

TEST(BadInputs, LayerCreateAndOptions) {
  const testing::TextWeights w(kHidden, kHeads, kLayerKv, kLayerDim, 61);
  using Mutate = std::function<void(layers::TextAttentionConfig&)>;
  const std::vector<std::tuple<const char*, const char*, Mutate>> text = {
      {"hidden 0", "hidden_size", [](auto& c) { c.hidden_size = 0; }},
      {"heads 0", "num_heads", [](auto& c) { c.num_heads = 0; }},
      {"kv heads 3", "num_kv_heads", [](auto& c) { c.num_kv_heads = 3; }},
      {"head_dim odd", "head_dim", [](auto& c) { c.head_dim = 15; }},
      {"head_dim 258", "head_dim", [](auto& c) { c.head_dim = 258; }},
      {"eps 0", "rms_norm_eps", [](auto& c) { c.rms_norm_eps = 0.0; }},
      {"eps NaN", "rms_norm_eps", [](auto& c) { c.rms_norm_eps = std::nan(""); }},
      {"dtype i32", "options.dtype", [](auto& c) { c.options.dtype = DType::kI32; }},
      {"threads -1", "num_threads", [](auto& c) { c.options.cpu.num_threads = -1; }},
      {"threads 100000", "num_threads", [](auto& c) { c.options.cpu.num_threads = 100000; }},
      {"threads INT_MAX", "num_threads", [](auto& c) { c.options.cpu.num_threads = INT32_MAX; }},
      {"isa 77", "isa", [](auto& c) { c.options.cpu.isa = static_cast<CpuIsa>(77); }},
      {"mrope section", "mrope_section",
       [](auto& c) {
         c.mrope_section = {4, 4, 4};
       }},
      {"max_position 0", "max_position", [](auto& c) { c.max_position = 0; }},
      {"rope_theta -1", "theta", [](auto& c) { c.rope_theta = -1.0; }},
      {"need_weights with flash2", "need_weights",
       [](auto& c) {
         c.options.need_weights = true;
         c.options.variant = Variant::kFlash2;
       }},
      {"variant 99", "variant", [](auto& c) { c.options.variant = static_cast<Variant>(99); }},
  };
  int count = 0;
  for (const auto& [name, mentions, mutate] : text) {
    layers::TextAttentionConfig c = text_config();
    mutate(c);
    std::unique_ptr<layers::Qwen3VLTextAttention> layer;
    Snapshot snap;
    snap.add("q_proj", w.q);
    expect_rejected(layers::Qwen3VLTextAttention::try_create(c, w.views(), 0, &layer), mentions,
                    snap, std::string("text create: ") + name);
    EXPECT_EQ(layer, nullptr) << name;
    ++count;
  }
  // Options of every CPU factory: the thread bound and the ISA enum.
  using Factory = std::function<Status(const CpuOptions&)>;
  const std::vector<std::pair<const char*, Factory>> factories = {
      {"standard",
       [](const CpuOptions& o) {
         std::unique_ptr<Attention> a;
         return create_standard_cpu(o, &a);
       }},
      {"flash2",
       [](const CpuOptions& o) {
         std::unique_ptr<Attention> a;
         return create_flash2_cpu(o, &a);
       }},
      {"decode",
       [](const CpuOptions& o) {
         std::unique_ptr<DecodeAttention> a;
         return create_decode_cpu(o, &a);
       }},
      {"rope",
       [](const CpuOptions& o) {
         std::unique_ptr<rope::RopeApplier> a;
         return rope::create_rope_cpu(o, &a);
       }},
  };
  for (const auto& [factory, create] : factories)
    for (int threads : {-1, -100, kMaxCpuThreads + 1, 100000, INT32_MAX}) {
      CpuOptions o;
      o.num_threads = threads;
      Snapshot none;
      expect_rejected(create(o), "num_threads = " + std::to_string(threads), none,
                      std::string(factory) + " threads " + std::to_string(threads));
      ++count;
    }
  report("layer create and CPU options", count);
}

TEST(BadInputs, VisionLayerForward) {
  constexpr int64_t kVisionHidden = 32, kVisionHeads = 2;
  layers::VisionAttentionConfig c;
  c.hidden_size = kVisionHidden;
  c.num_heads = kVisionHeads;
  c.max_grid_side = 16;
  c.options.cpu.num_threads = 2;
  Tensor qkv(DType::kF32, {3 * kVisionHidden, kVisionHidden}),
      qkv_b(DType::kF32, {3 * kVisionHidden}), proj(DType::kF32, {kVisionHidden, kVisionHidden}),
      proj_b(DType::kF32, {kVisionHidden});
  fill_uniform(qkv, 71, -0.1f, 0.1f);
  fill_uniform(qkv_b, 72, -0.1f, 0.1f);
  fill_uniform(proj, 73, -0.1f, 0.1f);
  fill_uniform(proj_b, 74, -0.1f, 0.1f);
  std::unique_ptr<layers::Qwen3VLVisionAttention> layer;
  ASSERT_TRUE(layers::Qwen3VLVisionAttention::try_create(
                  c, {qkv.view(), qkv_b.view(), proj.view(), proj_b.view()}, 0, &layer)
                  .ok());
  struct V {
    Tensor x, out, pos, cu;
    layers::VisionAttentionInputs in;
    TensorView output;
  };
  using Mutate = std::function<void(V&)>;
  static Tensor pos_f32(DType::kF32, {2, 6}), cu_f32(DType::kF32, {3});
  const std::vector<std::tuple<const char*, const char*, Mutate>> cases = {
      {"hidden absent", "hidden_states", [](V& v) { v.in.hidden_states = {}; }},
      {"hidden rank 3", "hidden_states", [](V& v) { v.in.hidden_states.rank = 3; }},
      {"hidden width", "hidden_states", [](V& v) { v.in.hidden_states.shape[1] = 30; }},
      {"hidden stride 2^61", "hidden_states", [](V& v) { v.in.hidden_states.stride[0] = kHuge; }},
      {"output rows overlap", "output.stride[0]", [](V& v) { v.output.stride[0] = 0; }},
      {"output shape", "output", [](V& v) { v.output.shape[0] = 5; }},
      {"output null", "output", [](V& v) { v.output.data = nullptr; }},
      {"positions f32", "positions", [](V& v) { v.in.positions = pos_f32.view(); }},
      {"positions shape", "positions", [](V& v) { v.in.positions.shape[1] = 5; }},
      {"position 16", "positions", [](V& v) { v.pos.data<int32_t>()[2] = 16; }},
      {"position -1", "positions", [](V& v) { v.pos.data<int32_t>()[7] = -1; }},
      {"positions null", "positions", [](V& v) { v.in.positions.data = nullptr; }},
      {"cu_seqlens f32", "cu_seqlens", [](V& v) { v.in.cu_seqlens = cu_f32.view(); }},
      {"cu_seqlens start 1", "cu_seqlens", [](V& v) { v.cu.data<int32_t>()[0] = 1; }},
      {"cu_seqlens decreasing", "cu_seqlens", [](V& v) { v.cu.data<int32_t>()[1] = 7; }},
      {"cu_seqlens end short", "cu_seqlens", [](V& v) { v.cu.data<int32_t>()[2] = 5; }},
      {"cu_seqlens null", "cu_seqlens", [](V& v) { v.in.cu_seqlens.data = nullptr; }},
      {"cu_seqlens stride 2^62", "cu_seqlens", [](V& v) { v.in.cu_seqlens.stride[0] = 2 * kHuge; }},
  };
  int count = 0;
  for (const auto& [name, mentions, mutate] : cases) {
    V v{Tensor(DType::kF32, {6, kVisionHidden}),
        Tensor(DType::kF32, {6, kVisionHidden}),
        Tensor(DType::kI32, {2, 6}),
        Tensor(DType::kI32, {3}),
        {},
        {}};
    fill_uniform(v.x, 75);
    sentinel(v.out);
    for (int i = 0; i < 6; ++i) {
      v.pos.data<int32_t>()[i] = i / 3;
      v.pos.data<int32_t>()[6 + i] = i % 3;
    }
    v.cu.data<int32_t>()[0] = 0;
    v.cu.data<int32_t>()[1] = 3;
    v.cu.data<int32_t>()[2] = 6;
    v.in.hidden_states = v.x.view();
    v.in.positions = v.pos.view();
    v.in.cu_seqlens = v.cu.view();
    v.output = v.out.view();
    ASSERT_TRUE(layer->supports(v.in, v.output).ok())
        << layer->supports(v.in, v.output).to_string();
    mutate(v);
    Snapshot snap;
    snap.add("hidden_states", v.x);
    snap.add("output", v.out);
    snap.add("positions", v.pos);
    snap.add("cu_seqlens", v.cu);
    const std::string label = std::string("vision layer: ") + name;
    if (!runtime_value_case(name))
      expect_rejected(layer->supports(v.in, v.output), mentions, snap, label);
    std::vector<char> ws(1 << 22);
    expect_rejected(layer->forward(v.in, v.output, Workspace{ws.data(), ws.size()}), mentions, snap,
                    label + " (forward)");
    ++count;
  }
  report("vision layer forward", count);
}

}  // namespace
}  // namespace qwen3vl
