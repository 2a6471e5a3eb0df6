// Mixture-of-heads on the host: per query head, the routed rows are gathered into a packed block,
// run through the head kernel (CPU flash2) as a one-head varlen call, and scattered back times the
// gate; (token, head) pairs nobody routed become 0 in the same pass. Heads of a KV group routed the
// same rows share one call. Calls run one after another, each parallel inside the kernel; the
// workspace holds one call's block at a time.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "../core/as_attention.hpp"
#include "../cpu/cpu_backend.hpp"
#include "head_call.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/moe.hpp"

namespace qwen3vl {
namespace {

using detail::moh::HeadBlock;

// Where each part lives in the caller's workspace (byte offsets from a 64-byte aligned base).
struct HostLayout {
  size_t tokens = 0, weights = 0, counts = 0, q = 0, out = 0, lse = 0, positions = 0, cu_q = 0,
         cu_k = 0, kernel = 0, total = 0;
};

HostLayout host_layout(const AttentionParams& p, const AttentionShape& s, size_t kernel_bytes) {
  using detail::align_up;
  const size_t t = static_cast<size_t>(detail::moh::routing_tokens(p));
  const size_t rows = static_cast<size_t>(detail::moh::call_rows(p));
  const size_t heads = static_cast<size_t>(s.heads);
  const size_t row_bytes = static_cast<size_t>(s.head_dim * size_of(p.q.dtype));
  HostLayout l;
  size_t at = 0;
  const auto take = [&at](size_t bytes) {
    const size_t here = at;
    at += align_up(bytes);
    return here;
  };
  l.tokens = take(heads * t * sizeof(int32_t));  // per head: the tokens routed to it, in order
  l.weights = take(heads * t * sizeof(float));   // and their gates (0: routed, but sees no key)
  l.counts = take(heads * sizeof(int64_t));
  const size_t group = static_cast<size_t>(s.group_size());  // heads one call may hold
  l.q = take(rows * group * row_bytes);
  l.out = take(rows * group * row_bytes);
  l.lse = take(rows * group * sizeof(float));
  l.positions = take(rows * sizeof(int32_t));
  const size_t sequences = static_cast<size_t>(detail::moh::call_sequences(p, s));
  l.cu_q = take((sequences + 1) * sizeof(int32_t));
  l.cu_k = take((sequences + 1) * sizeof(int32_t));
  l.kernel = take(kernel_bytes);
  l.total = at + detail::kSlotAlignment;
  return l;
}

// Key row offsets of the sequences one call covers (fixed-length inputs: b * Lk).
void fill_key_offsets(const AttentionParams& p, const AttentionShape& s, int32_t* cu) {
  const int64_t lk = p.varlen() ? 0 : p.k.shape[1];
  for (int64_t b = 0; b <= detail::moh::call_sequences(p, s); ++b) cu[b] = static_cast<int32_t>(b * lk);
}

class MixtureOfHeadsHost final : public MixtureOfHeadsAttention {
 public:
  MixtureOfHeadsHost(std::unique_ptr<Attention> kernel, const MoHConfig& config)
      : kernel_(std::move(kernel)), config_(config) {}

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
    return std::max(host_layout(p, s, kernel_bytes(p, s)).total, kernel_->workspace_size(p));
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
           std::to_string(config_.routed_heads()) +
           " routed heads; each head's routed rows gathered and run as one-head calls of [" +
           kernel_->describe() + "]";
  }

 private:
  // The head kernel's workspace for a one-head call of this problem (the same for every head).
  size_t kernel_bytes(const AttentionParams& p, const AttentionShape& s) const {
    // Shapes and host index arrays are all workspace_size() reads; the row blocks are not touched.
    static char placeholder;
    std::vector<int32_t> cu(static_cast<size_t>(detail::moh::call_sequences(p, s) + 1), 0);
    std::vector<int32_t> cu_k(cu.size());
    fill_key_offsets(p, s, cu_k.data());
    std::vector<int32_t> positions(static_cast<size_t>(detail::moh::call_rows(p)), 0);
    float lse = 0.0f;
    HeadBlock blk{&placeholder, &placeholder, &lse, positions.data(), cu.data(), cu_k.data(),
                  detail::moh::call_rows(p)};
    size_t bytes = 0;
    for (int64_t heads = 1; heads <= s.group_size(); ++heads)
      bytes = std::max(bytes, kernel_->workspace_size(detail::moh::head_call(p, s, 0, 0, blk, heads)));
    return bytes;
  }

  std::unique_ptr<Attention> kernel_;
  MoHConfig config_;
};

Status MixtureOfHeadsHost::forward(const AttentionParams& p, const HeadRouting& r, Workspace ws,
                                   void* stream) const {
  QWEN3VL_RETURN_IF_ERROR(supports(p, r));
  AttentionShape s;
  QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
  const HostLayout l = host_layout(p, s, kernel_bytes(p, s));
  if (ws.data == nullptr || ws.bytes < l.total)
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ": mixture-of-heads needs ", l.total, " (workspace_size())");
  char* base = reinterpret_cast<char*>(
      (reinterpret_cast<uintptr_t>(ws.data) + detail::kSlotAlignment - 1) &
      ~uintptr_t(detail::kSlotAlignment - 1));
  const int64_t tokens = detail::moh::routing_tokens(p);
  auto* list_tokens = reinterpret_cast<int32_t*>(base + l.tokens);
  auto* list_weights = reinterpret_cast<float*>(base + l.weights);
  auto* counts = reinterpret_cast<int64_t*>(base + l.counts);
  HeadBlock blk{base + l.q, base + l.out, reinterpret_cast<float*>(base + l.lse),
                reinterpret_cast<int32_t*>(base + l.positions), reinterpret_cast<int32_t*>(base + l.cu_q),
                reinterpret_cast<int32_t*>(base + l.cu_k), detail::moh::call_rows(p)};
  const Workspace kernel_ws{base + l.kernel, ws.bytes - static_cast<size_t>(base - static_cast<char*>(ws.data)) - l.kernel};

  // Per-head token lists, in token order (so each head's rows stay sorted by position).
  std::fill(counts, counts + s.heads, int64_t{0});
  const TensorView& idx = r.head_index;
  const TensorView& gate = r.head_weight;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t e = 0; e < idx.shape[1]; ++e) {
      const int32_t h = idx.ptr<const int32_t>()[t * idx.stride[0] + e * idx.stride[1]];
      const float w = gate.ptr<const float>()[t * gate.stride[0] + e * gate.stride[1]];
      if (w == 0.0f) continue;  // a zero gate computes nothing
      list_tokens[h * tokens + counts[h]] = static_cast<int32_t>(t);
      list_weights[h * tokens + counts[h]++] = w;
    }

  // The kernel must take the one-head calls: asked once, before any head runs.
  std::fill(blk.cu_q, blk.cu_q + detail::moh::call_sequences(p, s) + 1, 0);
  std::fill(blk.positions, blk.positions + blk.rows, 0);
  fill_key_offsets(p, s, blk.cu_k);
  QWEN3VL_RETURN_IF_ERROR(kernel_->supports(detail::moh::head_call(p, s, 0, 0, blk)));

  const bool positions = detail::moh::needs_positions(p);
  const size_t row_bytes = static_cast<size_t>(s.head_dim * size_of(p.q.dtype));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t calls = detail::moh::calls_per_head(p, s), group = s.group_size();
  const bool merged = detail::moh::one_call_per_head(p);
  for (int64_t h = 0; h < s.heads;) {
    // Heads of one KV group routed the same rows (shared heads; every head when all are on) run
    // as one call, so flash2 converts each K/V block once for all of them, as in dense attention.
    const int32_t* tok = list_tokens + h * tokens;
    int64_t run = 1;
    while (h + run < s.heads && (h + run) / group == h / group && counts[h + run] == counts[h] &&
           std::equal(tok, tok + counts[h], list_tokens + (h + run) * tokens))
      ++run;
    int64_t e = 0;  // next list entry
    for (int64_t call = 0; call < calls; ++call) {
      const int64_t seq_begin = merged ? 0 : call, seq_end = merged ? s.batch : call + 1;
      // Gather: the rows of these sequences routed to the run that see a key, [rows, run, D].
      const int64_t e_begin = e;
      int64_t rows = 0;
      for (int64_t b = seq_begin; b < seq_end; ++b) {
        const SequenceSpan span = sequence_span(p, b);
        const int64_t t0 = p.varlen() ? span.q_start : b * s.max_q;
        blk.cu_q[b - seq_begin] = static_cast<int32_t>(rows);
        for (; e < counts[h] && tok[e] < t0 + span.q_len; ++e) {
          if (tok[e] < t0) continue;  // a packed row outside every sequence
          const int64_t i = tok[e] - t0;
          const int64_t pos = detail::moh::row_position(p, b, span, i);
          if (!detail::moh::row_sees_keys(p, pos, span.k_len)) {
            for (int64_t j = 0; j < run; ++j) list_weights[(h + j) * tokens + e] = 0.0f;  // output 0
            continue;
          }
          for (int64_t j = 0; j < run; ++j)
            std::memcpy(static_cast<char*>(blk.q) + (rows * run + j) * row_bytes,
                        static_cast<const char*>(p.q.data) +
                            row_offset(p.q, p.varlen(), b, span.q_start, i, h + j) * size_of(p.q.dtype),
                        row_bytes);
          if (positions) blk.positions[rows] = static_cast<int32_t>(std::max<int64_t>(pos, 0));
          ++rows;
        }
      }
      blk.cu_q[seq_end - seq_begin] = static_cast<int32_t>(rows);
      if (rows > 0)
        QWEN3VL_RETURN_IF_ERROR(
            kernel_->forward(detail::moh::head_call(p, s, h, call, blk, run), kernel_ws, stream));

      // Scatter: gate * row for routed rows, 0 (LSE -inf) for every other row of these sequences.
      for (int64_t j = 0; j < run; ++j) {
        const float* wts = list_weights + (h + j) * tokens;
        int64_t f = e_begin, row = 0;
        dispatch_float_dtype(p.out.dtype, [&](auto tag) {
          using T = decltype(tag);
          const T* o = static_cast<const T*>(blk.out);
          for (int64_t b = seq_begin; b < seq_end; ++b) {
            const SequenceSpan span = sequence_span(p, b);
            const int64_t t0 = p.varlen() ? span.q_start : b * s.max_q;
            while (f < e && tok[f] < t0) ++f;
            for (int64_t i = 0; i < span.q_len; ++i) {
              T* dst = p.out.ptr<T>() + row_offset(p.out, p.varlen(), b, span.q_start, i, h + j);
              float w = 0.0f;
              if (f < e && tok[f] == t0 + i) w = wts[f++];
              float row_lse = neg_inf;
              if (w != 0.0f) {
                const T* src = o + (row * run + j) * s.head_dim;
                for (int64_t c = 0; c < s.head_dim; ++c) dst[c] = from_float<T>(w * to_float(src[c]));
                if (p.lse.present()) row_lse = blk.lse[j * blk.rows + row];
                ++row;
              } else {
                for (int64_t c = 0; c < s.head_dim; ++c) dst[c] = from_float<T>(0.0f);
              }
              if (p.lse.present())
                p.lse.ptr<float>()[p.varlen() ? p.lse.offset(h + j, span.q_start + i)
                                              : p.lse.offset(b, h + j, i)] = row_lse;
            }
          }
        });
      }
    }
    h += run;
  }
  return Status();
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
