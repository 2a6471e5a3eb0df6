// Differential sweep, CPU decode on every ISA against the float64 oracle (the dense causal problem
// with key_lengths = the sequence lengths): contiguous and paged caches (block sizes 16..256,
// shuffled tables, partial last blocks), f32/f16/bf16 storage, q in the storage dtype or f32,
// 1..8 new rows (also more rows than keys), GQA, odd head dims, key splits, scale, BHSD queries.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kv_cache/decode_problem.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "support/cpu_variants.hpp"
#include "sweep/random_problems.hpp"
#include "sweep/sweep_checks.hpp"

namespace qwen3vl::testing::sweep {
namespace {

DecodeSpec draw_decode(Rng& r, uint64_t seed) {
  DecodeSpec s;
  s.seed = seed;
  s.lens.clear();
  const int64_t batch = r.range(1, 3);
  for (int64_t b = 0; b < batch; ++b) {  // a few very short and a few long (several splits) ones
    const double u = r.uniform();
    s.lens.push_back(static_cast<int32_t>(
        u < 0.08 ? r.range(0, 3) : (u < 0.9 ? draw_length(r, 300) : r.range(301, 2000))));
  }
  s.rows = r.range(1, kMaxDecodeRows);
  ProblemSpec heads;
  draw_heads(r, &heads);
  s.heads = heads.heads;
  s.kv_heads = heads.kv_heads;
  s.head_dim = draw_head_dim(r);
  s.kv_dtype = r.pick(std::vector<DType>{DType::kF32, DType::kF16, DType::kF16, DType::kBF16});
  s.q_dtype = r.chance(0.3) ? DType::kF32 : s.kv_dtype;  // f32 q over a half cache
  s.layout = r.chance(0.4) ? KvLayout::kContiguous : KvLayout::kPaged;
  s.block_size = r.pick(std::vector<int64_t>{16, 16, 32, 48, 64, 128, 256});
  s.shuffle_blocks = r.chance(0.7);
  s.nan_outside = r.chance(0.5);  // never-read slots hold NaN (else 0)
  s.bhsd_q = r.chance(0.2);
  s.num_splits = r.chance(0.5) ? 0 : r.range(1, 6);
  if (r.chance(0.2)) s.scale = static_cast<float>(r.uniform(0.02, 0.6));
  return s;
}

TEST(Sweep, Decode) {
  run_family("Decode", 9000000, 700, [&](Case& c) {
    Rng r(c.seed);
    const int threads = draw_threads(r);
    const DecodeSpec spec = draw_decode(r, c.seed);
    c.describe(spec.to_string() + " threads " + std::to_string(threads));
    DecodeProblem p(spec);
    for (CpuIsa isa : runnable_isas()) {
      std::unique_ptr<DecodeAttention> dec;
      throw_if_error(create_decode_cpu(cpu_options(isa, threads), &dec));
      const Status ok = dec->supports(p.params);
      ASSERT_TRUE(ok.ok()) << to_string(isa) << ": supports() refused: " << ok.to_string();
      for (Tensor* t : {&p.out, &p.lse})
        for (int64_t i = 0; i < t->numel(); ++i) t->set(i, std::numeric_limits<float>::quiet_NaN());
      dec->run(p.params);
      ++c.runs;
      const DecodeErrors e = decode_errors(p);
      EXPECT_LE(e.out, tolerance(spec.q_dtype)) << to_string(isa) << ": output";
      EXPECT_LE(lse_max_error(p.dense, p.reference, /*relative_to_size=*/true),
                spec.q_dtype == DType::kF32 ? 2e-5 : 1e-3)
          << to_string(isa) << ": lse";
    }
  });
}

}  // namespace
}  // namespace qwen3vl::testing::sweep
