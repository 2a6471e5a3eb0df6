// QuestDecode: checks, the workspace plan, then selection (host or CUDA) and one run of the dense
// decode kernel over the whole cache with the compacted tables as per-KV-head pages
// (KvCacheView's block_table [batch, Hkv, pages] and seq_lens [batch, Hkv], through strides).
#include <algorithm>

#include "quest_select.hpp"

namespace qwen3vl {
namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Byte offsets of the workspace parts; the selection first (QuestDecode::selection reads it).
struct Plan {
  size_t table = 0, lens = 0, keys = 0, order = 0, scaled_q = 0, decode = 0, total = 0;
};

Plan make_plan(const DecodeShape& s, int64_t max_blocks, int64_t max_pages, bool host,
               size_t decode_bytes) {
  Plan p;
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t here = at;
    at += align_up(bytes);
    return here;
  };
  p.table = take(sizeof(int32_t) * static_cast<size_t>(s.kv_heads * s.batch * max_pages));
  p.lens = take(sizeof(int32_t) * static_cast<size_t>(s.kv_heads * s.batch));
  p.keys = take(sizeof(uint32_t) * static_cast<size_t>(s.batch * s.kv_heads * max_blocks));
  p.order =
      take(host ? sizeof(int32_t) * static_cast<size_t>(s.batch * s.kv_heads * max_blocks) : 0);
  p.scaled_q =
      take(host ? sizeof(float) * static_cast<size_t>(s.batch * s.heads * s.rows * s.head_dim) : 0);
  p.decode = take(decode_bytes);
  p.total = at;
  return p;
}

}  // namespace

Status QuestDecode::create(const QuestConfig& config, std::unique_ptr<DecodeAttention> decode,
                           std::unique_ptr<QuestDecode>* out) {
  if (config.token_budget < 1)
    return make_error(StatusCode::kInvalidArgument, "config.token_budget = ", config.token_budget,
                      ": must be >= 1 (tokens attended per sequence and KV head)");
  if (config.aggregation != QuestAggregation::kMax && config.aggregation != QuestAggregation::kSum)
    return make_error(StatusCode::kInvalidArgument,
                      "config.aggregation = ", static_cast<int>(config.aggregation),
                      ": allowed max (0) or sum (1)");
  if (!decode)
    return make_error(StatusCode::kInvalidArgument,
                      "decode = null: Quest needs a decode kernel (create_decode_cpu / _cuda)");
#if !QWEN3VL_WITH_CUDA
  if (decode->device() == Device::kCUDA)
    return make_error(StatusCode::kUnsupported, "decode device = cuda: this build has no CUDA");
#endif
  out->reset(new QuestDecode(config, std::move(decode)));
  return Status();
}

bool QuestDecode::fits_budget(const KvCacheView& kv) const {
  const int64_t bs = kv.block_size() > 0 ? kv.block_size() : 1;
  return kv.length_bound() <= (config_.token_budget + bs - 1) / bs * bs;
}

int64_t QuestDecode::max_pages(const KvCacheView& kv) const {
  const int64_t bs = kv.block_size() > 0 ? kv.block_size() : 1;
  const int64_t budget = (config_.token_budget + bs - 1) / bs;
  return std::min(std::max<int64_t>(budget, 2), kv.block_table.shape[1]);
}

// Quest's own checks (the decode kernel's come from its supports() or its forward()).
Status QuestDecode::check(const QuestParams& p, DecodeShape* shape) const {
  const KvCacheView& kv = p.decode.kv;
  if (kv.layout != KvLayout::kPaged)
    return make_error(StatusCode::kUnsupported, "kv.layout = ", to_string(kv.layout),
                      ": Quest selects pages of a paged cache");
  if (kv.per_head())
    return make_error(StatusCode::kUnsupported, "kv.seq_lens = ", kv.seq_lens.shape_string(),
                      ": Quest selects from one block table for all KV heads ([batch] lengths)");
  DecodeShape s;
  QWEN3VL_RETURN_IF_ERROR(validate(p.decode, &s));
  if (kv.k.device != device())
    return make_error(StatusCode::kUnsupported, "kv.k.device = ", to_string(kv.k.device),
                      ": this Quest object runs on ", to_string(device()));
  if (kv.block_table.device != kv.k.device)
    return make_error(StatusCode::kInvalidArgument,
                      "kv.block_table.device = ", to_string(kv.block_table.device),
                      ": must be the cache's device (", to_string(kv.k.device), ")");
  const TensorView& b = p.key_bounds;
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(b, "key_bounds"));
  QWEN3VL_RETURN_IF_ERROR(
      detail::check_dims(b, "key_bounds", 4, {kv.k.shape[0], 2, s.kv_heads, s.head_dim}));
  const TensorView packed =
      TensorView::contiguous(b.data, DType::kF32, {b.shape[0], 2, s.kv_heads, s.head_dim});
  for (int d = 0; d < 4; ++d)
    if (b.stride[d] != packed.stride[d])
      return make_error(StatusCode::kBadStride, "key_bounds.stride[", d, "] = ", b.stride[d],
                        ": must be contiguous (", packed.stride[d], ")");
  if (b.dtype != DType::kF32 || b.device != kv.k.device || b.device_index != kv.k.device_index)
    return make_error(StatusCode::kInvalidArgument, "key_bounds = ", to_string(b.dtype), " on ",
                      to_string(b.device),
                      ": must be f32 on the cache's device (KvCache::key_bounds())");
  if (shape) *shape = s;
  return Status();
}

Status QuestDecode::supports(const QuestParams& p) const {
  DecodeShape s;
  QWEN3VL_RETURN_IF_ERROR(check(p, &s));
  return decode_->supports(p.decode);
}

// The kernel's workspace is sized for the cache's own view: its length bound is an upper bound of
// the selection's (fewer or as many splits) and its shared table asks for the larger CPU scratch
// (whole token rows a task). The selection's view cannot be sized before it is written: its
// tables live in this workspace. No pointer queries: safe while a CUDA stream is being captured.
size_t QuestDecode::workspace_bytes(const QuestParams& p, const DecodeShape& s) const {
  const size_t decode_bytes = decode_->workspace_size(p.decode);
  return make_plan(s, p.decode.kv.block_table.shape[1], max_pages(p.decode.kv),
                   device() == Device::kCPU, decode_bytes)
      .total;
}

size_t QuestDecode::workspace_size(const QuestParams& p) const {
  DecodeShape s;
  return supports(p).ok() && check(p, &s).ok() ? workspace_bytes(p, s) : 0;
}

QuestDecode::Selection QuestDecode::selection(const QuestParams& p, Workspace ws) const {
  DecodeShape s;
  if (!validate(p.decode, &s).ok() || !ws.data) return Selection{nullptr, nullptr};
  const Plan plan = make_plan(s, p.decode.kv.block_table.shape[1], max_pages(p.decode.kv),
                              device() == Device::kCPU, 0);
  const char* base = static_cast<const char*>(ws.data);
  return Selection{reinterpret_cast<const int32_t*>(base + plan.table),
                   reinterpret_cast<const int32_t*>(base + plan.lens)};
}

Status QuestDecode::forward(const QuestParams& p, Workspace ws, void* stream) const {
  DecodeShape s;
  QWEN3VL_RETURN_IF_ERROR(check(p, &s));
  const KvCacheView& kv = p.decode.kv;
  const bool host = device() == Device::kCPU;
  const int64_t pages = max_pages(kv);
  const size_t need = workspace_bytes(p, s);
  if (ws.bytes < need || !ws.data)
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ws.data ? "" : " (data = null)", ": need ", need,
                      " (workspace_size() for these params)");
  const Plan plan = make_plan(s, kv.block_table.shape[1], pages, host, 0);
  char* base = static_cast<char*>(ws.data);
  if (fits_budget(kv))  // every page of every sequence is kept: the dense decode, all heads at once
    return decode_->forward(p.decode, Workspace{base + plan.decode, ws.bytes - plan.decode},
                            stream);

  detail::quest::SelectArgs a;
  a.q = p.decode.q.data;
  a.q_dtype = p.decode.q.dtype;
  for (int i = 0; i < 3; ++i) a.q_stride[i] = p.decode.q.stride[i];
  a.bounds = p.key_bounds.ptr<const float>();
  a.seq_lens = kv.seq_lens.ptr<const int32_t>();
  a.lens_stride = kv.seq_lens.stride[0];
  a.table = kv.block_table.ptr<const int32_t>();
  a.table_stride[0] = kv.block_table.stride[0];
  a.table_stride[1] = kv.block_table.stride[1];
  a.batch = s.batch;
  a.rows = s.rows;
  a.heads = s.heads;
  a.kv_heads = s.kv_heads;
  a.head_dim = s.head_dim;
  a.block_size = kv.block_size();
  a.max_blocks = kv.block_table.shape[1];
  a.budget_pages = (config_.token_budget + a.block_size - 1) / a.block_size;
  a.max_pages = pages;
  a.scale = s.scale;
  a.sum = config_.aggregation == QuestAggregation::kSum;
  a.out_table = reinterpret_cast<int32_t*>(base + plan.table);
  a.out_lens = reinterpret_cast<int32_t*>(base + plan.lens);
  a.keys = reinterpret_cast<uint32_t*>(base + plan.keys);
  a.order = host ? reinterpret_cast<int32_t*>(base + plan.order) : nullptr;
  a.scaled_q = host ? reinterpret_cast<float*>(base + plan.scaled_q) : nullptr;
#if QWEN3VL_WITH_CUDA
  QWEN3VL_RETURN_IF_ERROR(host ? detail::quest::select_cpu(a)
                               : detail::quest::select_cuda(a, stream));
#else
  QWEN3VL_RETURN_IF_ERROR(detail::quest::select_cpu(a));
#endif

  DecodeParams selected = p.decode;  // every KV head on its own compacted pages
  selected.kv = with_head_major_pages(p.decode.kv, a.out_table, a.out_lens, pages);
  return decode_->forward(selected, Workspace{base + plan.decode, ws.bytes - plan.decode}, stream);
}

std::string QuestDecode::describe() const {
  return "quest: top ceil(" + std::to_string(config_.token_budget) +
         " / block_size) pages per (sequence, KV head) by " + to_string(config_.aggregation) +
         "-aggregated min/max key bounds; over " + decode_->describe();
}

}  // namespace qwen3vl
