// The non-finite rule for decode with several new rows (tests/support/nonfinite.hpp), shared by the
// CPU and CUDA decode tests: new row r of R sees the keys before len - R + r + 1, so the last
// R - 1 keys are hidden from the earlier rows; Inf/NaN planted there (in the cache and in the dense
// copy the oracle reads) must reach only the rows that see it.
#pragma once

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "kv_cache/decode_problem.hpp"
#include "support/nonfinite.hpp"

namespace qwen3vl::testing {

// Storage token of (sequence, key) in the cache's own layout (contiguous or paged).
inline int64_t storage_token(const DecodeProblem& p, int64_t seq, int64_t j) {
  if (p.spec.layout == KvLayout::kContiguous) return seq * (p.spec.max_len() + 5) + j;
  const int64_t width = p.table.view().shape[1], bs = p.spec.block_size;
  return int64_t{p.table.data<int32_t>()[seq * width + j / bs]} * bs + j % bs;
}

// Writes x into the planted rows: q rows (new rows) or keys, in the cache and its dense copy.
inline void set_decode_rows(DecodeProblem& p, const Planted& at, float x) {
  const int64_t row = p.spec.kv_heads * p.spec.head_dim;
  const int64_t dense_len = std::max<int64_t>(p.spec.max_len(), 1);
  for (int64_t j : at.rows) {
    if (at.where == PlantIn::kQ) {
      set_row(p.q, p.q.view(), false, at.b, 0, j, x);
      continue;
    }
    Tensor& dense = at.where == PlantIn::kK ? p.k_dense : p.v_dense;
    Tensor& store = at.where == PlantIn::kK ? p.k_store : p.v_store;
    for (int64_t c = 0; c < row; ++c) {
      dense.set((at.b * dense_len + j) * row + c, x);
      store.set(storage_token(p, at.b, j) * row + c, x);
    }
  }
}

// One way to run decode (an ISA, a device): fills p's out and lse.
struct DecodeNonFiniteRun {
  std::string name;
  std::function<void(DecodeProblem&)> run;
};

// Contiguous and paged caches, f32 / f16 / bf16 (head_dim 64 in 2-byte types: the CUDA tensor-core
// path), split-KV, GQA; Inf, -Inf, NaN in K, V and q. Returns the runs checked: 36 per run.
inline int64_t check_decode_nonfinite(const std::vector<DecodeNonFiniteRun>& runs) {
  ScopedOutputPoison finite(kUnwritten);  // device copies of the outputs get it too
  int64_t ran = 0;
  struct Case {
    DecodeSpec spec;
    std::vector<int64_t> keys;  // of sequence 0
  };
  std::vector<Case> cases;
  DecodeSpec s;
  s.lens = {37, 20};
  s.rows = 4;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 24;
  s.layout = KvLayout::kContiguous;
  cases.push_back({s, {35}});  // rows 2 and 3 see key 35, rows 0 and 1 do not
  s.layout = KvLayout::kPaged;
  s.head_dim = 64;
  s.kv_dtype = s.q_dtype = DType::kF16;
  cases.push_back({s, {36}});  // only row 3 sees the last key
  s.kv_dtype = s.q_dtype = DType::kBF16;
  s.heads = 8;
  cases.push_back({s, {34, 35}});
  s.kv_dtype = s.q_dtype = DType::kF32;
  s.heads = 4;
  s.lens = {300, 41};
  s.rows = 3;
  s.num_splits = 3;
  cases.push_back({s, {298, 299}});
  for (const Case& c : cases)
    for (PlantIn where : {PlantIn::kK, PlantIn::kV, PlantIn::kQ})
      for (float value : nonfinite_values()) {
        DecodeProblem p(c.spec);
        const Planted planted{where, 0, where == PlantIn::kQ ? std::vector<int64_t>{1} : c.keys};
        set_decode_rows(p, planted, 0.0f);
        const reference::Result ref = reference::attention(p.dense);
        set_decode_rows(p, planted, value);
        for (const DecodeNonFiniteRun& r : runs) {
          poison(p.out);  // a run that writes nothing must not pass on the last run's outputs
          poison(p.lse);
          r.run(p);
          ++ran;
          const std::string label = "decode " + r.name + " " + c.spec.to_string() + " " +
                                    value_name(value) + " in " + to_string(where);
          EXPECT_GT(expect_nonfinite_rule(p.dense, ref, planted, reference_sees(p.dense),
                                          tolerance(c.spec.kv_dtype), label),
                    0)
              << label;
        }
      }
  return ran;
}

}  // namespace qwen3vl::testing
