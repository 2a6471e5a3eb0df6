// CPU decode: plans key splits, runs the per-ISA kernel with oneTBB over (sequence, split,
// KV-head range) and merges the splits' partial results with merge_states' arithmetic. The
// workspace holds the partials, then one scratch slot per thread; nothing is allocated here.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdlib>

#include "../cpu/cpu_backend.hpp"
#include "decode_kernels.hpp"

namespace qwen3vl {

void DecodeAttention::run(const DecodeParams& params) const {
  if (device() != Device::kCPU)
    throw Error(StatusCode::kUnsupported,
                "DecodeAttention::run allocates host memory: on a GPU size a device workspace "
                "with workspace_size() and call forward()");
  throw_if_error(supports(params));
  const size_t bytes = workspace_size(params);
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> buffer(bytes ? std::malloc(bytes) : nullptr);
  if (bytes && !buffer)
    throw Error(StatusCode::kOutOfMemory, detail::concat("workspace of ", bytes, " bytes"));
  throw_if_error(forward(params, Workspace{buffer.get(), bytes}));
}

namespace {

constexpr int64_t kMinSplitKeys = 256;  // fewer keys per split cost more in merging than they save
constexpr int64_t kMaxAutoSplits = 64;

struct Plan {
  int64_t splits = 1;
  int64_t heads_per_task = 1;
  int64_t partial_floats = 0;  // o and lse of every split, when splits > 1
  size_t slot_bytes = 0;
  int64_t head_groups(const DecodeShape& s) const { return s.kv_heads / heads_per_task; }
};

class DecodeCpu final : public DecodeAttention {
 public:
  explicit DecodeCpu(std::unique_ptr<detail::CpuBackend> backend) : backend_(std::move(backend)) {}

  Device device() const override { return Device::kCPU; }

  Status supports(const DecodeParams& p) const override {
    if (p.kv.k.device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "kv.k.device = ", to_string(p.kv.k.device),
                        ": CPU decode needs a host-resident cache");
    return validate(p);
  }

  size_t workspace_size(const DecodeParams& p) const override {
    DecodeShape s;
    if (!supports(p).ok() || !validate(p, &s).ok()) return 0;
    const Plan plan = make_plan(p, s);
    return partial_bytes(plan) + backend_->workspace_bytes(plan.slot_bytes);
  }

  int64_t splits(const DecodeParams& p) const override {
    DecodeShape s;
    return validate(p, &s).ok() ? make_plan(p, s).splits : 1;
  }

  Status forward(const DecodeParams& p, Workspace ws, void* /*stream*/) const override {
    QWEN3VL_RETURN_IF_ERROR(supports(p));
    DecodeShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
    const Plan plan = make_plan(p, s);
    const size_t partial = partial_bytes(plan);
    if (ws.bytes < partial || (partial && !ws.data))
      return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes, ": need ",
                        workspace_size(p), " (workspace_size() for these params)");
    const Workspace slots{static_cast<char*>(ws.data) + partial, ws.bytes - partial};
    QWEN3VL_RETURN_IF_ERROR(backend_->check_workspace(slots, plan.slot_bytes));

    const int64_t rows = s.group_size() * s.rows;
    float* partial_o = static_cast<float*>(ws.data);
    float* partial_lse = partial_o + s.batch * plan.splits * s.kv_heads * rows * s.head_dim;
    const int64_t groups = plan.head_groups(s);
    const int64_t tasks = s.batch * plan.splits * groups;
    const auto kernel = detail::isa_table<detail::DecodeKernels>(backend_->isa()).run_task;

    backend_->arena().execute([&] {
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, tasks, 1),
                        [&](const tbb::blocked_range<int64_t>& range) {
        for (int64_t id = range.begin(); id != range.end(); ++id) {
          detail::DecodeTask t;
          t.params = &p;
          t.shape = s;
          t.b = id / (plan.splits * groups);
          const int64_t split = id / groups % plan.splits, group = id % groups;
          t.kv_head_begin = group * plan.heads_per_task;
          t.kv_head_end = t.kv_head_begin + plan.heads_per_task;
          t.seq_len = p.kv.seq_len(t.b, t.kv_head_begin);
          const int64_t per_split = (t.seq_len + plan.splits - 1) / plan.splits;
          const int64_t chunk = (per_split + 15) / 16 * 16;  // split on 16-key (block) bounds
          t.key_begin = std::min(t.seq_len, split * chunk);
          t.key_end = std::min(t.seq_len, t.key_begin + chunk);
          const int64_t part = t.b * plan.splits + split;
          t.partial_o = plan.splits > 1 ? partial_o + part * s.kv_heads * rows * s.head_dim : nullptr;
          t.partial_lse = plan.splits > 1 ? partial_lse + part * s.kv_heads * rows : nullptr;
          t.scratch = detail::CpuBackend::thread_slot(slots, plan.slot_bytes);
          kernel(t);
        }
      }, tbb::simple_partitioner());
      if (plan.splits > 1) merge(p, s, plan, partial_o, partial_lse);
    });
    return Status();
  }

  std::string describe() const override {
    return "decode (cpu): GQA-packed rows, split-KV over oneTBB, merge_states; " +
           backend_->describe();
  }

 private:
  Plan make_plan(const DecodeParams& p, const DecodeShape& s) const {
    Plan plan;
    // Whole token rows (the cache read in address order), or one head a task where each KV head
    // has its own pages.
    plan.heads_per_task = p.kv.per_head() ? 1 : s.kv_heads;
    if (p.num_splits > 0) {
      plan.splits = p.num_splits;
    } else {
      // Enough tasks for oneTBB to balance (4 per thread), none shorter than kMinSplitKeys.
      const int64_t want = (4 * backend_->threads() + s.batch - 1) / s.batch;
      const int64_t most = std::max<int64_t>(1, s.max_len / kMinSplitKeys);
      plan.splits = std::clamp<int64_t>(std::min(want, most), 1, kMaxAutoSplits);
    }
    const int64_t rows = s.group_size() * s.rows;
    if (plan.splits > 1) plan.partial_floats = s.batch * plan.splits * s.kv_heads * rows * (s.head_dim + 1);
    plan.slot_bytes =
        static_cast<size_t>(detail::decode_scratch_floats(s, plan.heads_per_task)) * sizeof(float);
    return plan;
  }

  static size_t partial_bytes(const Plan& plan) {
    return detail::align_up(static_cast<size_t>(plan.partial_floats) * sizeof(float));
  }

  // out[b, r, h] = the merge of the splits' partials, folded pairwise with merge_weights.
  static void merge(const DecodeParams& p, const DecodeShape& s, const Plan& plan,
                    const float* partial_o, const float* partial_lse) {
    const int64_t rows = s.group_size() * s.rows, d = s.head_dim;
    tbb::parallel_for(int64_t{0}, s.batch * s.kv_heads, [&](int64_t id) {
      const int64_t b = id / s.kv_heads, kvh = id % s.kv_heads;
      float acc[256];
      for (int64_t i = 0; i < rows; ++i) {
        float lse = -INFINITY;
        std::fill(acc, acc + d, 0.0f);
        for (int64_t split = 0; split < plan.splits; ++split) {
          const int64_t part = (b * plan.splits + split) * s.kv_heads + kvh;
          const detail::MergeWeights w = detail::merge_weights(lse, partial_lse[part * rows + i]);
          const float* o = partial_o + (part * rows + i) * d;
          for (int64_t c = 0; c < d; ++c) acc[c] = detail::merge_value(w, acc[c], o[c]);
          lse = w.lse;
        }
        const int64_t qh = kvh * s.group_size() + i / s.rows, r = i % s.rows;
        const int64_t off = p.out.offset(b, r, qh);
        for (int64_t c = 0; c < d; ++c) store_float(p.out, off + c, acc[c]);
        if (p.lse.present()) p.lse.ptr<float>()[p.lse.offset(b, qh, r)] = lse;
      }
    });
  }

  std::unique_ptr<detail::CpuBackend> backend_;
};

}  // namespace

Status create_decode_cpu(const CpuOptions& options, std::unique_ptr<DecodeAttention>* out) {
  std::unique_ptr<detail::CpuBackend> backend;
  QWEN3VL_RETURN_IF_ERROR(detail::CpuBackend::create(options, &backend));
  *out = std::make_unique<DecodeCpu>(std::move(backend));
  return Status();
}

}  // namespace qwen3vl
