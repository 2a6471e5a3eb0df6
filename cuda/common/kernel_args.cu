#include <cstdint>

#include "kernel_args.hpp"

namespace qwen3vl::detail {
namespace {

RowTensor row_tensor(const TensorView& t, bool varlen) {
  RowTensor r;
  r.data = t.data;
  if (varlen) {
    r.token = t.stride[0];
    r.head = t.stride[1];
  } else {
    r.batch = t.stride[0];
    r.token = t.stride[1];
    r.head = t.stride[2];
  }
  return r;
}

bool vector_aligned(const RowTensor& r, DType dtype) {
  const uintptr_t bytes = static_cast<uintptr_t>(4 * size_of(dtype));
  return reinterpret_cast<uintptr_t>(r.data) % bytes == 0 && r.batch % 4 == 0 && r.token % 4 == 0 &&
         r.head % 4 == 0;
}

}  // namespace

AttentionArgs make_attention_args(const AttentionParams& p, const AttentionShape& s) {
  AttentionArgs a;
  const bool varlen = p.varlen();
  a.q = row_tensor(p.q, varlen);
  a.k = row_tensor(p.k, varlen);
  a.v = row_tensor(p.v, varlen);
  a.out = row_tensor(p.out, varlen);
  a.dtype = p.q.dtype;
  a.vector_io = s.head_dim % 4 == 0 && vector_aligned(a.q, a.dtype) &&
                vector_aligned(a.k, a.dtype) && vector_aligned(a.v, a.dtype) &&
                vector_aligned(a.out, a.dtype);
  if (p.lse.present()) {
    a.lse = p.lse.ptr<float>();
    if (varlen) {
      a.lse_head = p.lse.stride[0];
      a.lse_token = p.lse.stride[1];
    } else {
      a.lse_batch = p.lse.stride[0];
      a.lse_head = p.lse.stride[1];
      a.lse_token = p.lse.stride[2];
    }
  }
  if (p.additive_mask.present()) {
    const TensorView& m = p.additive_mask;
    a.mask = m.data;
    a.mask_dtype = m.dtype;
    for (int d = 0; d < m.rank; ++d)  // trailing dims line up with (b, h, i, j)
      a.mask_stride[4 - m.rank + d] = m.shape[d] == 1 ? 0 : m.stride[d];
  }
  if (varlen) {
    a.cu_q = p.cu_seqlens_q.ptr<const int32_t>();
    a.cu_k = p.cu_seqlens_k.ptr<const int32_t>();
    a.cu_q_stride = p.cu_seqlens_q.stride[0];
    a.cu_k_stride = p.cu_seqlens_k.stride[0];
    a.total_q = p.q.shape[0];
    a.total_k = p.k.shape[0];
  } else {
    a.seq_q = p.q.shape[1];
    a.seq_k = p.k.shape[1];
  }
  if (p.key_lengths.present()) {
    a.key_lengths = p.key_lengths.ptr<const int32_t>();
    a.key_lengths_stride = p.key_lengths.stride[0];
  }
  a.batch = s.batch;
  a.heads = static_cast<int32_t>(s.heads);
  a.group = static_cast<int32_t>(s.group_size());
  a.head_dim = static_cast<int32_t>(s.head_dim);
  a.scale = s.scale;
  a.softcap = p.softcap;
  a.mask_kind = p.mask;
  a.window_left = p.mask == MaskKind::kSlidingWindow ? p.window_left : -1;
  a.window_right = p.mask == MaskKind::kSlidingWindow ? p.window_right : -1;
  if (p.q_positions.present()) {
    a.q_positions = p.q_positions.ptr<const int32_t>();
    a.q_positions_batch = varlen ? 0 : p.q_positions.stride[0];
    a.q_positions_token = p.q_positions.stride[p.q_positions.rank - 1];
  }
  const BlockLayout& bl = p.block_layout;
  if (bl.present()) {
    a.layout_indptr = bl.indptr.ptr<const int32_t>();
    a.layout_indices = bl.indices.ptr<const int32_t>();
    a.layout_indptr_stride = bl.indptr.rank == 2 ? bl.indptr.stride[0] : 0;
    a.layout_indices_stride = bl.indices.rank == 2 ? bl.indices.stride[0] : 0;
    a.layouts = bl.layouts();
    a.layout_capacity = static_cast<int32_t>(bl.indices.shape[bl.indices.rank - 1]);
    a.block_q = bl.block_q;
    a.block_k = bl.block_k;
  }
  return a;
}

AttentionArgs make_gathered_args(const AttentionParams& p, const AttentionShape& s,
                                 const GatheredQueries& g) {
  AttentionArgs a = make_attention_args(p, s);
  const auto gathered = [&](void* data) {
    RowTensor r;
    r.data = data;
    r.token = s.head_dim;
    r.head = g.rows * s.head_dim;
    return r;
  };
  a.q = gathered(g.q);
  a.out = gathered(g.out);
  a.vector_io = s.head_dim % 4 == 0 && vector_aligned(a.q, a.dtype) &&
                vector_aligned(a.k, a.dtype) && vector_aligned(a.v, a.dtype) &&
                vector_aligned(a.out, a.dtype);
  a.lse = g.lse;
  a.lse_batch = 0;
  a.lse_head = g.rows;
  a.lse_token = 1;
  a.q_positions = g.positions;
  a.q_positions_batch = 0;
  a.q_positions_head = g.rows;
  a.q_positions_token = 1;
  a.head_cu_q = g.cu_rows;
  a.head_cu_q_stride = s.batch + 1;
  a.head_rows = g.rows;
  return a;
}

}  // namespace qwen3vl::detail
