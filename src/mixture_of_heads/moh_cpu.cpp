// Mixture-of-heads on the host, in passes over every head at once: route (per head, the tokens
// routed to it with a non-zero gate, in token order), gather (per head, the routed rows that see a
// key: their index in the sequence, gate and key position, and per-sequence row offsets, as the
// CUDA driver lays them out), ONE gathered-rows forward of CPU flash2 over every head's rows (one
// task pool of (head run, sequence, row block) tasks that read q and K/V in place and write
// gate x O and LSE in place: src/flash/gathered_rows.hpp), and a pass that writes 0 (LSE
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

#include "head_call.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/mixture_of_heads.hpp"
#include "src/core/as_attention.hpp"
#include "src/core/workspace_carver.hpp"
#include "src/cpu/cpu_backend.hpp"
#include "src/flash/gathered_rows.hpp"

namespace qwen3vl {
namespace {

using detail::moh::HeadBlock;

// The workspace parts of one routed forward (q, out, lse, cu_k and cu_call: one-head calls only;
// null otherwise), then the head kernel's workspace (the rest of the caller's buffer).
struct HostBlocks {
  int32_t* tokens = nullptr;
  float* weights = nullptr;  // 0: routed, but sees no key
  int64_t* counts = nullptr;
  int32_t* run_begin = nullptr;
  int32_t* row = nullptr;
  float* row_gate = nullptr;
  int32_t* positions = nullptr;
  int32_t* cu_rows = nullptr;
  char* q = nullptr;
  char* out = nullptr;
  float* lse = nullptr;
  int32_t* cu_k = nullptr;
  int32_t* cu_call = nullptr;
  char* kernel = nullptr;
};

// Lays the parts out with `c` (a counting carver sizes them, plan(); a carver over the workspace
// places them, run()). Per head h, at h * tokens: its routed tokens and gates, then its gathered
// rows' sequence rows, gates and key positions (and, for one-head calls, q/out rows and LSE); per
// head at h * (batch + 1): the first gathered row of each sequence. `blocks`: the one-head calls'
// copies of the rows.
HostBlocks carve_host(detail::Carver& c, const AttentionParams& p, const AttentionShape& s,
                      size_t kernel_bytes, bool blocks) {
  const int64_t t = detail::moh::routing_tokens(p);
  const int64_t heads = s.heads;
  const int64_t row_bytes = s.head_dim * static_cast<int64_t>(size_of(p.q.dtype));
  const int64_t sequences = s.batch;
  HostBlocks w;
  w.tokens = c.take<int32_t>(heads * t);
  w.weights = c.take<float>(heads * t);
  w.counts = c.take<int64_t>(heads);
  w.run_begin = c.take<int32_t>(heads + 1);
  w.row = c.take<int32_t>(heads * t);
  w.row_gate = c.take<float>(heads * t);
  if (detail::moh::needs_positions(p)) w.positions = c.take<int32_t>(heads * t);
  w.cu_rows = c.take<int32_t>(heads * (sequences + 1));
  if (blocks) {
    w.q = c.take<char>(heads * t * row_bytes);
    w.out = c.take<char>(heads * t * row_bytes);
    if (p.lse.present()) w.lse = c.take<float>(heads * t);
    w.cu_k = c.take<int32_t>(sequences + 1);
    w.cu_call = c.take<int32_t>(2);
  }
  w.kernel = c.take<char>(static_cast<int64_t>(kernel_bytes));
  return w;
}

// Key row offsets of the sequences one one-head call covers (fixed-length inputs: b * Lk).
void fill_key_offsets(const AttentionParams& p, const AttentionShape& s, int32_t* cu) {
  const int64_t lk = p.varlen() ? 0 : p.k.shape[1];
  for (int64_t b = 0; b <= detail::moh::call_sequences(p, s); ++b)
    cu[b] = static_cast<int32_t>(b * lk);
}

class MixtureOfHeadsHost final : public MixtureOfHeadsAttention {
 public:
  MixtureOfHeadsHost(std::unique_ptr<Attention> kernel, const MoHConfig& config)
      : kernel_(std::move(kernel)), config_(config), flash2_(detail::is_flash2_cpu(*kernel_)) {}

  Variant variant() const override { return Variant::kMixtureOfHeads; }
  Device device() const override { return Device::kCPU; }
  const MoHConfig& config() const override { return config_; }

  Status run(const AttentionPlan& plan, const AttentionParams& p, const HeadRouting& r,
             Workspace ws, void* stream) const override;

  // What a plan of this object holds: the head kernel's plan of the problem (dense forward), and
  // for routed calls flash2's gathered-rows plan (flash2 kernels) or the largest one-head call's
  // workspace, and the routed calls' workspace.
  struct Planned {
    Status
        dense_status;  // the head kernel may refuse the dense problem: only forward(params) fails
    AttentionPlan dense;
    AttentionPlan gathered;
    size_t kernel_bytes = 0;
    size_t routed_bytes = 0;
  };

 protected:
  std::string description() const override {
    return std::string("mixture-of-heads (cpu): ") + std::to_string(config_.num_shared_heads) +
           " shared + top-" + std::to_string(config_.top_k) + " of " +
           std::to_string(config_.routed_heads()) + " routed heads; each head's routed rows " +
           (flash2_ ? "gathered and run in one gathered-rows pass of ["
                    : "gathered and run as one-head calls of [") +
           kernel_->describe() + "]";
  }

  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    const AttentionShape& s = plan->shape;
    if (p.q.device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "q.device = ", to_string(p.q.device),
                        ": the CPU mixture-of-heads variant needs host memory");
    if (s.heads != config_.num_heads)
      return make_error(StatusCode::kShapeMismatch, "q heads = ", s.heads,
                        ": must equal MoHConfig.num_heads = ", config_.num_heads);
    QWEN3VL_RETURN_IF_ERROR(detail::moh::refuse_unsupported(p));
    auto planned = std::make_shared<Planned>();
    planned->dense_status = plan_part(*kernel_, p, s, &planned->dense);
    if (flash2_) {
      QWEN3VL_RETURN_IF_ERROR(detail::flash2_plan_gathered(*kernel_, s, &planned->gathered));
      planned->kernel_bytes = planned->gathered.workspace_bytes;
    } else {
      planned->kernel_bytes = head_call_bytes(p, s);
    }
    detail::Carver sizing;
    carve_host(sizing, p, s, planned->kernel_bytes, !flash2_);
    planned->routed_bytes = sizing.used() + detail::kAlignSlack;
    plan->workspace_bytes = std::max(
        planned->routed_bytes, planned->dense_status.ok() ? planned->dense.workspace_bytes : 0);
    if (plan->with_reason) plan->reason = description();
    plan->data = std::move(planned);
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* stream) const override {
    // every head, gate 1: dense attention
    const Planned& planned = *static_cast<const Planned*>(plan.data.get());
    QWEN3VL_RETURN_IF_ERROR(planned.dense_status);
    if (ws.bytes < planned.dense.workspace_bytes)
      return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes, ": need ",
                        planned.dense.workspace_bytes, " (workspace_size() for these params)");
    return launch_part(*kernel_, planned.dense, p, ws, stream);
  }

  Status check_routing(const AttentionPlan& plan, const AttentionParams& p,
                       const HeadRouting& r) const override {
    if (r.head_index.present() && r.head_index.device != Device::kCPU)
      return make_error(StatusCode::kInvalidArgument,
                        "routing.head_index.device = ", to_string(r.head_index.device),
                        ": must be host memory like q");
    QWEN3VL_RETURN_IF_ERROR(
        detail::moh::check_window_alignment(p, plan.shape));  // gathered rows only
    return validate_head_routing(r, detail::moh::routing_tokens(p), config_.num_heads);
  }

 private:
  // The largest one-head call's workspace (a head kernel other than flash2), planned from the
  // calls' shapes: the row blocks have no memory yet, their index arrays are real.
  size_t head_call_bytes(const AttentionParams& p, const AttentionShape& s) const {
    std::vector<int32_t> cu(static_cast<size_t>(detail::moh::call_sequences(p, s) + 1), 0);
    std::vector<int32_t> cu_k(cu.size());
    fill_key_offsets(p, s, cu_k.data());
    std::vector<int32_t> positions(static_cast<size_t>(detail::moh::call_rows(p)), 0);
    HeadBlock blk{nullptr,
                  nullptr,
                  nullptr,
                  positions.data(),
                  cu.data(),
                  cu_k.data(),
                  detail::moh::call_rows(p),
                  detail::moh::routing_tokens(p)};
    size_t bytes = 0;
    for (int64_t heads = 1; heads <= s.group_size(); ++heads)
      bytes =
          std::max(bytes, kernel_->workspace_size(detail::moh::head_call(p, s, 0, 0, blk, heads)));
    return bytes;
  }

  // A head kernel other than flash2: per run, one varlen call over its gathered rows (or one per
  // sequence when K/V cannot be read as packed rows).
  Status run_head_calls(const AttentionParams& p, const AttentionShape& s, const HostBlocks& w,
                        int64_t runs, Workspace kernel_ws, void* stream) const;

  std::unique_ptr<Attention> kernel_;
  MoHConfig config_;
  bool flash2_;  // kernel_ is CPU flash2: one gathered-rows pass for every head
};

Status MixtureOfHeadsHost::run_head_calls(const AttentionParams& p, const AttentionShape& s,
                                          const HostBlocks& w, int64_t runs, Workspace kernel_ws,
                                          void* stream) const {
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
          kernel_->forward(detail::moh::head_call(p, s, h, call, blk, heads), kernel_ws, stream));
    }
  }
  return Status();
}

Status MixtureOfHeadsHost::run(const AttentionPlan& plan, const AttentionParams& p,
                               const HeadRouting& r, Workspace ws, void* stream) const {
  QWEN3VL_RETURN_IF_ERROR(check_run(plan, p, ws));
  QWEN3VL_RETURN_IF_ERROR(check_routing(plan, p, r));
  const AttentionShape& s = plan.shape;
  const Planned& planned = *static_cast<const Planned*>(plan.data.get());
  if (ws.data == nullptr || ws.bytes < planned.routed_bytes)
    return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                      ": mixture-of-heads needs ", planned.routed_bytes, " (workspace_size())");
  detail::Carver carver = detail::carve(ws.data);
  const bool blocks = !flash2_;
  const HostBlocks w = carve_host(carver, p, s, planned.kernel_bytes, blocks);
  const Workspace kernel_ws{w.kernel,
                            ws.bytes - static_cast<size_t>(w.kernel - static_cast<char*>(ws.data))};
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
    QWEN3VL_RETURN_IF_ERROR(
        detail::flash2_run_gathered(*kernel_, planned.gathered, p, g, kernel_ws));
  } else {
    QWEN3VL_RETURN_IF_ERROR(run_head_calls(p, s, w, runs, kernel_ws, stream));
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

Status create_mixture_of_heads(std::unique_ptr<Attention> head_kernel, const MoHConfig& config,
                               std::unique_ptr<MixtureOfHeadsAttention>* out) {
  if (out == nullptr)
    return make_error(StatusCode::kNullPointer, "out = null: must point to a unique_ptr");
  QWEN3VL_RETURN_IF_ERROR(validate_moh_config(config));
  if (!head_kernel || head_kernel->device() != Device::kCPU)
    return make_error(StatusCode::kInvalidArgument,
                      "head_kernel = ", head_kernel ? to_string(head_kernel->device()) : "null",
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
