// Mixture-of-heads on the host, in passes over every head at once: route (per head, the tokens
// routed to it with a non-zero gate, in token order), gather (per head, the routed rows that see a
// key: their index in the sequence, gate and key position, and per-sequence row offsets, as the
// CUDA driver lays them out), ONE gathered-rows forward of CPU flash2 over every head's rows (one
// task pool of (head run, sequence, row block) tasks that read q and K/V in place and write
// gate x O and LSE in place: src/cpu/flash2/gathered_rows.hpp), and a pass that writes 0 (LSE
// -inf) to every other row. Heads of a KV group routed the same rows form a run, whose tiles
// convert each K/V block once for all of them, as dense flash2 does for a group.
//
// A head kernel other than CPU flash2 (create_mixture_of_heads) cannot take row lists: the gather
// also copies the q rows into per-head blocks ([heads][tokens][D]), each run's blocks go through
// one-head varlen calls (head_call.hpp), and the last pass copies gate x O back.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "../core/as_attention.hpp"
#include "../cpu/cpu_backend.hpp"
#include "../cpu/flash2/gathered_rows.hpp"
#include "head_call.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/moe.hpp"

namespace qwen3vl {
namespace {

using detail::moh::HeadBlock;

// Where each part lives in the caller's workspace (byte offsets from a 64-byte aligned base).
// Per head h, at h * tokens: its routed tokens and gates, then its gathered rows' sequence rows,
// gates and key positions (and, for one-head calls, q/out rows and LSE); per head at
// h * (batch + 1): the first gathered row of each sequence.
struct HostLayout {
  size_t tokens = 0, weights = 0, counts = 0, run_begin = 0, row = 0, row_gate = 0, positions = 0,
         cu_rows = 0, q = 0, out = 0, lse = 0, cu_k = 0, cu_call = 0, kernel = 0, total = 0;
};

// `blocks`: the one-head calls' copies of the rows.
HostLayout host_layout(const AttentionParams& p, const AttentionShape& s, size_t kernel_bytes,
                       bool blocks) {
  using detail::align_up;
  const size_t t = static_cast<size_t>(detail::moh::routing_tokens(p));
  const size_t heads = static_cast<size_t>(s.heads);
  const size_t row_bytes = static_cast<size_t>(s.head_dim * size_of(p.q.dtype));
  const size_t sequences = static_cast<size_t>(s.batch);
  HostLayout l;
  size_t at = 0;
  const auto take = [&at](size_t bytes) {
    const size_t here = at;
    at += align_up(bytes);
    return here;
  };
  l.tokens = take(heads * t * sizeof(int32_t));
  l.weights = take(heads * t * sizeof(float));  // 0: routed, but sees no key
  l.counts = take(heads * sizeof(int64_t));
  l.run_begin = take((heads + 1) * sizeof(int32_t));
  l.row = take(heads * t * sizeof(int32_t));
  l.row_gate = take(heads * t * sizeof(float));
  l.positions = take(detail::moh::needs_positions(p) ? heads * t * sizeof(int32_t) : 0);
  l.cu_rows = take(heads * (sequences + 1) * sizeof(int32_t));
  if (blocks) {
    l.q = take(heads * t * row_bytes);
    l.out = take(heads * t * row_bytes);
    l.lse = take(p.lse.present() ? heads * t * sizeof(float) : 0);
    l.cu_k = take((sequences + 1) * sizeof(int32_t));
    l.cu_call = take(2 * sizeof(int32_t));
  }
  l.kernel = take(kernel_bytes);
  l.total = at + detail::kSlotAlignment;
  return l;
}

// Key row offsets of the sequences one one-head call covers (fixed-length inputs: b * Lk).
void fill_key_offsets(const AttentionParams& p, const AttentionShape& s, int32_t* cu) {
  const int64_t lk = p.varlen() ? 0 : p.k.shape[1];
  for (int64_t b = 0; b <= detail::moh::call_sequences(p, s); ++b) cu[b] = static_cast<int32_t>(b * lk);
}

// The workspace parts of one forward, carved from the caller's workspace (q, out, lse, cu_k and
// cu_call: one-head calls only; null otherwise).
struct HostBlocks {
  int32_t* tokens;
  float* weights;
  int64_t* counts;
  int32_t* run_begin;
  int32_t* row;
  float* row_gate;
  int32_t* positions;
  int32_t* cu_rows;
  char* q;
  char* out;
  float* lse;
  int32_t* cu_k;
  int32_t* cu_call;
  Workspace kernel;
};

class MixtureOfHeadsHost final : public MixtureOfHeadsAttention {
 public:
  MixtureOfHeadsHost(std::unique_ptr<Attention> kernel, const MoHConfig& config)
      : kernel_(std::move(kernel)), config_(config), flash2_(detail::is_flash2_cpu(*kernel_)) {}

  Variant variant() const override { return Variant::kMixtureOfHeads; }
  Device device() const override { return Device::kCPU; }
  const MoHConfig& config() const override { return config_; }

  Status supports(const AttentionParams& p) const override {
    AttentionShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
    if (p.q.device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "q.device = ", to_string(p.q.device),
                        ": the CPU mixture-of-heads variant needs host memory");
    if (s.heads != config_.num_heads)
      return make_error(StatusCode::kShapeMismatch, "q heads = ", s.heads,
                        ": must equal MoHConfig.num_heads = ", config_.num_heads);
    return detail::moh::refuse_unsupported(p);
  }

  Status supports(const AttentionParams& p, const HeadRouting& r) const override {
    QWEN3VL_RETURN_IF_ERROR(supports(p));
    if (r.head_index.present() && r.head_index.device != Device::kCPU)
      return make_error(StatusCode::kInvalidArgument, "routing.head_index.device = ",
                        to_string(r.head_index.device), ": must be host memory like q");
    AttentionShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
    QWEN3VL_RETURN_IF_ERROR(detail::moh::check_window_alignment(p, s));  // gathered rows only
    return validate_head_routing(r, detail::moh::routing_tokens(p), config_.num_heads);
  }

  size_t workspace_size(const AttentionParams& p) const override {
    AttentionShape s;
    if (!supports(p).ok() || !validate(p, &s).ok()) return 0;
    return std::max(host_layout(p, s, kernel_bytes(p, s), !flash2_).total,
                    kernel_->workspace_size(p));
  }

  Status forward(const AttentionParams& p, Workspace ws, void* stream) const override {
    QWEN3VL_RETURN_IF_ERROR(supports(p));
    return kernel_->forward(p, ws, stream);  // every head, gate 1: dense attention
  }

  Status forward(const AttentionParams& p, const HeadRouting& r, Workspace ws,
                 void* stream) const override;

  std::string describe() const override {
    return std::string("mixture-of-heads (cpu): ") + std::to_string(config_.num_shared_heads) +
           " shared + top-" + std::to_string(config_.top_k) + " of " +
           std::to_string(config_.routed_heads()) + " routed heads; each head's routed rows " +
           (flash2_ ? "gathered and run in one gathered-rows pass of ["
                    : "gathered and run as one-head calls of [") +
           kernel_->describe() + "]";
  }

 private:
  // The head kernel's workspace: flash2's gathered pass, or the largest one-head call.
  size_t kernel_bytes(const AttentionParams& p, const AttentionShape& s) const {
    if (flash2_) return detail::flash2_gathered_workspace_size(*kernel_, p);
    // Shapes and host index arrays are all workspace_size() reads; the row blocks are not touched.
    static char placeholder;
    std::vector<int32_t> cu(static_cast<size_t>(detail::moh::call_sequences(p, s) + 1), 0);
    std::vector<int32_t> cu_k(cu.size());
    fill_key_offsets(p, s, cu_k.data());
    std::vector<int32_t> positions(static_cast<size_t>(detail::moh::call_rows(p)), 0);
    float lse = 0.0f;
    HeadBlock blk{&placeholder, &placeholder, &lse, positions.data(), cu.data(), cu_k.data(),
                  detail::moh::call_rows(p), detail::moh::routing_tokens(p)};
    size_t bytes = 0;
    for (int64_t heads = 1; heads <= s.group_size(); ++heads)
      bytes = std::max(bytes, kernel_->workspace_size(detail::moh::head_call(p, s, 0, 0, blk, heads)));
    return bytes;
  }

  // A head kernel other than flash2: per run, one varlen call over its gathered rows (or one per
  // sequence when K/V cannot be read as packed rows).
  Status run_head_calls(const AttentionParams& p, const AttentionShape& s, const HostBlocks& w,
                        int64_t runs, void* stream) const;

  std::unique_ptr<Attention> kernel_;
  MoHConfig config_;
  bool flash2_;  // kernel_ is CPU flash2: one gathered-rows pass for every head
};

Status MixtureOfHeadsHost::run_head_calls(const AttentionParams& p, const AttentionShape& s,
                                          const HostBlocks& w, int64_t runs, void* stream) const {
  const int64_t tokens = detail::moh::routing_tokens(p);
  const size_t row_bytes = static_cast<size_t>(s.head_dim * size_of(p.q.dtype));
  const bool merged = detail::moh::one_call_per_head(p);
  fill_key_offsets(p, s, w.cu_k);
  for (int64_t run = 0; run < runs; ++run) {
    const int64_t h = w.run_begin[run], heads = w.run_begin[run + 1] - h;
    const int32_t* cu = w.cu_rows + h * (s.batch + 1);
    for (int64_t call = 0; call < detail::moh::calls_per_head(p, s); ++call) {
      const int64_t first = merged ? 0 : cu[call];
      const int64_t rows = (merged ? cu[s.batch] : cu[call + 1]) - first;
      if (rows == 0) continue;
      w.cu_call[0] = 0;
      w.cu_call[1] = static_cast<int32_t>(rows);
      const int64_t at = h * tokens + first;  // the run's first head's first row of the call
      HeadBlock blk;
      blk.q = w.q + static_cast<size_t>(at) * row_bytes;
      blk.out = w.out + static_cast<size_t>(at) * row_bytes;
      blk.lse = w.lse ? w.lse + at : nullptr;
      blk.positions = w.positions ? w.positions + at : nullptr;
      blk.cu_q = merged ? cu : w.cu_call;
      blk.cu_k = w.cu_k;
      blk.rows = rows;
      blk.head_stride = tokens;
      QWEN3VL_RETURN_IF_ERROR(
          kernel_->forward(detail::moh::head_call(p, s, h, call, blk, heads), w.kernel, stream));
    }
  }
  return Status();
}

Status MixtureOfHeadsHost::forward(const AttentionParams& p, const HeadRouting& r, Workspace ws,
                                   void* stream) const {
  QWEN3VL_RETURN_IF_ERROR(supports(p, r));
  AttentionShape s;
  QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
  const HostLayout l = host_layout(p, s, kernel_bytes(p, s), !flash2_);
  if (ws.data == nullptr || ws.bytes < l.total)
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ": mixture-of-heads needs ", l.total, " (workspace_size())");
  char* base = reinterpret_cast<char*>(
      (reinterpret_cast<uintptr_t>(ws.data) + detail::kSlotAlignment - 1) &
      ~uintptr_t(detail::kSlotAlignment - 1));
  const size_t used = static_cast<size_t>(base - static_cast<char*>(ws.data)) + l.kernel;
  const bool blocks = !flash2_;
  const HostBlocks w{reinterpret_cast<int32_t*>(base + l.tokens),
                     reinterpret_cast<float*>(base + l.weights),
                     reinterpret_cast<int64_t*>(base + l.counts),
                     reinterpret_cast<int32_t*>(base + l.run_begin),
                     reinterpret_cast<int32_t*>(base + l.row),
                     reinterpret_cast<float*>(base + l.row_gate),
                     detail::moh::needs_positions(p) ? reinterpret_cast<int32_t*>(base + l.positions)
                                                     : nullptr,
                     reinterpret_cast<int32_t*>(base + l.cu_rows),
                     blocks ? base + l.q : nullptr,
                     blocks ? base + l.out : nullptr,
                     blocks && p.lse.present() ? reinterpret_cast<float*>(base + l.lse) : nullptr,
                     blocks ? reinterpret_cast<int32_t*>(base + l.cu_k) : nullptr,
                     blocks ? reinterpret_cast<int32_t*>(base + l.cu_call) : nullptr,
                     Workspace{base + l.kernel, ws.bytes - used}};
  const int64_t tokens = detail::moh::routing_tokens(p);
  const size_t row_bytes = static_cast<size_t>(s.head_dim * size_of(p.q.dtype));

  // Route: per-head token lists, in token order (so each head's rows stay sorted by position).
  std::fill(w.counts, w.counts + s.heads, int64_t{0});
  const TensorView& idx = r.head_index;
  const TensorView& gate = r.head_weight;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t e = 0; e < idx.shape[1]; ++e) {
      const int32_t h = idx.ptr<const int32_t>()[t * idx.stride[0] + e * idx.stride[1]];
      const float g = gate.ptr<const float>()[t * gate.stride[0] + e * gate.stride[1]];
      if (g == 0.0f) continue;  // a zero gate computes nothing
      w.tokens[h * tokens + w.counts[h]] = static_cast<int32_t>(t);
      w.weights[h * tokens + w.counts[h]++] = g;
    }

  // Gather: head h's routed rows that see a key, sequence by sequence.
  for (int64_t h = 0; h < s.heads; ++h) {
    const int32_t* tok = w.tokens + h * tokens;
    float* wts = w.weights + h * tokens;
    int32_t* cu = w.cu_rows + h * (s.batch + 1);
    int64_t e = 0, rows = 0;
    for (int64_t b = 0; b < s.batch; ++b) {
      const SequenceSpan span = sequence_span(p, b);
      const int64_t t0 = p.varlen() ? span.q_start : b * s.max_q;
      cu[b] = static_cast<int32_t>(rows);
      for (; e < w.counts[h] && tok[e] < t0 + span.q_len; ++e) {
        if (tok[e] < t0) continue;  // a packed row outside every sequence
        const int64_t i = tok[e] - t0;
        const int64_t pos = detail::moh::row_position(p, b, span, i);
        if (!detail::moh::row_sees_keys(p, pos, span.k_len)) {
          wts[e] = 0.0f;  // output 0
          continue;
        }
        const int64_t at = h * tokens + rows++;
        w.row[at] = static_cast<int32_t>(i);
        w.row_gate[at] = wts[e];
        if (w.positions) w.positions[at] = static_cast<int32_t>(std::max<int64_t>(pos, 0));
        if (blocks)
          std::memcpy(w.q + static_cast<size_t>(at) * row_bytes,
                      static_cast<const char*>(p.q.data) +
                          row_offset(p.q, p.varlen(), b, span.q_start, i, h) * size_of(p.q.dtype),
                      row_bytes);
      }
    }
    cu[s.batch] = static_cast<int32_t>(rows);
  }

  // Runs: heads of one KV group routed the same rows (shared heads; every head when all are on).
  int64_t runs = 0;
  for (int64_t h = 0; h < s.heads; ++runs) {
    w.run_begin[runs] = static_cast<int32_t>(h);
    const int32_t* tok = w.tokens + h * tokens;
    int64_t n = 1;
    while (h + n < s.heads && (h + n) / s.group_size() == h / s.group_size() &&
           w.counts[h + n] == w.counts[h] &&
           std::equal(tok, tok + w.counts[h], w.tokens + (h + n) * tokens))
      ++n;
    h += n;
  }
  w.run_begin[runs] = static_cast<int32_t>(s.heads);

  if (flash2_) {
    detail::Flash2GatheredRows g;
    g.row = w.row;
    g.gate = w.row_gate;
    g.positions = w.positions;
    g.cu_rows = w.cu_rows;
    g.rows = tokens;
    g.run_begin = w.run_begin;
    g.runs = runs;
    QWEN3VL_RETURN_IF_ERROR(detail::flash2_forward_gathered(*kernel_, p, g, w.kernel));
  } else {
    QWEN3VL_RETURN_IF_ERROR(run_head_calls(p, s, w, runs, stream));
  }

  // Every other row: 0 and LSE -inf (flash2 wrote the gathered rows); after one-head calls,
  // gate * O and LSE of the gathered rows from their blocks too.
  const float neg_inf = -std::numeric_limits<float>::infinity();
  return dispatch_float_dtype(p.out.dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t h = 0; h < s.heads; ++h) {
      const int32_t* tok = w.tokens + h * tokens;
      const float* wts = w.weights + h * tokens;
      int64_t f = 0, row = h * tokens;
      for (int64_t b = 0; b < s.batch; ++b) {
        const SequenceSpan span = sequence_span(p, b);
        const int64_t t0 = p.varlen() ? span.q_start : b * s.max_q;
        while (f < w.counts[h] && tok[f] < t0) ++f;
        for (int64_t i = 0; i < span.q_len; ++i) {
          const bool gathered = f < w.counts[h] && tok[f] == t0 + i && wts[f++] != 0.0f;
          if (gathered && !blocks) continue;
          T* dst = p.out.ptr<T>() + row_offset(p.out, p.varlen(), b, span.q_start, i, h);
          float row_lse = neg_inf;
          if (gathered) {
            const T* src = reinterpret_cast<const T*>(w.out) + row * s.head_dim;
            for (int64_t c = 0; c < s.head_dim; ++c)
              dst[c] = from_float<T>(w.row_gate[row] * to_float(src[c]));
            if (w.lse) row_lse = w.lse[row];
            ++row;
          } else {
            for (int64_t c = 0; c < s.head_dim; ++c) dst[c] = from_float<T>(0.0f);
          }
          if (p.lse.present())
            p.lse.ptr<float>()[p.varlen() ? p.lse.offset(h, span.q_start + i)
                                          : p.lse.offset(b, h, i)] = row_lse;
        }
      }
    }
    return Status();
  });
}

}  // namespace

void MixtureOfHeadsAttention::run(const AttentionParams& p, const HeadRouting& r) const {
  throw_if_error(supports(p, r));
  std::vector<unsigned char> scratch(workspace_size(p));
  throw_if_error(forward(p, r, Workspace{scratch.data(), scratch.size()}));
}

Status create_mixture_of_heads(std::unique_ptr<Attention> head_kernel, const MoHConfig& config,
                               std::unique_ptr<MixtureOfHeadsAttention>* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null: must point to a unique_ptr");
  QWEN3VL_RETURN_IF_ERROR(validate_moh_config(config));
  if (!head_kernel || head_kernel->device() != Device::kCPU)
    return make_error(StatusCode::kInvalidArgument, "head_kernel = ",
                      head_kernel ? to_string(head_kernel->device()) : "null",
                      ": must be a host (CPU) attention object");
  *out = std::make_unique<MixtureOfHeadsHost>(std::move(head_kernel), config);
  return Status();
}

Status create_mixture_of_heads_cpu(const CpuOptions& options, const MoHConfig& config,
                                   std::unique_ptr<MixtureOfHeadsAttention>* out) {
  std::unique_ptr<Attention> flash;
  QWEN3VL_RETURN_IF_ERROR(create_flash2_cpu(options, &flash));
  return create_mixture_of_heads(std::move(flash), config, out);
}

Status create_mixture_of_heads_cpu(const CpuOptions& options, const MoHConfig& config,
                                   std::unique_ptr<Attention>* out) {
  return detail::create_as_attention<MixtureOfHeadsAttention>(
      out, [&](auto* made) { return create_mixture_of_heads_cpu(options, config, made); });
}

}  // namespace qwen3vl
