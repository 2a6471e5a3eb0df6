// Differential sweep, sparse prefill on the CPU, every ISA: block-sparse with random layouts,
// static patterns with random knobs (against the oracle given the pattern's layout), exact top-k
// routing with a full budget (must equal dense attention), and the block routers (full budget:
// dense; partial: the oracle given the layout estimate() routes).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/static_sparse.hpp"
#include "support/block_layouts.hpp"
#include "support/block_sparse_cases.hpp"
#include "support/cpu_variants.hpp"
#include "sweep/random_problems.hpp"
#include "sweep/sweep_checks.hpp"

namespace qwen3vl::testing::sweep {
namespace {

int32_t draw_block(Rng& r) { return r.pick(std::vector<int32_t>{16, 16, 32, 32, 48, 64, 80, 128}); }

// A problem's params with `layout` attached, for the oracle.
reference::Result reference_with(const AttentionParams& p, const BlockLayout& layout) {
  AttentionParams with = p;
  with.block_layout = layout;
  return reference::attention(with);
}

TEST(Sweep, BlockSparse) {
  Allowed allowed;
  allowed.q_positions = true;
  run_family("BlockSparse", 3000000, 600, [&](Case& c) {
    Rng r(c.seed);
    const int threads = draw_threads(r);
    const RandomProblem rp = random_problem(r, allowed, c.seed);
    RandomLayoutSpec ls;
    ls.block_q = draw_block(r);
    ls.block_k = draw_block(r);
    const int64_t kinds[] = {1, rp.spec.kv_heads, rp.spec.batch * rp.spec.kv_heads};
    ls.layouts = kinds[r.range(0, 2)];
    ls.density = r.uniform();
    ls.keep_diagonal = r.chance(0.5);
    ls.empty_every = r.range(0, 4);
    ls.seed = r.next();
    c.describe(rp.label() + " layout " + std::to_string(ls.block_q) + "x" +
               std::to_string(ls.block_k) + " L" + std::to_string(ls.layouts) + " density " +
               std::to_string(ls.density) + " threads " + std::to_string(threads));
    BuiltProblem bp(rp);
    AttentionShape shape;  // the grid follows max_seqlen_q/k where they are given
    throw_if_error(validate(bp.problem.params, &shape));
    const HostLayout layout(ls.block_q, ls.block_k,
                            random_layout_columns(ls, shape.max_q, shape.max_k),
                            ls.layouts == 1 && r.chance(0.5));
    bp.problem.params.block_layout = layout.layout;
    const reference::Result ref = reference::attention(bp.problem.params);
    for (CpuIsa isa : runnable_isas())
      run_and_expect(*make_cpu(create_block_sparse_cpu, isa, threads), bp, ref, to_string(isa), c);
  });
}

std::vector<int32_t> draw_blocks(Rng& r, int64_t n, int64_t lo, int64_t hi) {
  std::vector<int32_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<int32_t>(r.range(lo, hi)));
  return v;
}

GlobalBlocks draw_globals(Rng& r) {
  GlobalBlocks g;
  g.global_block_indices = draw_blocks(r, r.range(0, 3), 0, 6);
  if (r.chance(0.4))
    for (int32_t start : g.global_block_indices)
      g.global_block_end_indices.push_back(start + static_cast<int32_t>(r.range(1, 3)));
  return g;
}

// Any pattern with knobs in their allowed ranges.
StaticSparseConfig draw_pattern(Rng& r) {
  StaticSparseConfig c;
  const SparsePattern kinds[] = {SparsePattern::kDense,   SparsePattern::kSlidingWindow,
                                 SparsePattern::kDilated, SparsePattern::kLongformer,
                                 SparsePattern::kBigBird, SparsePattern::kFixed,
                                 SparsePattern::kVariable};
  c.pattern = kinds[r.range(0, 6)];
  c.block = r.pick(std::vector<int32_t>{16, 16, 32, 32, 48, 64, 128});
  c.unidirectional = r.chance(0.5);
  c.different_layout_per_head = r.chance(0.4);
  c.seed = r.next();
  c.sliding_window.num_sliding_window_blocks = static_cast<int32_t>(r.range(1, 6));
  c.dilated = {static_cast<int32_t>(r.range(0, 3)), static_cast<int32_t>(r.range(1, 5)),
               static_cast<int32_t>(r.range(0, 8))};
  c.longformer.num_sliding_window_blocks = static_cast<int32_t>(r.range(1, 5));
  c.longformer.global = draw_globals(r);
  c.bigbird = {static_cast<int32_t>(r.range(0, 3)), static_cast<int32_t>(r.range(1, 5)),
               static_cast<int32_t>(r.range(0, 2))};
  const int32_t g = static_cast<int32_t>(r.range(1, 2));
  c.fixed.num_global_blocks = g;
  c.fixed.num_local_blocks = g * static_cast<int32_t>(r.range(1, 4));
  c.fixed.horizontal_global_attention = !c.unidirectional && r.chance(0.5);
  c.fixed.num_different_global_patterns =
      c.different_layout_per_head ? static_cast<int32_t>(r.range(1, c.fixed.num_local_blocks / g))
                                  : 1;
  c.variable.num_random_blocks = static_cast<int32_t>(r.range(0, 3));
  c.variable.local_window_blocks = draw_blocks(r, r.range(1, 3), 1, 4);
  c.variable.global = draw_globals(r);
  c.variable.horizontal_global_attention = !c.unidirectional && r.chance(0.5);
  return c;
}

TEST(Sweep, StaticSparse) {
  run_family("StaticSparse", 4000000, 400, [&](Case& c) {
    Rng r(c.seed);
    const int threads = draw_threads(r);
    const StaticSparseConfig config = draw_pattern(r);
    ASSERT_TRUE(validate(config).ok()) << validate(config).to_string();
    Allowed allowed;
    allowed.k_offset_block = config.block;
    const RandomProblem rp = random_problem(r, allowed, c.seed);
    c.describe(config.to_string() + " " + rp.label() + " threads " + std::to_string(threads));
    BuiltProblem bp(rp);
    AttentionShape shape;
    throw_if_error(validate(bp.problem.params, &shape));
    BlockLayoutData layout;
    throw_if_error(
        build_static_sparse_layout(config, shape.max_q, shape.max_k, shape.kv_heads, &layout));
    const reference::Result ref = reference_with(bp.problem.params, layout.view());
    for (CpuIsa isa : runnable_isas()) {
      std::unique_ptr<Attention> attn;
      throw_if_error(create_static_sparse_cpu(cpu_options(isa, threads), config, &attn));
      run_and_expect(*attn, bp, ref, to_string(isa), c);
    }
  });
}

std::unique_ptr<DynamicSparseAttention> make_dynamic(const DynamicSparseConfig& config, CpuIsa isa,
                                                     int threads) {
  std::unique_ptr<DynamicSparseAttention> a;
  throw_if_error(create_dynamic_sparse_cpu(cpu_options(isa, threads), config, &a));
  return a;
}

// Exact top-k with a budget that keeps every visible key: a huge top_k, top_k = the longest key
// sequence, or keep_fraction 1. The result must be dense attention's.
TEST(Sweep, DynamicExactTopKFullBudget) {
  run_family("DynamicExactTopKFullBudget", 5000000, 400, [&](Case& c) {
    Rng r(c.seed);
    const int threads = draw_threads(r);
    const RandomProblem rp = random_problem(r, Allowed{}, c.seed);
    DynamicSparseConfig config;
    config.method = DynamicSparseMethod::kExactTopK;
    const int64_t budget = r.range(0, 2);
    const auto [max_q, max_k] = longest_sequences(rp.spec);
    (void)max_q;
    if (budget == 0) config.top_k = int64_t{1} << 40;
    if (budget == 1) config.top_k = std::max<int64_t>(max_k, 1);
    if (budget == 2) config.keep_fraction = 1.0;
    c.describe(rp.label() +
               (budget == 2 ? " keep_fraction 1" : " top_k " + std::to_string(config.top_k)) +
               " threads " + std::to_string(threads));
    BuiltProblem bp(rp);
    const reference::Result ref = reference::attention(bp.problem.params);
    for (CpuIsa isa : runnable_isas())
      run_and_expect(*make_dynamic(config, isa, threads), bp, ref, to_string(isa), c);
  });
}

// Block top-k or vertical-slash with random blocks and budgets.
DynamicSparseConfig draw_router(Rng& r, bool* keep_all) {
  DynamicSparseConfig c;
  c.method = r.chance(0.5) ? DynamicSparseMethod::kBlockTopK : DynamicSparseMethod::kVerticalSlash;
  c.block_q = r.pick(std::vector<int32_t>{16, 32, 48, 64, 128});
  c.block_k = r.pick(std::vector<int32_t>{16, 32, 48, 64, 128});
  *keep_all = r.chance(0.25);
  if (*keep_all) {
    if (r.chance(0.5)) {
      c.keep_fraction = 1.0;
    } else {
      c.top_k_blocks = 1 << 20;
      c.vertical = c.slash = int64_t{1} << 40;
    }
    return c;
  }
  if (r.chance(0.3)) c.keep_fraction = r.uniform(0.05, 0.9);
  c.top_k_blocks = static_cast<int32_t>(r.range(0, 4));
  c.sink_blocks = static_cast<int32_t>(r.range(0, 2));
  c.local_blocks = static_cast<int32_t>(r.range(0, 2));
  if (c.top_k_blocks + c.sink_blocks + c.local_blocks == 0) c.top_k_blocks = 1;
  c.last_queries = static_cast<int32_t>(r.range(1, 64));
  c.vertical = r.range(0, 40);
  c.slash = r.range(0, 40);
  if (c.vertical + c.slash == 0) c.slash = 1;
  c.forced_vertical = r.range(0, 8);
  c.forced_slash = r.range(0, 8);
  return c;
}

std::string router_label(const DynamicSparseConfig& c, bool keep_all) {
  return std::string(to_string(c.method)) + " blocks " + std::to_string(c.block_q) + "x" +
         std::to_string(c.block_k) + (keep_all ? " keep all" : "") + " fraction " +
         std::to_string(c.keep_fraction) + " topk/sink/local " + std::to_string(c.top_k_blocks) +
         "/" + std::to_string(c.sink_blocks) + "/" + std::to_string(c.local_blocks) + " last " +
         std::to_string(c.last_queries) + " v/s " + std::to_string(c.vertical) + "/" +
         std::to_string(c.slash) + " forced " + std::to_string(c.forced_vertical) + "/" +
         std::to_string(c.forced_slash);
}

// Whether two host layouts list the same blocks (same shape and contents).
bool same_layout(const BlockLayout& a, const BlockLayout& b) {
  if (a.block_q != b.block_q || a.block_k != b.block_k || a.layouts() != b.layouts() ||
      a.row_blocks() != b.row_blocks())
    return false;
  for (int64_t l = 0; l < a.layouts(); ++l) {
    const int32_t* pa = a.row_ptr(l);
    const int32_t* pb = b.row_ptr(l);
    if (std::memcmp(pa, pb, sizeof(int32_t) * static_cast<size_t>(a.row_blocks() + 1)) != 0)
      return false;
    if (std::memcmp(a.col_ptr(l), b.col_ptr(l),
                    sizeof(int32_t) * static_cast<size_t>(pa[a.row_blocks()])) != 0)
      return false;
  }
  return true;
}

TEST(Sweep, DynamicBlockRouters) {
  run_family("DynamicBlockRouters", 6000000, 450, [&](Case& c) {
    Rng r(c.seed);
    const int threads = draw_threads(r);
    bool keep_all = false;
    const DynamicSparseConfig config = draw_router(r, &keep_all);
    const RandomProblem rp = random_problem(r, Allowed{}, c.seed);
    c.describe(router_label(config, keep_all) + " " + rp.label() + " threads " +
               std::to_string(threads));
    BuiltProblem bp(rp);
    if (keep_all) {
      const reference::Result ref = reference::attention(bp.problem.params);
      for (CpuIsa isa : runnable_isas())
        run_and_expect(*make_dynamic(config, isa, threads), bp, ref, to_string(isa), c);
      return;
    }
    // Partial budgets: each ISA's router scores in float, so near ties may route differently; the
    // oracle takes each ISA's own layout (recomputed only when the layout differs).
    std::vector<unsigned char> previous_scratch;
    BlockLayout previous;
    reference::Result ref;
    for (CpuIsa isa : runnable_isas()) {
      const auto attn = make_dynamic(config, isa, threads);
      std::vector<unsigned char> scratch(attn->estimate_workspace_size(bp.problem.params));
      BlockLayout layout;
      const Status st =
          attn->estimate(bp.problem.params, Workspace{scratch.data(), scratch.size()}, &layout);
      ASSERT_TRUE(st.ok()) << to_string(isa) << ": estimate: " << st.to_string();
      AttentionShape shape;
      throw_if_error(validate(bp.problem.params, &shape));
      const Status valid =
          validate_block_layout(layout, shape.batch, shape.kv_heads, shape.max_q, shape.max_k);
      ASSERT_TRUE(valid.ok()) << to_string(isa) << ": routed layout: " << valid.to_string();
      if (!previous.present() || !same_layout(layout, previous))
        ref = reference_with(bp.problem.params, layout);
      run_and_expect(*attn, bp, ref, to_string(isa), c);
      previous_scratch.swap(scratch);
      previous = layout;
    }
  });
}

}  // namespace
}  // namespace qwen3vl::testing::sweep
