// Qwen3VLTextAttention: validation and workspace layout (one function does both), then the steps
// projections -> QK-norm -> M-RoPE -> cache append -> attention -> output projection.
#include "qwen3vl/layers/text_attention.hpp"

#include <algorithm>
#include <cmath>

#include "layer_common.hpp"
#include "qwen3vl/kv_cache/append.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/selector/selector.hpp"
#include "src/core/host_workspace.hpp"
#include "src/core/workspace_carver.hpp"
#if QWEN3VL_WITH_CUDA
#include "qwen3vl/kv_cache/cuda.hpp"
#endif

namespace qwen3vl::layers {

struct Qwen3VLTextAttention::Impl {
  TextAttentionConfig config;
  int layer_idx = 0;
  std::unique_ptr<detail::LayerOps> ops;
  rope::RopeTable table;
  rope::RopeTableView table_view;
  std::unique_ptr<Attention> attention;
  std::unique_ptr<DecodeAttention> decode;  // CPU caches only
  std::unique_ptr<AppendAttention> append;  // CPU caches only
  detail::Linear qkv, o;                    // q, k, v fused: [(Hq + 2 Hkv) D, hidden]
  const float* q_norm = nullptr;
  const float* k_norm = nullptr;

  int64_t heads() const { return config.num_heads; }
  int64_t kv_heads() const { return config.num_kv_heads; }
  int64_t dim() const { return config.head_dim; }
  int64_t qkv_heads() const { return heads() + 2 * kv_heads(); }
};

namespace {

// How the new tokens attend: to themselves only (no past), through the decode kernel (<= 8 rows
// against the cache), through the prefill kernel over a contiguous cache's storage, or through
// append attention (CPU: chunked prefill and prefix hits on a paged cache, or a cache of another
// dtype than the layer's).
enum class Path { kFresh, kDecode, kCachedContiguous, kAppend };

// What plan_text decided for one call. The views are planned with null data (plans take shapes);
// bind() points them into the caller's workspace.
struct TextPlan {
  Path path = Path::kFresh;
  int64_t batch = 0, len = 0, past_max = 0, keys = 0;
  TensorView qkv, q, k, v, attn, positions, key_lengths, additive_mask;
  void* linear_scratch = nullptr;
  std::vector<int32_t> lengths;  // kCachedContiguous: every sequence's length after the append
  rope::RopeApplyParams rope;
  AttentionParams params;
  AttentionPlan attention_plan;
  DecodeParams decode;
  DecodePlan decode_plan;
  std::vector<int32_t> cu_seqlens;  // kAppend: 0, L, 2L, ... (every sequence appends L rows)
  AppendParams append;
  AppendPlan append_plan;
  Workspace kernel;
  size_t bytes = 0;
};

using Impl = Qwen3VLTextAttention::Impl;

// The cache a call uses: the model's shared table and this layer's storage over it (both null: no
// cache). The table is changed only by forward(): the step's position deltas and decode plans.
struct CacheRef {
  KvPageTable* table = nullptr;
  const KvLayerStorage* storage = nullptr;
  explicit operator bool() const { return table != nullptr; }
};

Status check_cache(const Impl& m, const CacheRef& cache, int64_t batch, int64_t len,
                   int64_t* past_max) {
  if (cache.storage == nullptr || !cache.storage->created() || !cache.table->created())
    return make_error(StatusCode::kInvalidArgument, "cache: ",
                      cache.storage == nullptr ? "a table without layer storage"
                                               : "not created (use KvCache::create)");
  const KvPageTable& t = *cache.table;
  const KvLayerStorage& s = *cache.storage;
  if (s.table_config() != t.config())
    return make_error(StatusCode::kInvalidArgument, "cache storage: made for another table than ",
                      t.describe());
  if (s.kv_heads() != m.kv_heads() || s.head_dim() != m.dim())
    return make_error(StatusCode::kShapeMismatch, "cache Hkv, D = ", s.kv_heads(), ", ",
                      s.head_dim(), ": must be the layer's ", m.kv_heads(), ", ", m.dim());
  if (s.format() != m.config.options.kv_format)
    return make_error(StatusCode::kInvalidArgument, "cache format = ", to_string(s.format()),
                      ": the layer takes ", to_string(m.config.options.kv_format),
                      " caches (options.kv_format)");
  if (t.config().batch != batch)
    return make_error(StatusCode::kShapeMismatch, "cache batch = ", t.config().batch,
                      ": must equal hidden_states.shape[0] = ", batch);
  if (s.k().device != m.config.options.device)
    return make_error(StatusCode::kInvalidArgument, "cache device = ", to_string(s.k().device),
                      ": must be the layer's device ", to_string(m.config.options.device));
  if (t.step_open() && (t.step().ragged || t.step().rows != len))
    return make_error(
        StatusCode::kInvalidArgument, "table step: appends ",
        t.step().ragged ? "ragged rows"
                        : qwen3vl::detail::concat(t.step().rows, " tokens a sequence"),
        ": the layer appends L = ", len, " to every sequence (begin_append(", len, "))");
  *past_max = 0;
  for (int64_t b = 0; b < batch; ++b) {
    if (t.length(b) + len > t.capacity())
      return make_error(StatusCode::kInvalidArgument, "cache length of sequence ", b, " = ",
                        t.length(b), " + ", len, " new tokens: exceeds the capacity ",
                        t.capacity());
    *past_max = std::max(*past_max, t.length(b));
  }
  return Status();
}

Status choose_path(const Impl& m, const CacheRef& cache, const TextAttentionInputs& in,
                   bool weights, TextPlan* p) {
  if (!cache || p->past_max == 0) {
    p->path = Path::kFresh;
    return Status();
  }
  if (in.attention_mask.present())
    return make_error(StatusCode::kUnsupported, "attention_mask with ", p->past_max,
                      " past tokens in the cache: padding masks apply to prefill without past "
                      "(append ragged sequences to the cache instead of padding them)");
  if (p->len <= kMaxDecodeRows && !weights && m.decode) {
    p->path = Path::kDecode;
    return Status();
  }
  const KvLayout layout = cache.table->config().layout;
  const DType dtype = cache.storage->k().dtype;
  if (!weights && m.append &&
      (layout != KvLayout::kContiguous || dtype != m.config.options.dtype)) {
    p->path = Path::kAppend;
    return Status();
  }
  if (layout != KvLayout::kContiguous || dtype != m.config.options.dtype)
    return make_error(StatusCode::kUnsupported, "L = ", p->len, weights ? " with attn_weights" : "",
                      " after past tokens in a ", to_string(layout), " ", to_string(dtype),
                      " cache: needs a contiguous cache of the layer's dtype (",
                      to_string(m.config.options.dtype), "), or at most ", kMaxDecodeRows,
                      " new rows without weights");
  p->path = Path::kCachedContiguous;
  return Status();
}

// The workspace, front to back: q/k/v, the attention output, fp32 staging for the projections,
// positions (when the caller gives none), the additive mask, the key lengths (CUDA, after past
// tokens in a contiguous cache), then the kernel's p->kernel.bytes. Carved from `base` (the
// caller's workspace), or only counted, leaving null data in the views: plan_text plans from
// those, and bind runs the same code over the workspace. Wires the views into the RoPE, attention
// and decode params; returns the carver (used(): the bytes taken).
qwen3vl::detail::Carver lay_out(const Impl& m, const TextAttentionInputs& in, void* base,
                                TextPlan* p) {
  const LayerOptions& o = m.config.options;
  const int64_t B = p->batch, L = p->len, D = m.dim();
  qwen3vl::detail::Carver carve = base ? qwen3vl::detail::carve(base) : qwen3vl::detail::Carver();
  const int64_t es = size_of(o.dtype), W = m.qkv_heads() * D;
  char* qkv = carve.take<char>(B * L * W * es);
  p->qkv = TensorView::contiguous(qkv, o.dtype, {B, L, m.qkv_heads(), D}, o.device);
  p->qkv.device_index = o.device_index;
  const auto heads_view = [&](int64_t first, int64_t count) {
    TensorView t = p->qkv;
    t.data = qkv ? qkv + first * D * es : nullptr;
    t.shape[2] = count;
    return t;
  };
  p->q = heads_view(0, m.heads());
  p->k = heads_view(m.heads(), m.kv_heads());
  p->v = heads_view(m.heads() + m.kv_heads(), m.kv_heads());
  p->attn = TensorView::contiguous(carve.take<char>(B * L * m.heads() * D * es), o.dtype,
                                   {B, L, m.heads(), D}, o.device);
  p->attn.device_index = o.device_index;
  const int64_t hq = m.heads() * D;
  const detail::RowsView ar{p->attn.data, o.dtype, B, L, hq, L * hq, hq};
  const size_t scratch = std::max(m.ops->linear_scratch_bytes(detail::rows_of(in.hidden_states), W),
                                  m.ops->linear_scratch_bytes(ar, m.config.hidden_size));
  p->linear_scratch = carve.take<char>(static_cast<int64_t>(scratch));
  p->positions = in.position_ids.present()
                     ? in.position_ids
                     : TensorView::contiguous(carve.take<int32_t>(B * L), DType::kI32, {B, L});
  if (in.attention_mask.present())
    p->additive_mask = TensorView::contiguous(carve.take<float>(B * L), DType::kF32, {B, 1, 1, L});
  if (p->path == Path::kCachedContiguous && o.device != Device::kCPU) {
    p->key_lengths = TensorView::contiguous(carve.take<int32_t>(B), DType::kI32, {B}, o.device);
    p->key_lengths.device_index = o.device_index;
  }
  p->kernel.data = carve.take<char>(static_cast<int64_t>(p->kernel.bytes));

  p->rope.q = p->q;
  p->rope.k = p->k;
  p->rope.positions = p->positions;
  p->rope.table = m.table_view;
  p->rope.arithmetic = m.config.rope_arithmetic;
  AttentionParams& a = p->params;
  a.q = p->q;
  a.out = p->attn;
  a.additive_mask = p->additive_mask;
  if (p->path == Path::kFresh) {
    a.k = p->k;
    a.v = p->v;
  }
  if (p->path == Path::kCachedContiguous) a.key_lengths = p->key_lengths;
  p->decode.q = p->q;
  p->decode.out = p->attn;
  p->decode.integer_qk = o.kv_integer_qk;
  // Append attention takes the new rows packed: [B * L, H, D] over the same memory (a sequence's
  // L rows follow the previous sequence's at the same row stride).
  const auto packed = [&](const TensorView& t) {
    return TensorView::strided(t.data, t.dtype, {B * L, t.shape[2], D},
                               {t.stride[1], t.stride[2], 1}, t.device);
  };
  p->append.q = packed(p->q);
  p->append.out = packed(p->attn);
  return carve;
}

// Checks every argument and plans the call: the path, the kernel's plan (or the step's decode
// plan), the workspace size. Reads no workspace; nothing runs.
Status plan_text(const Impl& m, const TextAttentionInputs& in, const CacheRef& cache,
                 const TextAttentionOutputs& out, TextPlan* p) {
  const LayerOptions& o = m.config.options;
  const TensorView& x = in.hidden_states;
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_present(x, "hidden_states"));
  if (x.rank != 3 || x.shape[0] < 1 || x.shape[1] < 1)
    return make_error(StatusCode::kShapeMismatch, "hidden_states.shape = ", x.shape_string(),
                      ": expected [batch >= 1, seq >= 1, hidden = ", m.config.hidden_size, "]");
  const int64_t B = x.shape[0], L = x.shape[1], D = m.dim();
  QWEN3VL_RETURN_IF_ERROR(
      detail::check_activation(x, "hidden_states", o, {B, L, m.config.hidden_size}));
  QWEN3VL_RETURN_IF_ERROR(
      detail::check_activation(out.output, "output", o, {B, L, m.config.hidden_size}));
  QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_no_self_overlap(out.output, "output"));
  p->batch = B;
  p->len = L;
  if (cache) QWEN3VL_RETURN_IF_ERROR(check_cache(m, cache, B, L, &p->past_max));
  const bool weights = out.attn_weights.present();
  if (weights && !o.need_weights)
    return make_error(StatusCode::kUnsupported,
                      "attn_weights requested from a layer created "
                      "without options.need_weights: create it with need_weights = true "
                      "(the standard variant)");
  QWEN3VL_RETURN_IF_ERROR(choose_path(m, cache, in, weights, p));
  p->keys = p->past_max + L;

  const TensorView& pos = in.position_ids;
  if (pos.present()) {
    if (pos.dtype != DType::kI32 || (pos.rank != 2 && pos.rank != 3))
      return make_error(StatusCode::kInvalidArgument, "position_ids = ", to_string(pos.dtype), " ",
                        pos.shape_string(), ": must be i32 [3, B, L] (t, h, w) or [B, L]");
    if (pos.device != o.device)
      return make_error(StatusCode::kInvalidArgument,
                        "position_ids.device = ", to_string(pos.device),
                        ": must be the layer's device");
  } else if (o.device != Device::kCPU) {
    return make_error(StatusCode::kInvalidArgument,
                      "position_ids absent on CUDA: give them in device memory");
  }
  const TensorView& mask = in.attention_mask;
  if (mask.present() && o.device != Device::kCPU)
    return make_error(StatusCode::kUnsupported,
                      "attention_mask on CUDA: not supported yet (run ragged sequences instead)");
  if (mask.present()) {
    QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_present(mask, "attention_mask"));
    if (mask.dtype != DType::kI32 || mask.device != Device::kCPU)
      return make_error(StatusCode::kInvalidArgument, "attention_mask = ", to_string(mask.dtype),
                        " on ", to_string(mask.device), ": must be i32 in host memory");
    QWEN3VL_RETURN_IF_ERROR(qwen3vl::detail::check_dims(mask, "attention_mask", 2, {B, L}));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < L; ++i) {
        const int32_t keep = mask.ptr<const int32_t>()[mask.offset(b, i)];
        if (keep != 0 && keep != 1)
          return make_error(StatusCode::kInvalidArgument, "attention_mask[", b, ", ", i,
                            "] = ", keep, ": allowed 0 (padding) or 1 (keep)");
      }
  }

  // Views with null data to plan from; the kernel's region comes last, so its offset is what the
  // carver has used before it (its size is planned below).
  const size_t kernel_at = lay_out(m, in, nullptr, p).used();
  rope::RopeApplyShape rope_shape;  // positions: their values are checked at apply
  QWEN3VL_RETURN_IF_ERROR(rope::validate(p->rope, &rope_shape, /*need_data=*/false));

  if (p->path == Path::kAppend) {
    AppendParams& a = p->append;
    a.kv = cache.storage->view(*cache.table);
    a.kv.max_seq_len = std::min(cache.table->capacity(), p->keys);
    p->cu_seqlens.resize(static_cast<size_t>(B + 1));
    for (int64_t b = 0; b <= B; ++b)
      p->cu_seqlens[static_cast<size_t>(b)] = static_cast<int32_t>(b * L);
    a.cu_seqlens = TensorView::contiguous(p->cu_seqlens.data(), DType::kI32, {B + 1});
    QWEN3VL_RETURN_IF_ERROR(m.append->plan(a, &p->append_plan));
    p->kernel.bytes = p->append_plan.workspace_bytes;
  } else if (p->path == Path::kDecode) {
    // CUDA decode reads the table's device mirror (synced once a step), the CPU the host table.
    if (o.device != Device::kCPU && cache.table->mirror() == nullptr)
      return make_error(StatusCode::kInvalidArgument,
                        "cache table: no device mirror for CUDA decode (create the layer storage "
                        "with cuda_kv_storage_ops(), which attaches one)");
    DecodeParams& d = p->decode;
    d.kv = cache.storage->device_view(*cache.table);
    d.kv.max_seq_len = std::min(cache.table->capacity(), p->keys);
    // One decode plan a step: a plan an earlier layer of this step made serves this one when it
    // fits (same shapes and device facts); else this call plans.
    bool found = false;
    if (cache.table->step_open())
      for (const DecodePlan& made : cache.table->step_decode_plans())
        if (m.decode->check_plan(made, d).ok()) {
          p->decode_plan = made;
          found = true;
          break;
        }
    if (!found) {
      QWEN3VL_RETURN_IF_ERROR(m.decode->plan(d, &p->decode_plan));
      if (cache.table->step_open())
        QWEN3VL_RETURN_IF_ERROR(cache.table->remember_step_decode_plan(p->decode_plan));
    }
    p->kernel.bytes = p->decode_plan.workspace_bytes;
  } else {
    AttentionParams& a = p->params;
    a.weights = out.attn_weights;
    a.mask = MaskKind::kCausal;
    if (p->path == Path::kCachedContiguous) {
      // The contiguous storage [B, max_len, Hkv, D], cut to the longest sequence after the append;
      // each sequence's own length after it bounds its keys.
      a.k = cache.storage->k();
      a.v = cache.storage->v();
      a.k.shape[1] = a.v.shape[1] = p->keys;
      p->lengths.resize(static_cast<size_t>(p->batch));
      for (int64_t b = 0; b < p->batch; ++b)
        p->lengths[static_cast<size_t>(b)] = static_cast<int32_t>(cache.table->length(b) + L);
      // Host lengths the plan reads on the CPU; on CUDA a workspace copy (lay_out) filled at run.
      if (o.device == Device::kCPU)
        p->key_lengths = TensorView::contiguous(p->lengths.data(), DType::kI32, {p->batch});
      a.key_lengths = p->key_lengths;
    }
    QWEN3VL_RETURN_IF_ERROR(m.attention->plan(a, &p->attention_plan));
    p->kernel.bytes = p->attention_plan.workspace_bytes;
  }
  p->bytes =
      qwen3vl::detail::align_bytes(kernel_at + p->kernel.bytes) + qwen3vl::detail::kAlignSlack;
  return Status();
}

// The position a sequence's next token takes without position ids: its cache length plus the
// rope delta its prompt left (transformers: cache_position + rope_deltas), on every axis.
int64_t next_position(const CacheRef& cache, int64_t b) {
  return cache ? cache.table->length(b) + cache.table->position_delta(b) : 0;
}

// After appending L tokens with host position ids [3, B, L] or [B, L] (values checked by the RoPE
// apply): delta = highest position so far + 1 - length, so that tokens without position ids
// continue after the highest (transformers' rope_deltas = max(position) + 1 - prompt length).
// Read against the committed lengths and deltas, written into the open step: every layer of the
// step records the same deltas, and commit() publishes them.
Status record_position_deltas(const TensorView& pos, int64_t L, KvPageTable* table) {
  const int64_t axes = pos.rank == 3 ? pos.shape[0] : 1;
  const int32_t* data = pos.ptr<const int32_t>();
  for (int64_t b = 0; b < table->config().batch; ++b) {
    const int64_t before = table->length(b), length = before + L;
    int64_t highest = before > 0 ? before + table->position_delta(b) - 1 : -1;
    for (int64_t a = 0; a < axes; ++a)
      for (int64_t i = 0; i < L; ++i)
        highest = std::max<int64_t>(highest,
                                    data[pos.rank == 3 ? pos.offset(a, b, i) : pos.offset(b, i)]);
    QWEN3VL_RETURN_IF_ERROR(table->set_position_delta(b, highest + 1 - length));
  }
  return Status();
}

// Projections -> QK-norm -> M-RoPE -> the step's rows into this layer's storage -> attention ->
// output projection, over a carved plan.
// open_step: open the table's append step right before this layer writes it (the single-layer
// form: errors of the steps before, such as positions out of the table, come first).
Status run_steps(const Impl& m, const TextAttentionInputs& in, const CacheRef& cache,
                 const TextAttentionOutputs& out, TextPlan& p, void* stream, LayerProfile* profile,
                 bool open_step) {
  const int64_t B = p.batch, L = p.len, D = m.dim();
  detail::StepTimer timer(profile, *m.ops, stream);

  const detail::RowsView qkv_rows{
      p.qkv.data, p.qkv.dtype, B, L, m.qkv_heads() * D, L * m.qkv_heads() * D, m.qkv_heads() * D};
  QWEN3VL_RETURN_IF_ERROR(
      m.ops->linear(detail::rows_of(in.hidden_states), m.qkv, qkv_rows, p.linear_scratch, stream));
  QWEN3VL_RETURN_IF_ERROR(timer.mark(&LayerProfile::projections));

  const float eps = static_cast<float>(m.config.rms_norm_eps);
  QWEN3VL_RETURN_IF_ERROR(m.ops->rms_norm_heads(p.q, m.q_norm, eps, stream));
  QWEN3VL_RETURN_IF_ERROR(m.ops->rms_norm_heads(p.k, m.k_norm, eps, stream));
  if (!in.position_ids.present())  // positions continuing each sequence (host, CPU layer)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < L; ++i)
        p.positions.ptr<int32_t>()[b * L + i] = static_cast<int32_t>(next_position(cache, b) + i);
  QWEN3VL_RETURN_IF_ERROR(m.ops->rope().apply(p.rope, stream));
  QWEN3VL_RETURN_IF_ERROR(timer.mark(&LayerProfile::norm_rope));

  if (cache) {
    // This layer's share of the table's step. Host position ids (CPU) set where each sequence
    // continues; device position ids (CUDA) are not read back: no host sync.
    const bool record = in.position_ids.present() && in.position_ids.device == Device::kCPU;
    if (open_step) QWEN3VL_RETURN_IF_ERROR(cache.table->begin_append(L));
    QWEN3VL_RETURN_IF_ERROR(cache.storage->apply(*cache.table, p.k, p.v, stream));
    if (record) QWEN3VL_RETURN_IF_ERROR(record_position_deltas(in.position_ids, L, cache.table));
  }
  QWEN3VL_RETURN_IF_ERROR(timer.mark(&LayerProfile::cache));

  if (p.path == Path::kDecode) {
    // The step's lengths: host views on the CPU; on CUDA the table's mirror, uploaded by the
    // step's first layer and read by every later one.
    if (m.config.options.device != Device::kCPU)
      QWEN3VL_RETURN_IF_ERROR(cache.table->sync_mirror(stream));
    p.decode.kv = cache.storage->device_view(*cache.table);
    p.decode.kv.max_seq_len = std::min(cache.table->capacity(), p.keys);
    QWEN3VL_RETURN_IF_ERROR(m.decode->run(p.decode_plan, p.decode, p.kernel, stream));
  } else if (p.path == Path::kAppend) {
    p.append.kv = cache.storage->view(*cache.table);  // the step's lengths, new rows included
    p.append.kv.max_seq_len = std::min(cache.table->capacity(), p.keys);
    QWEN3VL_RETURN_IF_ERROR(m.append->run(p.append_plan, p.append, p.kernel));
  } else {
    if (p.additive_mask.present()) {
      const TensorView& mask = in.attention_mask;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < L; ++j)
          p.additive_mask.ptr<float>()[b * L + j] =
              mask.ptr<const int32_t>()[mask.offset(b, j)] != 0 ? 0.0f : -INFINITY;
    }
    if (p.path == Path::kCachedContiguous && m.config.options.device != Device::kCPU)
      QWEN3VL_RETURN_IF_ERROR(m.ops->copy_from_host(p.key_lengths.data, p.lengths.data(),
                                                    static_cast<size_t>(B) * 4, stream));
    QWEN3VL_RETURN_IF_ERROR(m.attention->run(p.attention_plan, p.params, p.kernel, stream));
  }
  QWEN3VL_RETURN_IF_ERROR(timer.mark(&LayerProfile::attention));

  const int64_t hq = m.heads() * D;
  const detail::RowsView attn_rows{p.attn.data, p.attn.dtype, B, L, hq, L * hq, hq};
  QWEN3VL_RETURN_IF_ERROR(
      m.ops->linear(attn_rows, m.o, detail::rows_of(out.output), p.linear_scratch, stream));
  return timer.mark(&LayerProfile::projections);
}

Status check_config(const TextAttentionConfig& c) {
  if (c.hidden_size < 1 || c.num_heads < 1 || c.num_kv_heads < 1 || c.num_heads % c.num_kv_heads)
    return make_error(StatusCode::kInvalidArgument,
                      "config hidden_size, num_heads, num_kv_heads = ", c.hidden_size, ", ",
                      c.num_heads, ", ", c.num_kv_heads,
                      ": allowed positive, with num_kv_heads dividing num_heads");
  if (c.head_dim < 2 || c.head_dim > 256 || c.head_dim % 2)
    return make_error(StatusCode::kInvalidArgument, "config head_dim = ", c.head_dim,
                      ": allowed an even number in 2..256");
  if (!(c.rms_norm_eps > 0.0) || !std::isfinite(c.rms_norm_eps))
    return make_error(StatusCode::kInvalidArgument, "config rms_norm_eps = ", c.rms_norm_eps,
                      ": allowed finite and > 0");
  QWEN3VL_RETURN_IF_ERROR(check_kv_format(c.options.kv_format, c.head_dim, "options.kv_format"));
  if (is_compressed(c.options.kv_format) && c.options.device != Device::kCPU)
    return make_error(StatusCode::kUnsupported,
                      "options.kv_format = ", to_string(c.options.kv_format),
                      ": compressed caches are read on the CPU only");
  return detail::check_options(c.options);
}

}  // namespace

Status Qwen3VLTextAttention::try_create(const TextAttentionConfig& config,
                                        const TextAttentionWeights& w, int layer_idx,
                                        std::unique_ptr<Qwen3VLTextAttention>* out) {
  QWEN3VL_RETURN_IF_ERROR(check_config(config));
  const int64_t H = config.hidden_size, D = config.head_dim;
  const int64_t hq = config.num_heads * D, hkv = config.num_kv_heads * D;
  std::vector<float> qkv, o, q_norm, k_norm;
  QWEN3VL_RETURN_IF_ERROR(detail::append_host_weight(w.q_proj, "weights.q_proj", {hq, H}, &qkv));
  QWEN3VL_RETURN_IF_ERROR(detail::append_host_weight(w.k_proj, "weights.k_proj", {hkv, H}, &qkv));
  QWEN3VL_RETURN_IF_ERROR(detail::append_host_weight(w.v_proj, "weights.v_proj", {hkv, H}, &qkv));
  QWEN3VL_RETURN_IF_ERROR(detail::append_host_weight(w.o_proj, "weights.o_proj", {H, hq}, &o));
  QWEN3VL_RETURN_IF_ERROR(detail::append_host_weight(w.q_norm, "weights.q_norm", {D}, &q_norm));
  QWEN3VL_RETURN_IF_ERROR(detail::append_host_weight(w.k_norm, "weights.k_norm", {D}, &k_norm));

  auto m = std::make_unique<Impl>();
  m->config = config;
  m->layer_idx = layer_idx;
  const LayerOptions& opt = config.options;
  rope::RopeConfig rc;
  rc.head_dim = D;
  rc.theta = config.rope_theta;
  rc.scaling = config.rope_scaling;
  QWEN3VL_RETURN_IF_ERROR(rope::make_text_table(
      rc, config.mrope_layout, config.mrope_section, config.max_position, config.rope_recipe,
      config.rope_table, &m->table, config.rope_inv_freq));
  QWEN3VL_RETURN_IF_ERROR(detail::make_layer_ops(opt, &m->ops));
  QWEN3VL_RETURN_IF_ERROR(m->ops->rope_table(m->table, &m->table_view));

  AttentionConfig ac;
  ac.variant = opt.variant;
  ac.device = opt.device;
  ac.num_heads = static_cast<int>(config.num_heads);
  ac.num_kv_heads = static_cast<int>(config.num_kv_heads);
  ac.head_dim = static_cast<int>(D);
  ac.dtype = opt.dtype;
  ac.mask = MaskKind::kCausal;
  ac.need_weights = opt.need_weights;
  ac.cpu = opt.cpu;
  QWEN3VL_RETURN_IF_ERROR(Selector::try_create(ac, layer_idx, &m->attention));
  if (opt.device == Device::kCPU) {
    QWEN3VL_RETURN_IF_ERROR(create_decode_cpu(opt.cpu, &m->decode));
    QWEN3VL_RETURN_IF_ERROR(create_append_attention_cpu(opt.cpu, &m->append));
  }
#if QWEN3VL_WITH_CUDA
  if (opt.device == Device::kCUDA)
    QWEN3VL_RETURN_IF_ERROR(create_decode_cuda(CudaOptions{opt.device_index}, &m->decode));
#endif

  m->qkv = detail::Linear{nullptr, nullptr, hq + 2 * hkv, H};
  m->o = detail::Linear{nullptr, nullptr, H, hq};
  QWEN3VL_RETURN_IF_ERROR(m->ops->store(qkv, &m->qkv.w));
  QWEN3VL_RETURN_IF_ERROR(m->ops->store(o, &m->o.w));
  QWEN3VL_RETURN_IF_ERROR(m->ops->store(q_norm, &m->q_norm));
  QWEN3VL_RETURN_IF_ERROR(m->ops->store(k_norm, &m->k_norm));
  out->reset(new Qwen3VLTextAttention(std::move(m)));
  return Status();
}

std::unique_ptr<Qwen3VLTextAttention> Qwen3VLTextAttention::create(
    const TextAttentionConfig& config, const TextAttentionWeights& weights, int layer_idx) {
  std::unique_ptr<Qwen3VLTextAttention> out;
  throw_if_error(try_create(config, weights, layer_idx, &out));
  return out;
}

Qwen3VLTextAttention::Qwen3VLTextAttention(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Qwen3VLTextAttention::~Qwen3VLTextAttention() = default;
const TextAttentionConfig& Qwen3VLTextAttention::config() const { return impl_->config; }
int Qwen3VLTextAttention::layer_idx() const { return impl_->layer_idx; }

namespace {

CacheRef cache_ref(const KvCache* cache) {
  if (!cache) return CacheRef{};
  auto* c = const_cast<KvCache*>(cache);  // forward() takes it mutable; the checks only read
  return CacheRef{&c->table(), &c->storage()};
}

// The layer's steps. own_step: the layer opens the table's append step itself and commits it at
// the end (abort on error: the cache is unchanged), as the single-layer KvCache form does; else
// the caller's step is open and the caller commits it after the last layer.
Status run_layer(const Impl& m, const TextAttentionInputs& in, const CacheRef& cache,
                 const TextAttentionOutputs& out, Workspace ws, void* stream, LayerProfile* profile,
                 bool own_step) {
  TextPlan p;
  QWEN3VL_RETURN_IF_ERROR(plan_text(m, in, cache, out, &p));
  if (ws.data == nullptr || ws.bytes < p.bytes)
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ws.data ? "" : " (data = null)", ": need ", p.bytes, " (workspace_size())");
  if (cache && !own_step && !cache.table->step_open())
    return make_error(StatusCode::kInvalidArgument,
                      "table: no open append step (table.begin_append(L) before the layers, "
                      "commit() after the last)");
  lay_out(m, in, ws.data, &p);  // the planned layout over the caller's workspace
  Status st = run_steps(m, in, cache, out, p, stream, profile, own_step);
  if (own_step && cache.table->step_open()) {
    if (!st.ok()) {
      (void)cache.table->abort();
      return st;
    }
    return cache.table->commit();
  }
  return st;
}

}  // namespace

Status Qwen3VLTextAttention::supports(const TextAttentionInputs& in, const KvCache* cache,
                                      const TextAttentionOutputs& out) const {
  TextPlan p;
  return plan_text(*impl_, in, cache_ref(cache), out, &p);
}

size_t Qwen3VLTextAttention::workspace_size(const TextAttentionInputs& in, const KvCache* cache,
                                            const TextAttentionOutputs& out) const {
  TextPlan p;
  return plan_text(*impl_, in, cache_ref(cache), out, &p).ok() ? p.bytes : 0;
}

Status Qwen3VLTextAttention::forward(const TextAttentionInputs& in, KvCache* cache,
                                     const TextAttentionOutputs& out, Workspace ws, void* stream,
                                     LayerProfile* profile) const {
  return run_layer(*impl_, in, cache_ref(cache), out, ws, stream, profile, cache != nullptr);
}

Status Qwen3VLTextAttention::supports(const TextAttentionInputs& in, const KvPageTable* table,
                                      const KvLayerStorage* storage,
                                      const TextAttentionOutputs& out) const {
  TextPlan p;
  return plan_text(*impl_, in, CacheRef{const_cast<KvPageTable*>(table), storage}, out, &p);
}

size_t Qwen3VLTextAttention::workspace_size(const TextAttentionInputs& in, const KvPageTable* table,
                                            const KvLayerStorage* storage,
                                            const TextAttentionOutputs& out) const {
  TextPlan p;
  return plan_text(*impl_, in, CacheRef{const_cast<KvPageTable*>(table), storage}, out, &p).ok()
             ? p.bytes
             : 0;
}

Status Qwen3VLTextAttention::forward(const TextAttentionInputs& in, KvPageTable* table,
                                     const KvLayerStorage* storage, const TextAttentionOutputs& out,
                                     Workspace ws, void* stream, LayerProfile* profile) const {
  return run_layer(*impl_, in, CacheRef{table, storage}, out, ws, stream, profile, false);
}

TextAttentionResult Qwen3VLTextAttention::operator()(const TensorView& hidden_states,
                                                     const TensorView& attention_mask,
                                                     const TensorView& position_ids,
                                                     KvCache* past_key_value) const {
  const Impl& m = *impl_;
  if (m.config.options.device != Device::kCPU)
    throw Error(StatusCode::kUnsupported,
                "the convenience call allocates host memory: on CUDA "
                "size a device workspace and call forward()");
  if (hidden_states.rank != 3)
    throw Error(StatusCode::kShapeMismatch,
                "hidden_states.shape = " + hidden_states.shape_string() +
                    ": expected [batch, seq, hidden]");
  const int64_t B = hidden_states.shape[0], L = hidden_states.shape[1];
  TextAttentionResult r{Tensor(m.config.options.dtype, {B, L, m.config.hidden_size}), Tensor(),
                        past_key_value};
  TextAttentionInputs in{hidden_states, position_ids, attention_mask};
  TextAttentionOutputs out{r.output.view(), {}};
  if (m.config.options.need_weights) {
    int64_t past = 0;
    if (past_key_value)
      for (int32_t len : past_key_value->lengths()) past = std::max<int64_t>(past, len);
    r.attn_weights = Tensor(DType::kF32, {B, m.heads(), L, past + L});
    out.attn_weights = r.attn_weights.view();
  }
  throw_if_error(supports(in, past_key_value, out));
  const qwen3vl::detail::HostWorkspace ws(workspace_size(in, past_key_value, out));
  throw_if_error(forward(in, past_key_value, out, ws.workspace()));
  return r;
}

std::string Qwen3VLTextAttention::describe() const {
  const Impl& m = *impl_;
  const TextAttentionConfig& c = m.config;
  std::string s = qwen3vl::detail::concat(
      "Qwen3VLTextAttention layer ", m.layer_idx, ": hidden ", c.hidden_size, ", Hq/Hkv/D ",
      c.num_heads, "/", c.num_kv_heads, "/", c.head_dim, ", ", to_string(c.options.dtype), ", ",
      to_string(c.mrope_layout), " M-RoPE [", c.mrope_section.t, ", ", c.mrope_section.h, ", ",
      c.mrope_section.w, "] theta ", c.rope_theta, "; attention: ", m.attention->describe());
  if (m.decode) s += "; decode: " + m.decode->describe();
  // The cache is the caller's; its storage default is the precision trap worth naming here.
  if (is_compressed(c.options.kv_format))
    s += qwen3vl::detail::concat("; KV cache: the caller's KvCache in ",
                                 to_string(c.options.kv_format), " (",
                                 kv_code_bytes(c.options.kv_format, c.head_dim) +
                                     2 * kv_scale_count(c.options.kv_format, c.head_dim),
                                 " bytes a token and KV head for K and for V)");
  else
    s += "; KV cache: the caller's KvCache (KvCacheConfig::dtype defaults to f16: ~4e-4 decode "
         "error against ~6e-7 with f32)";
  return s + "; " + m.ops->describe();
}

}  // namespace qwen3vl::layers
