// Append attention (kv_cache/append.hpp) on the CPU: validation, the plan, and one oneTBB launch
// that runs three kinds of work items from one counter, heaviest first:
//   shared  (prefix group, KV head, block of the group's rows): flash tiles over the shared keys,
//           fp32 partials;
//   chunk   (sequence, KV head, block of its rows): flash tiles over the sequence's own keys,
//           straight to out / lse, or fp32 partials when a prefix is merged in;
//   decode  (sequence, key split): the decode kernel for all KV heads of a short sequence,
//           straight to out / lse, or fp32 partials when splits or a prefix are merged;
// then the merges (merge_states' weights). The item list, the partials and the per-thread slots
// are carved from the caller's workspace: nothing is allocated in run().
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "decode_kernels.hpp"
#include "qwen3vl/hardware/hardware_info.hpp"
#include "qwen3vl/kv_cache/append.hpp"
#include "src/core/host_workspace.hpp"
#include "src/core/workspace_carver.hpp"
#include "src/cpu/cpu_backend.hpp"
#include "src/cpu/kernels.hpp"

namespace qwen3vl {

namespace {

const TensorView* append_tensor(const AppendParams& p, int i) {
  const TensorView* all[detail::AppendSignature::kTensors] = {&p.q,
                                                              &p.out,
                                                              &p.lse,
                                                              &p.kv.k,
                                                              &p.kv.v,
                                                              &p.kv.seq_lens,
                                                              &p.kv.block_table,
                                                              &p.cu_seqlens,
                                                              &p.prefix_groups,
                                                              &p.tree_parents};
  return all[i];
}
const char* const kAppendTensorNames[detail::AppendSignature::kTensors] = {
    "q",          "out",           "lse",         "kv.k", "kv.v", "kv.seq_lens", "kv.block_table",
    "cu_seqlens", "prefix_groups", "tree_parents"};

Status check_append_overlaps(const AppendParams& p) {
  QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(p.out, "out"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.q, "q"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.kv.k, "kv.k"));
  QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.out, "out", p.kv.v, "kv.v"));
  if (p.lse.present()) {
    QWEN3VL_RETURN_IF_ERROR(detail::check_no_self_overlap(p.lse, "lse"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.q, "q"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.out, "out"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.kv.k, "kv.k"));
    QWEN3VL_RETURN_IF_ERROR(detail::check_disjoint(p.lse, "lse", p.kv.v, "kv.v"));
  }
  return Status();
}

// A host index tensor: i32, host memory, data set (its values are read on every run).
Status check_host_index(const TensorView& t, const char* name, bool need_data) {
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(t, name, need_data));
  if (t.dtype != DType::kI32 || t.device != Device::kCPU)
    return make_error(StatusCode::kInvalidArgument, name, " = ", to_string(t.dtype), " on ",
                      to_string(t.device), ": must be i32 in host memory");
  return Status();
}

detail::AppendSignature signature_of(const AppendParams& p) {
  detail::AppendSignature s;
  for (int i = 0; i < detail::AppendSignature::kTensors; ++i)
    s.tensors[i] = detail::view_signature(*append_tensor(p, i));
  s.layout = p.kv.layout;
  s.max_seq_len = p.kv.max_seq_len;
  s.has_scale = p.scale.has_value();
  s.scale = p.scale.value_or(0.0f);
  s.window = p.window;
  s.sinks = p.sinks;
  return s;
}

Status check_signature(const detail::AppendSignature& planned, const AppendParams& p) {
  const auto differs = [](const char* field, const std::string& got, const std::string& want) {
    return make_error(StatusCode::kInvalidArgument, "params.", field, " = ", got,
                      " differs from the plan's ", want,
                      ": run() takes params equal to the planned ones up to the data pointers "
                      "and index values (plan again for another shape)");
  };
  for (int i = 0; i < detail::AppendSignature::kTensors; ++i) {
    const TensorView& t = *append_tensor(p, i);
    if (detail::same_view(detail::view_signature(t), planned.tensors[i])) continue;
    const detail::TensorSignature& w = planned.tensors[i];
    TensorView want;
    want.rank = w.rank;
    for (int d = 0; d < w.rank && d < TensorView::kMaxRank; ++d) {
      want.shape[d] = w.shape[d];
      want.stride[d] = w.stride[d];
    }
    return differs(
        kAppendTensorNames[i],
        detail::concat(to_string(t.dtype), " ", t.shape_string(), " strides ", t.stride_string()),
        detail::concat(to_string(w.dtype), " ", want.shape_string(), " strides ",
                       want.stride_string()));
  }
  if (p.kv.layout != planned.layout)
    return differs("kv.layout", to_string(p.kv.layout), to_string(planned.layout));
  if (p.kv.max_seq_len != planned.max_seq_len)
    return differs("kv.max_seq_len", detail::concat(p.kv.max_seq_len),
                   detail::concat(planned.max_seq_len));
  if (p.scale.has_value() != planned.has_scale || p.scale.value_or(0.0f) != planned.scale)
    return differs("scale", p.scale ? detail::concat(*p.scale) : "unset",
                   planned.has_scale ? detail::concat(planned.scale) : "unset");
  if (p.window != planned.window || p.sinks != planned.sinks)
    return differs("window, sinks", detail::concat(p.window, ", ", p.sinks),
                   detail::concat(planned.window, ", ", planned.sinks));
  return Status();
}

int32_t cu_at(const AppendParams& p, int64_t b) {
  return p.cu_seqlens.ptr<const int32_t>()[b * p.cu_seqlens.stride[0]];
}
// The first key row i (of R new rows, in a sequence of len tokens) sees in its window (0 without).
int64_t window_start(const AppendShape& s, int64_t len, int64_t rows, int64_t i) {
  return s.window > 0 ? std::max<int64_t>(0, len - rows + i - s.window + 1) : 0;
}

// The cache's lengths, and the block ids of every key some new row sees (the sinks and the
// windows only, with a window: blocks evicted outside them hold -1).
Status check_cache_values(const AppendParams& p, const AppendShape& s) {
  const KvCacheView& kv = p.kv;
  const detail::PagedIndexer pager =
      kv.layout == KvLayout::kPaged ? detail::paged_indexer(kv) : detail::PagedIndexer{};
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t len = kv.seq_len(b, 0);
    if (len < 0 || len > kv.length_bound())
      return make_error(StatusCode::kInvalidArgument, "kv.seq_lens[", b, "] = ", len,
                        ": allowed 0..", kv.length_bound(),
                        kv.max_seq_len > 0 ? " (max_seq_len)" : " (the capacity)");
    if (kv.layout != KvLayout::kPaged) continue;
    const int64_t rows = std::clamp<int64_t>(
        int64_t{p.cu_seqlens.ptr<const int32_t>()[(b + 1) * p.cu_seqlens.stride[0]]} -
            p.cu_seqlens.ptr<const int32_t>()[b * p.cu_seqlens.stride[0]],
        0, len);
    const int64_t lo = window_start(s, len, rows, 0), bs = kv.block_size();
    const int64_t sink_end = s.window > 0 ? std::min(s.sinks, lo) : 0;
    for (int64_t j = 0; j < len; j += bs) {
      if (j >= sink_end && j + bs <= lo) continue;  // between the sinks and the windows
      const int64_t block = pager.slot(b, j).major;
      if (block < 0 || block >= kv.k.shape[0])
        return make_error(StatusCode::kInvalidArgument, "kv.block_table[", b, ", ", j / bs,
                          "] = ", block, ": allowed 0..", kv.k.shape[0] - 1, " (num_blocks)");
    }
  }
  return Status();
}

int32_t parent_at(const AppendParams& p, int64_t row) {
  return p.tree_parents.ptr<const int32_t>()[row * p.tree_parents.stride[0]];
}
int32_t group_at(const AppendParams& p, int64_t g, int64_t field) {
  return p.prefix_groups
      .ptr<const int32_t>()[g * p.prefix_groups.stride[0] + field * p.prefix_groups.stride[1]];
}

// The values that change every step: cu_seqlens (0, non-decreasing, ending at Tq, each count at
// most the sequence's cached length), the cache's lengths and block ids, and the prefix groups
// (ascending, disjoint, within the batch, shared keys within every member's past, the same blocks
// in every member's table row).
Status check_values(const AppendParams& p, const AppendShape& s) {
  QWEN3VL_RETURN_IF_ERROR(check_cache_values(p, s));
  if (cu_at(p, 0) != 0)
    return make_error(StatusCode::kInvalidArgument, "cu_seqlens[0] = ", cu_at(p, 0), ": must be 0");
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t rows = int64_t{cu_at(p, b + 1)} - cu_at(p, b);
    if (rows < 0 || cu_at(p, b + 1) > s.tokens)
      return make_error(StatusCode::kInvalidArgument, "cu_seqlens[", b + 1, "] = ", cu_at(p, b + 1),
                        ": must be non-decreasing from ", cu_at(p, b),
                        " and at most Tq = ", s.tokens);
    if (rows > p.kv.seq_len(b, 0))
      return make_error(StatusCode::kInvalidArgument, "sequence ", b, ": ", rows,
                        " new rows but kv.seq_lens[", b, "] = ", p.kv.seq_len(b, 0),
                        ": the cache must already hold the new rows' keys (append them first)");
  }
  if (cu_at(p, s.batch) != s.tokens)
    return make_error(StatusCode::kInvalidArgument, "cu_seqlens[", s.batch,
                      "] = ", cu_at(p, s.batch), ": must equal Tq = q.shape[0] = ", s.tokens);
  if (s.tree)
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t first = cu_at(p, b), rows = cu_at(p, b + 1) - first;
      if (rows > kMaxTreeRows)
        return make_error(StatusCode::kInvalidArgument, "sequence ", b, ": ", rows,
                          " new rows with tree_parents: allowed at most ", kMaxTreeRows);
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t parent = parent_at(p, first + i);
        if (parent < -1 || parent >= i)
          return make_error(StatusCode::kInvalidArgument, "tree_parents[", first + i,
                            "] = ", parent, ": new row ", i, " of sequence ", b,
                            " needs a parent among the rows before it (0..", i - 1,
                            ") or -1 for a root");
      }
    }
  int64_t previous_end = 0;
  for (int64_t g = 0; g < s.groups; ++g) {
    const int64_t first = group_at(p, g, 0), end = group_at(p, g, 1), shared = group_at(p, g, 2);
    if (first < previous_end || end <= first || end > s.batch)
      return make_error(StatusCode::kInvalidArgument, "prefix_groups[", g, "] = (", first, ", ",
                        end, ", ", shared,
                        "): sequences [first, end) must be non-empty, within "
                        "the batch of ",
                        s.batch, " and after the previous group's end ", previous_end);
    previous_end = end;
    if (shared < 0)
      return make_error(StatusCode::kInvalidArgument, "prefix_groups[", g, "] shared = ", shared,
                        ": must be >= 0");
    const detail::PagedIndexer pager = detail::paged_indexer(p.kv);
    for (int64_t b = first; b < end; ++b) {
      const int64_t past = p.kv.seq_len(b, 0) - (cu_at(p, b + 1) - cu_at(p, b));
      if (shared > past)
        return make_error(StatusCode::kInvalidArgument, "prefix_groups[", g, "] shared = ", shared,
                          ": sequence ", b, " has ", past,
                          " past tokens (the shared keys must precede every new row)");
      for (int64_t j = 0; b > first && j < shared; j += p.kv.block_size()) {
        const int64_t mine = pager.slot(b, j).major, theirs = pager.slot(first, j).major;
        if (mine != theirs)
          return make_error(StatusCode::kInvalidArgument, "prefix_groups[", g, "]: kv.block_table[",
                            b, ", ", j / p.kv.block_size(), "] = ", mine, " differs from sequence ",
                            first, "'s ", theirs, ": a shared prefix must be the same blocks");
      }
    }
  }
  return Status();
}

}  // namespace

Status validate(const AppendParams& p, AppendShape* shape, bool need_data) {
  {
    // The cache's shapes; its values (lengths, block ids) are check_values' (window-aware).
    KvCacheView shapes = p.kv;
    shapes.seq_lens.data = nullptr;
    QWEN3VL_RETURN_IF_ERROR(validate(shapes, /*need_data=*/false));
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.kv.k, "kv.k", need_data));
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.kv.v, "kv.v", need_data));
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.kv.seq_lens, "kv.seq_lens", need_data));
  }
  if (p.kv.per_head())
    return make_error(StatusCode::kUnsupported, "kv.seq_lens = ", p.kv.seq_lens.shape_string(),
                      ": append attention takes one table for every KV head ([batch] lengths)");
  if (!is_floating(p.kv.k.dtype) || !is_floating(p.kv.v.dtype))
    return make_error(StatusCode::kUnsupported, "kv.k.dtype = ", to_string(p.kv.k.dtype),
                      ": append attention reads f32, f16 or bf16 caches");
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.q, "q", need_data));
  QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.out, "out", need_data));
  AppendShape s;
  s.batch = p.kv.batch();
  s.kv_heads = p.kv.kv_heads();
  s.head_dim = p.kv.head_dim();
  if (p.q.rank != 3)
    return make_error(StatusCode::kShapeMismatch, "q.rank = ", p.q.rank, " (shape ",
                      p.q.shape_string(), "): expected 3 ([Tq, Hq, D], new rows packed)");
  s.tokens = p.q.shape[0];
  s.heads = p.q.shape[1];
  if (s.heads < 1 || s.heads % s.kv_heads != 0)
    return make_error(StatusCode::kInvalidArgument, "q.shape[1] (Hq) = ", s.heads,
                      ": must be a positive multiple of the cache's Hkv = ", s.kv_heads);
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(p.q, "q", 3, {s.tokens, s.heads, s.head_dim}));
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(p.out, "out", 3, {s.tokens, s.heads, s.head_dim}));
  for (const TensorView* t : {&p.q, &p.out}) {
    const char* name = t == &p.q ? "q" : "out";
    if (!is_floating(t->dtype))
      return make_error(StatusCode::kInvalidArgument, name, ".dtype = ", to_string(t->dtype),
                        ": allowed f32, f16, bf16");
    if (t->device != p.kv.k.device)
      return make_error(StatusCode::kInvalidArgument, name, ".device = ", to_string(t->device),
                        ": must equal the cache's device (", to_string(p.kv.k.device), ")");
    QWEN3VL_RETURN_IF_ERROR(detail::check_last_contiguous(*t, name));
  }
  if (p.out.dtype != p.q.dtype)
    return make_error(StatusCode::kInvalidArgument, "out.dtype = ", to_string(p.out.dtype),
                      ": must equal q.dtype (", to_string(p.q.dtype), ")");
  if (p.kv.seq_lens.device != Device::kCPU)
    return make_error(StatusCode::kInvalidArgument,
                      "kv.seq_lens.device = ", to_string(p.kv.seq_lens.device),
                      ": append attention reads the lengths and block table on the host");
  QWEN3VL_RETURN_IF_ERROR(check_host_index(p.cu_seqlens, "cu_seqlens", true));
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(p.cu_seqlens, "cu_seqlens", 1, {s.batch + 1}));
  if (p.lse.present()) {
    if (p.lse.dtype != DType::kF32)
      return make_error(StatusCode::kInvalidArgument, "lse.dtype = ", to_string(p.lse.dtype),
                        ": must be f32");
    QWEN3VL_RETURN_IF_ERROR(detail::check_dims(p.lse, "lse", 2, {s.heads, s.tokens}));
    QWEN3VL_RETURN_IF_ERROR(detail::check_present(p.lse, "lse", need_data));
    if (p.lse.device != p.q.device)
      return make_error(StatusCode::kInvalidArgument, "lse.device = ", to_string(p.lse.device),
                        ": must equal q.device");
  }
  if (p.prefix_groups.present()) {
    if (p.kv.layout != KvLayout::kPaged)
      return make_error(StatusCode::kUnsupported, "prefix_groups with a ", to_string(p.kv.layout),
                        " cache: sequences share prefix blocks in a paged cache only");
    QWEN3VL_RETURN_IF_ERROR(check_host_index(p.prefix_groups, "prefix_groups", true));
    if (p.prefix_groups.rank != 2 || p.prefix_groups.shape[1] != 3 ||
        p.prefix_groups.shape[0] > s.batch)
      return make_error(StatusCode::kShapeMismatch,
                        "prefix_groups.shape = ", p.prefix_groups.shape_string(),
                        ": expected [groups <= batch = ", s.batch, ", 3] (first, end, shared)");
    s.groups = p.prefix_groups.shape[0];
  }
  if (p.tree_parents.present()) {
    QWEN3VL_RETURN_IF_ERROR(check_host_index(p.tree_parents, "tree_parents", true));
    QWEN3VL_RETURN_IF_ERROR(detail::check_dims(p.tree_parents, "tree_parents", 1, {s.tokens}));
    s.tree = true;
  }
  if (p.window < 0 || p.sinks < 0)
    return make_error(StatusCode::kInvalidArgument, "window, sinks = ", p.window, ", ", p.sinks,
                      ": allowed >= 0 (window 0: unbounded)");
  if (p.window > 0 && (s.groups > 0 || s.tree))
    return make_error(StatusCode::kUnsupported, "window = ", p.window, " with ",
                      s.tree ? "tree_parents" : "prefix_groups",
                      ": a sliding window takes plain causal rows without shared prefixes");
  s.window = p.window;
  s.sinks = p.window > 0 ? p.sinks : 0;
  if (p.scale && !std::isfinite(*p.scale))
    return make_error(StatusCode::kInvalidArgument, "scale = ", *p.scale, ": must be finite");
  QWEN3VL_RETURN_IF_ERROR(check_append_overlaps(p));
  s.max_len = p.kv.length_bound();
  s.scale = p.scale ? *p.scale : 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  if (shape) *shape = s;
  return Status();
}

namespace {

// What a plan implies for the workspace, laid out by one carver (counting in plan(), over the
// caller's buffer in run()).
struct Parts {
  int64_t* items = nullptr;   // work items, 4 values each (kind, a, b, c)
  float* shared_o = nullptr;  // [Tq][Hq][D], [Tq][Hq]: partials over the shared prefix (or sinks)
  float* shared_lse = nullptr;
  float* own_o = nullptr;  // the same over the sequence's own keys (flash sequences in a group)
  float* own_lse = nullptr;
  float* split_o = nullptr;  // [batch][slots][Hkv][G * decode_rows][D] (+ lse): decode partials
  float* split_lse = nullptr;
  Workspace slots;
};

enum ItemKind : int64_t { kShared = 0, kChunk = 1, kDecode = 2, kSinks = 3 };

// Decode partial slots a sequence: its key splits, and one for the sinks.
int64_t slots_of(const AppendPlan& plan) {
  return plan.splits + (plan.shape.sinks_apart() ? 1 : 0);
}
// The most rows a sequence may have to run the decode kernel: under a window each row has its own
// first key, which the decode kernel (one key range for all rows) takes for a single row only.
int64_t decode_limit(const AppendPlan& plan) {
  return plan.shape.window > 0 ? 1 : plan.decode_rows;
}

int64_t max_items(const AppendPlan& plan) {
  const AppendShape& s = plan.shape;
  const int64_t blocks = s.tokens / plan.block_q;
  return s.kv_heads * (blocks + s.groups) + 2 * s.kv_heads * (blocks + s.batch) +
         s.batch * slots_of(plan);
}
int64_t split_stride(const AppendPlan& plan) {  // floats of one (sequence, split) partial o
  const AppendShape& s = plan.shape;
  return s.kv_heads * s.group_size() * plan.decode_rows * s.head_dim;
}
int64_t split_lse_stride(const AppendPlan& plan) {
  return plan.shape.kv_heads * plan.shape.group_size() * plan.decode_rows;
}

Parts carve_parts(const AppendPlan& plan, void* base) {
  const AppendShape& s = plan.shape;
  detail::Carver c = base ? detail::carve(base) : detail::Carver();
  Parts parts;
  parts.items = c.take<int64_t>(4 * max_items(plan));
  const int64_t rows = s.tokens * s.heads;
  if (s.groups > 0 || s.sinks_apart()) {
    parts.shared_o = c.take<float>(rows * s.head_dim);
    parts.shared_lse = c.take<float>(rows);
  }
  if (s.groups > 0 || s.tree || s.sinks_apart()) {
    parts.own_o = c.take<float>(rows * s.head_dim);
    parts.own_lse = c.take<float>(rows);
  }
  if (plan.splits > 1 || s.groups > 0 || s.tree || s.sinks_apart()) {
    parts.split_o = c.take<float>(s.batch * slots_of(plan) * split_stride(plan));
    parts.split_lse = c.take<float>(s.batch * slots_of(plan) * split_lse_stride(plan));
  }
  const size_t used = c.used();
  parts.slots.data = base ? detail::align_pointer(base) + used : nullptr;
  parts.slots.bytes = used;  // sizing: the bytes before the slots
  return parts;
}

constexpr int64_t kMinSplitKeys = 256;
constexpr int64_t kMaxAutoSplits = 64;

class AppendCpu final : public AppendAttention {
 public:
  AppendCpu(std::unique_ptr<detail::CpuBackend> backend, int64_t l2_bytes)
      : backend_(std::move(backend)),
        flash_(detail::isa_table<detail::Flash2Kernels>(backend_->isa())),
        decode_(detail::isa_table<detail::DecodeKernels>(backend_->isa())),
        l2_bytes_(l2_bytes) {}

  Device device() const override { return Device::kCPU; }
  std::string describe() const override {
    return "append attention (cpu): decode kernels for <= " + std::to_string(kMaxDecodeRows) +
           " new rows, flash2 tiles through the block table for longer chunks, shared prefixes "
           "once per group; " +
           backend_->describe();
  }

  Status plan(const AppendParams& problem, AppendPlan* plan) const override {
    if (plan == nullptr)
      return make_error(StatusCode::kNullPointer, "plan = null: must point to an AppendPlan");
    if (problem.kv.k.device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "kv.k.device = ", to_string(problem.kv.k.device),
                        ": CPU append attention needs a host-resident cache");
    AppendPlan made;
    QWEN3VL_RETURN_IF_ERROR(validate(problem, &made.shape, /*need_data=*/false));
    const AppendShape& s = made.shape;
    made.facts = facts();
    // Flash tiles for the longest run of rows a task may hold (a prefix group's rows may be all
    // of Tq), within the L2 as flash2 sizes them.
    detail::Flash2Plan tiles;
    flash_.plan(flash_shape(s), l2_bytes_, &tiles);
    made.block_q = tiles.block_q;
    made.block_k = tiles.block_k;
    made.tile_bytes = tiles.scratch_bytes;
    // Key splits for decode sequences: as decode plans them (4 tasks a thread, none shorter than
    // kMinSplitKeys keys).
    const int64_t want = (4 * backend_->threads() + s.batch - 1) / s.batch;
    const int64_t most = std::max<int64_t>(1, s.max_len / kMinSplitKeys);
    made.splits = std::clamp<int64_t>(std::min(want, most), 1, kMaxAutoSplits);
    made.slot_bytes = std::max(flash_slot_bytes(made), decode_slot_bytes(made));
    const Parts sizing = carve_parts(made, nullptr);
    made.workspace_bytes =
        sizing.slots.bytes + detail::kAlignSlack + backend_->workspace_bytes(made.slot_bytes);
    made.reason = detail::concat(
        "append (cpu): sequences of <= ", made.decode_rows, " new rows on the decode kernel (",
        made.splits, made.splits == 1 ? " split" : " key splits", "), longer ones on flash2 tiles ",
        made.block_q, " positions x ", made.block_k, " keys read through the ",
        to_string(problem.kv.layout), " cache",
        s.groups ? detail::concat(", ", s.groups, " shared-prefix groups merged by LSE") : "", "; ",
        made.workspace_bytes, " workspace bytes, ", backend_->describe());
    made.signature = signature_of(problem);
    *plan = std::move(made);
    return Status();
  }

  Status check_run(const AppendPlan& plan, const AppendParams& p, Workspace ws) const override {
    if (plan.facts != facts())
      return make_error(
          StatusCode::kInvalidArgument, "plan: ",
          plan.facts == 0 ? "not made by plan()" : "made by an append object of other device facts",
          "; run() takes a plan of an object like this one (", describe(), ")");
    QWEN3VL_RETURN_IF_ERROR(check_signature(plan.signature, p));
    const TensorView* data[] = {&p.q, &p.out, &p.lse, &p.kv.k, &p.kv.v};
    const char* names[] = {"q", "out", "lse", "kv.k", "kv.v"};
    for (int t = 0; t < 5; ++t)
      if (data[t]->present() && data[t]->data == nullptr && data[t]->numel() > 0)
        return make_error(StatusCode::kNullPointer, names[t], ".data = null with shape ",
                          data[t]->shape_string(), ": a non-empty tensor needs memory");
    for (const TensorView* t : {&p.cu_seqlens, &p.prefix_groups, &p.kv.seq_lens, &p.tree_parents})
      if (t->present() && t->data == nullptr)
        return make_error(StatusCode::kNullPointer,
                          t == &p.cu_seqlens      ? "cu_seqlens"
                          : t == &p.prefix_groups ? "prefix_groups"
                          : t == &p.tree_parents  ? "tree_parents"
                                                  : "kv.seq_lens",
                          ".data = null: host index values are read on every run");
    QWEN3VL_RETURN_IF_ERROR(check_append_overlaps(p));
    QWEN3VL_RETURN_IF_ERROR(check_values(p, plan.shape));
    if (plan.workspace_bytes > 0 && (ws.data == nullptr || ws.bytes < plan.workspace_bytes))
      return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                        ws.data ? "" : " (data = null)", ": need ", plan.workspace_bytes,
                        " (workspace_size() for these params)");
    return Status();
  }

  Status run(const AppendPlan& plan, const AppendParams& p, Workspace ws) const override {
    QWEN3VL_RETURN_IF_ERROR(check_run(plan, p, ws));
    launch(plan, p, ws);
    return Status();
  }

 private:
  uint64_t facts() const {
    return (static_cast<uint64_t>(backend_->threads()) << 8 |
            static_cast<uint64_t>(backend_->isa())) +
           1;
  }

  static AttentionShape flash_shape(const AppendShape& s) {
    AttentionShape a;
    a.batch = s.batch;
    a.heads = s.heads;
    a.kv_heads = s.kv_heads;
    a.head_dim = s.head_dim;
    a.max_q = std::max<int64_t>(s.tokens, 1);
    a.max_k = std::max<int64_t>(s.max_len, 1);
    a.scale = s.scale;
    a.varlen = true;
    return a;
  }
  static DecodeShape decode_shape(const AppendShape& s, int64_t rows) {
    DecodeShape d;
    d.batch = s.batch;
    d.rows = rows;
    d.heads = s.heads;
    d.kv_heads = s.kv_heads;
    d.head_dim = s.head_dim;
    d.max_len = s.max_len;
    d.scale = s.scale;
    return d;
  }
  // A flash task's slot: its rows' key ranges, one interval, the tile scratch.
  static size_t flash_slot_bytes(const AppendPlan& plan) {
    detail::Carver c;
    c.take<KeyRange>(plan.block_q);
    c.take<KeyRange>(1);
    c.take<char>(static_cast<int64_t>(plan.tile_bytes));
    return c.used();
  }
  static size_t decode_slot_bytes(const AppendPlan& plan) {
    return static_cast<size_t>(detail::decode_scratch_floats(
               decode_shape(plan.shape, plan.decode_rows), plan.shape.kv_heads)) *
           sizeof(float);
  }

  void launch(const AppendPlan& plan, const AppendParams& p, Workspace ws) const {
    const AppendShape& s = plan.shape;
    const int64_t group = s.group_size(), d = s.head_dim;
    const Parts parts = carve_parts(plan, ws.data);
    const Workspace slots{parts.slots.data,
                          ws.bytes - static_cast<size_t>(static_cast<char*>(parts.slots.data) -
                                                         static_cast<char*>(ws.data))};
    const auto rows_of = [&](int64_t b) { return int64_t{cu_at(p, b + 1)} - cu_at(p, b); };
    // Shared keys of sequence b (0: not in a group), found by a walk of the sorted groups.
    const auto shared_of = [&](int64_t b) -> int64_t {
      for (int64_t g = 0; g < s.groups; ++g)
        if (b >= group_at(p, g, 0) && b < group_at(p, g, 1)) return group_at(p, g, 2);
      return 0;
    };

    // The items, heaviest first: shared prefixes, then chunks (later query blocks first: they see
    // more keys), then decode sequences.
    int64_t count = 0;
    const auto add = [&](int64_t kind, int64_t a, int64_t b, int64_t c) {
      int64_t* item = parts.items + 4 * count++;
      item[0] = kind;
      item[1] = a;
      item[2] = b;
      item[3] = c;
    };
    for (int64_t g = 0; g < s.groups; ++g) {
      const int64_t rows = cu_at(p, group_at(p, g, 1)) - cu_at(p, group_at(p, g, 0));
      if (group_at(p, g, 2) == 0 || rows == 0) continue;
      for (int64_t h = 0; h < s.kv_heads; ++h)
        for (int64_t qb = 0; qb * plan.block_q < rows; ++qb) add(kShared, g, h, qb);
    }
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t rows = rows_of(b);
      if (rows <= decode_limit(plan)) continue;
      const int64_t blocks = (rows + plan.block_q - 1) / plan.block_q;
      for (int64_t h = 0; h < s.kv_heads; ++h)
        for (int64_t qb = blocks - 1; qb >= 0; --qb) {
          add(kChunk, b, h, qb);
          if (s.sinks_apart()) add(kSinks, b, h, qb);
        }
    }
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t rows = rows_of(b);
      if (rows == 0 || rows > decode_limit(plan)) continue;
      for (int64_t split = 0; split < slots_of(plan); ++split) add(kDecode, b, split, 0);
    }

    // The flash tiles' view of the problem: packed q / out / lse (varlen), K/V from the cache.
    AttentionParams fp;
    fp.q = p.q;
    fp.out = p.out;
    fp.lse = p.lse;
    fp.mask = MaskKind::kCausal;
    const AttentionShape fshape = flash_shape(s);
    detail::Flash2Plan tiles;
    tiles.block_q = plan.block_q;
    tiles.block_k = plan.block_k;
    tiles.scratch_bytes = plan.tile_bytes;
    // Decode sequences leave partials whenever a merge follows: key splits, a shared prefix, a tree
    // (whose new rows are attended in the merge).
    const bool merge_splits = plan.splits > 1 || s.groups > 0 || s.tree || s.sinks_apart();

    std::atomic<int64_t> next{0};
    const auto worker = [&] {
      void* slot = detail::CpuBackend::thread_slot(slots, plan.slot_bytes);
      detail::Carver carver(slot);
      KeyRange* ranges = carver.take<KeyRange>(plan.block_q);
      KeyRange* interval = carver.take<KeyRange>(1);
      void* tile_scratch = carver.take<char>(static_cast<int64_t>(plan.tile_bytes));
      for (int64_t n = next++; n < count; n = next++) {
        const int64_t* item = parts.items + 4 * n;
        if (item[0] == kDecode) {
          run_decode(plan, p, item[1], item[2], rows_of(item[1]), shared_of(item[1]), merge_splits,
                     parts, slot);
          continue;
        }
        detail::Flash2Task t;
        t.params = &fp;
        t.shape = fshape;
        t.plan = tiles;
        t.kv_head = item[2];
        t.head = t.kv_head * group;
        t.heads = group;
        t.gathered = nullptr;
        t.cache = &p.kv;
        int64_t first_row = 0, rows = 0, key_lo = 0;
        if (item[0] == kShared) {
          const int64_t g = item[1];
          t.b = group_at(p, g, 0);  // every member's table row holds the shared blocks
          first_row = cu_at(p, group_at(p, g, 0));
          rows = cu_at(p, group_at(p, g, 1)) - first_row;
          t.span = SequenceSpan{first_row, rows, 0, group_at(p, g, 2)};
          t.partial_o = parts.shared_o;
          t.partial_lse = parts.shared_lse;
        } else {
          t.b = item[1];
          first_row = cu_at(p, t.b);
          rows = rows_of(t.b);
          key_lo = shared_of(t.b);
          t.span = SequenceSpan{first_row, rows, 0, p.kv.seq_len(t.b, 0)};
          if (item[0] == kSinks) {
            t.partial_o = parts.shared_o;
            t.partial_lse = parts.shared_lse;
          } else if (key_lo > 0 || s.tree || s.sinks_apart()) {
            t.partial_o = parts.own_o;
            t.partial_lse = parts.own_lse;
          }
        }
        t.q_begin = item[3] * plan.block_q;
        t.q_end = std::min(rows, t.q_begin + plan.block_q);
        // Shared keys: all of them; own keys: bottom-right causal, or with a tree the past only
        // (the merge adds the tree's new rows).
        // Under a window: from the window's first key, and the sinks before it apart.
        const int64_t past = t.span.k_len - t.span.q_len;
        for (int64_t i = t.q_begin; i < t.q_end; ++i) {
          const int64_t start = window_start(s, t.span.k_len, t.span.q_len, i);
          ranges[i - t.q_begin] = item[0] == kShared  ? KeyRange{0, t.span.k_len}
                                  : item[0] == kSinks ? KeyRange{0, std::min(s.sinks, start)}
                                  : s.tree            ? KeyRange{key_lo, past}
                                           : KeyRange{std::max(key_lo, start), past + i + 1};
        }
        t.rows = ranges;
        *interval = KeyRange{ranges[0].begin, ranges[t.q_end - t.q_begin - 1].end};
        t.intervals = interval;
        t.interval_count = interval->end > interval->begin ? 1 : 0;
        t.scratch = tile_scratch;
        flash_.tile(t);
      }
    };
    backend_->arena().execute([&] {
      if (count > 0) tbb::parallel_for(0, backend_->threads(), [&](int) { worker(); });
      merge(plan, p, parts, merge_splits, rows_of, shared_of);
    });
  }

  // Decode split `split` of sequence b (rows new rows, its own keys from `shared` on).
  void run_decode(const AppendPlan& plan, const AppendParams& p, int64_t b, int64_t split,
                  int64_t rows, int64_t shared, bool to_partials, const Parts& parts,
                  void* scratch) const {
    const AppendShape& s = plan.shape;
    const int64_t q0 = cu_at(p, b);
    // The sequence's rows as decode's [batch, R, Hq, D] with a zero batch stride, so that the
    // kernel's (b, r, h) offsets land on packed rows q0 + r.
    const auto rows_view = [&](const TensorView& t) {
      TensorView v = TensorView::strided(
          static_cast<char*>(t.data) + q0 * t.stride[0] * static_cast<int64_t>(size_of(t.dtype)),
          t.dtype, {s.batch, rows, s.heads, s.head_dim}, {0, t.stride[0], t.stride[1], 1});
      return v;
    };
    DecodeParams dp;
    dp.q = rows_view(p.q);
    dp.out = rows_view(p.out);
    if (p.lse.present())
      dp.lse = TensorView::strided(p.lse.ptr<float>() + q0 * p.lse.stride[1], DType::kF32,
                                   {s.batch, s.heads, rows}, {0, p.lse.stride[0], p.lse.stride[1]});
    dp.kv = p.kv;
    detail::DecodeTask t;
    t.params = &dp;
    t.shape = decode_shape(s, rows);
    t.b = b;
    t.kv_head_begin = 0;
    t.kv_head_end = s.kv_heads;
    t.seq_len = p.kv.seq_len(b, 0);
    // With a tree the kernel covers the past keys only: every row sees all of them.
    // Under a window (one row) from its first key; the sinks before it in the last slot.
    const int64_t end = plan.shape.tree ? t.seq_len - rows : t.seq_len;
    const int64_t begin = std::max(shared, window_start(s, t.seq_len, rows, 0));
    if (split == plan.splits) {
      t.key_begin = 0;
      t.key_end = std::min(s.sinks, begin);
    } else {
      const int64_t own = end - begin;
      const int64_t per_split = (own + plan.splits - 1) / plan.splits;
      const int64_t chunk = (per_split + 15) / 16 * 16;
      t.key_begin = std::min(end, begin + split * chunk);
      t.key_end = std::min(end, t.key_begin + chunk);
    }
    const int64_t part = b * slots_of(plan) + split;
    t.partial_o = to_partials ? parts.split_o + part * split_stride(plan) : nullptr;
    t.partial_lse = to_partials ? parts.split_lse + part * split_lse_stride(plan) : nullptr;
    t.scratch = scratch;
    decode_.run_task(t);
  }

  // Folds the partials into out / lse: decode sequences' splits (and shared prefix), chunk
  // sequences' own and shared parts.
  template <class RowsOf, class SharedOf>
  void merge(const AppendPlan& plan, const AppendParams& p, const Parts& parts, bool merge_splits,
             const RowsOf& rows_of, const SharedOf& shared_of) const {
    const AppendShape& s = plan.shape;
    const int64_t group = s.group_size(), d = s.head_dim;
    tbb::parallel_for(int64_t{0}, s.batch, [&](int64_t b) {
      const int64_t rows = rows_of(b), shared = shared_of(b), q0 = cu_at(p, b);
      const bool decode = rows <= decode_limit(plan);
      if (rows == 0 || (decode ? !merge_splits : shared == 0 && !s.tree && !s.sinks_apart()))
        return;
      float acc[256], tree_o[256];
      int64_t seen[kMaxTreeRows];
      for (int64_t r = 0; r < rows; ++r) {
        // The new rows row r sees: itself and its ancestors.
        int64_t count = 0;
        if (s.tree)
          for (int64_t j = r; j >= 0; j = parent_at(p, q0 + j)) seen[count++] = j;
        for (int64_t qh = 0; qh < s.heads; ++qh) {
          float lse = -INFINITY;
          std::fill(acc, acc + d, 0.0f);
          const auto fold = [&](const float* o, float part_lse) {
            const detail::MergeWeights w = detail::merge_weights(lse, part_lse);
            for (int64_t c = 0; c < d; ++c) acc[c] = detail::merge_value(w, acc[c], o[c]);
            lse = w.lse;
          };
          const int64_t packed = (q0 + r) * s.heads + qh;
          if (shared > 0 || (!decode && s.sinks_apart()))
            fold(parts.shared_o + packed * d, parts.shared_lse[packed]);
          if (decode) {
            const int64_t kvh = qh / group, i = (qh % group) * rows + r;
            const int64_t at = kvh * group * rows + i;
            for (int64_t split = 0; split < slots_of(plan); ++split) {
              const int64_t part = b * slots_of(plan) + split;
              fold(parts.split_o + part * split_stride(plan) + at * d,
                   parts.split_lse[part * split_lse_stride(plan) + at]);
            }
          } else {
            fold(parts.own_o + packed * d, parts.own_lse[packed]);
          }
          if (s.tree) {
            const float tree_lse = tree_part(plan, p, b, q0 + r, qh, seen, count, tree_o);
            fold(tree_o, tree_lse);
          }
          const int64_t off = p.out.offset(q0 + r, qh);
          for (int64_t c = 0; c < d; ++c) store_float(p.out, off + c, acc[c]);
          if (p.lse.present()) p.lse.ptr<float>()[p.lse.offset(qh, q0 + r)] = lse;
        }
      }
    });
  }

  // Query row `row` (packed), head qh, against the `count` new rows of sequence b listed in
  // seen[] (indices among its new rows): o (normalised, fp32) and the LSE of that partial. At most
  // kMaxTreeRows keys a row: plain loops.
  static float tree_part(const AppendPlan& plan, const AppendParams& p, int64_t b, int64_t row,
                         int64_t qh, const int64_t* seen, int64_t count, float* o) {
    const AppendShape& s = plan.shape;
    const int64_t d = s.head_dim, kvh = qh / s.group_size();
    const int64_t rows = cu_at(p, b + 1) - cu_at(p, b), past = p.kv.seq_len(b, 0) - rows;
    const detail::PagedIndexer pager =
        p.kv.layout == KvLayout::kPaged ? detail::paged_indexer(p.kv) : detail::PagedIndexer{};
    float q[256], score[kMaxTreeRows];
    const int64_t q_off = p.q.offset(row, qh);
    for (int64_t c = 0; c < d; ++c) q[c] = load_float(p.q, q_off + c) * s.scale;
    const auto slot = [&](int64_t j) {
      return p.kv.layout == KvLayout::kPaged ? pager.slot(b, past + j)
                                             : detail::KvSlot{b, past + j};
    };
    return dispatch_float_dtype(p.kv.k.dtype, [&](auto tag) {
      using T = decltype(tag);
      float top = -INFINITY;
      for (int64_t n = 0; n < count; ++n) {
        const detail::KvSlot at = slot(seen[n]);
        const T* k = p.kv.k.ptr<const T>() + p.kv.k.offset(at.major, at.minor, kvh);
        float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // independent sums (vectorisable)
        int64_t c = 0;
        for (; c + 8 <= d; c += 8)
          for (int l = 0; l < 8; ++l) lanes[l] += q[c + l] * to_float(k[c + l]);
        float x = 0.0f;
        for (; c < d; ++c) x += q[c] * to_float(k[c]);
        for (int l = 0; l < 8; ++l) x += lanes[l];
        score[n] = x;
        top = x > top || x != x ? x : top;  // NaN sticks
      }
      float sum = 0.0f;
      for (int64_t c = 0; c < d; ++c) o[c] = 0.0f;
      for (int64_t n = 0; n < count; ++n) {
        const float w = std::exp(score[n] - top);
        sum += w;
        const detail::KvSlot at = slot(seen[n]);
        const T* v = p.kv.v.ptr<const T>() + p.kv.v.offset(at.major, at.minor, kvh);
        for (int64_t c = 0; c < d; ++c) o[c] += w * to_float(v[c]);
      }
      for (int64_t c = 0; c < d; ++c) o[c] /= sum;
      return top + std::log(sum);
    });
  }

  std::unique_ptr<detail::CpuBackend> backend_;
  const detail::Flash2Kernels& flash_;
  const detail::DecodeKernels& decode_;
  int64_t l2_bytes_;
};

}  // namespace

Status AppendAttention::forward(const AppendParams& params, Workspace workspace) const {
  AppendPlan made;
  QWEN3VL_RETURN_IF_ERROR(plan(params, &made));
  return run(made, params, workspace);
}

size_t AppendAttention::workspace_size(const AppendParams& params) const {
  AppendPlan made;
  return plan(params, &made).ok() ? made.workspace_bytes : 0;
}

void AppendAttention::run(const AppendParams& params) const {
  AppendPlan made;
  throw_if_error(plan(params, &made));
  const detail::HostWorkspace buffer(made.workspace_bytes);
  throw_if_error(run(made, params, buffer.workspace()));
}

Status create_append_attention_cpu(const CpuOptions& options,
                                   std::unique_ptr<AppendAttention>* out) {
  if (out == nullptr)
    return make_error(StatusCode::kNullPointer, "out = null: must point to a unique_ptr");
  std::unique_ptr<detail::CpuBackend> backend;
  QWEN3VL_RETURN_IF_ERROR(detail::CpuBackend::create(options, &backend));
  const CpuInfo& cpu = options.cpu_info ? *options.cpu_info : CpuInfo::current();
  *out = std::make_unique<AppendCpu>(std::move(backend), cpu.l2_bytes);
  return Status();
}

Status find_prefix_groups(const KvCacheView& kv, const TensorView& cu_seqlens, int64_t min_shared,
                          std::vector<int32_t>* groups) {
  if (groups == nullptr)
    return make_error(StatusCode::kNullPointer, "groups = null: must point to a vector");
  groups->clear();
  if (kv.layout != KvLayout::kPaged)
    return make_error(StatusCode::kUnsupported, "kv.layout = ", to_string(kv.layout),
                      ": shared prefixes are blocks of a paged cache");
  QWEN3VL_RETURN_IF_ERROR(validate(kv));
  if (kv.per_head())
    return make_error(StatusCode::kUnsupported, "kv.seq_lens = ", kv.seq_lens.shape_string(),
                      ": one table for every KV head needed");
  if (kv.seq_lens.device != Device::kCPU || kv.seq_lens.data == nullptr)
    return make_error(StatusCode::kInvalidArgument, "kv.seq_lens: must be in host memory");
  const int64_t batch = kv.batch(), bs = kv.block_size();
  QWEN3VL_RETURN_IF_ERROR(check_host_index(cu_seqlens, "cu_seqlens", true));
  QWEN3VL_RETURN_IF_ERROR(detail::check_dims(cu_seqlens, "cu_seqlens", 1, {batch + 1}));
  const auto past = [&](int64_t b) {
    const int32_t* cu = cu_seqlens.ptr<const int32_t>();
    const int64_t rows = int64_t{cu[(b + 1) * cu_seqlens.stride[0]]} - cu[b * cu_seqlens.stride[0]];
    return std::max<int64_t>(0, kv.seq_len(b, 0) - std::max<int64_t>(rows, 0));
  };
  const detail::PagedIndexer pager = detail::paged_indexer(kv);
  // Keys of the blocks sequence b shares with sequence a from the start, at most `limit`.
  const auto common = [&](int64_t a, int64_t b, int64_t limit) {
    int64_t keys = 0;
    while (keys < limit && pager.slot(b, keys).major == pager.slot(a, keys).major)
      keys = std::min(limit, (keys / bs + 1) * bs);
    return keys;
  };
  // A run: a sequence and the next ones that share as many of its keys as the first two share (a
  // member sharing fewer starts the next run, so one stray sequence does not shrink a group).
  for (int64_t first = 0; first < batch;) {
    int64_t end = first + 1;
    const int64_t shared = end < batch ? common(first, end, std::min(past(first), past(end))) : 0;
    if (shared > 0)
      while (end < batch && past(end) >= shared && common(first, end, shared) == shared) ++end;
    if (end - first > 1 && shared >= std::max<int64_t>(min_shared, 1))
      groups->insert(groups->end(), {static_cast<int32_t>(first), static_cast<int32_t>(end),
                                     static_cast<int32_t>(shared)});
    first = end;
  }
  return Status();
}

Status append_and_attend(const AppendAttention& attention, const AppendPlan* plan,
                         KvPageTable* table, const KvLayerStorage& storage, const TensorView& k_new,
                         const TensorView& v_new, AppendParams params, Workspace workspace) {
  if (table == nullptr)
    return make_error(StatusCode::kNullPointer, "table = null: must point to the page table");
  if (!table->created() || !storage.created())
    return make_error(StatusCode::kInvalidArgument, "table / storage: not created");
  if (storage.table_config() != table->config())
    return make_error(StatusCode::kInvalidArgument, "storage: made for another table than ",
                      table->describe());
  const int64_t bound = params.kv.max_seq_len;
  params.kv = storage.view(*table);
  params.kv.max_seq_len = bound;
  AppendPlan made;
  if (plan == nullptr) {
    QWEN3VL_RETURN_IF_ERROR(attention.plan(params, &made));
    plan = &made;
  }
  QWEN3VL_RETURN_IF_ERROR(storage.check_source(k_new, v_new, /*ragged=*/true));
  if (k_new.shape[0] != params.q.shape[0])
    return make_error(StatusCode::kShapeMismatch, "k_new.shape[0] = ", k_new.shape[0],
                      ": must equal q.shape[0] = ", params.q.shape[0], " (one key per new row)");
  QWEN3VL_RETURN_IF_ERROR(table->begin_append(params.q.shape[0], params.cu_seqlens));
  params.kv = storage.view(*table);  // the step's lengths
  params.kv.max_seq_len = bound;
  Status st = attention.check_run(*plan, params, workspace);
  if (st.ok()) st = storage.apply(*table, k_new, v_new);
  if (st.ok()) st = attention.run(*plan, params, workspace);
  if (!st.ok()) {
    (void)table->abort();
    return st;
  }
  return table->commit();
}

}  // namespace qwen3vl
