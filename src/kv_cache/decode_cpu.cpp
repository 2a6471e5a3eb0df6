// CPU decode: plans key splits (DecodeAttention::plan), runs the per-ISA kernel with oneTBB over
// (sequence, split, KV-head range) and merges the splits' partial results with merge_states'
// arithmetic. The workspace holds the partials, then one scratch slot per thread; nothing is
// allocated here.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "decode_kernels.hpp"
#include "src/cpu/cpu_backend.hpp"

namespace qwen3vl {

namespace {

constexpr int64_t kMinSplitKeys = 256;  // fewer keys per split cost more in merging than they save
constexpr int64_t kMaxAutoSplits = 64;

// The CPU's share of a DecodePlan: what plan.splits and the shape imply.
struct Layout {
  int64_t splits = 1;
  int64_t heads_per_task = 1;
  int64_t partial_floats = 0;  // o and lse of every split, when splits > 1
  size_t slot_bytes = 0;
  int64_t head_groups(const DecodeShape& s) const { return s.kv_heads / heads_per_task; }
};

// Whole token rows (the cache read in address order), or one head a task where each KV head has
// its own pages.
Layout layout_of(const DecodeShape& s, int64_t splits, bool per_head) {
  Layout l;
  l.splits = splits;
  l.heads_per_task = per_head ? 1 : s.kv_heads;
  const int64_t rows = s.group_size() * s.rows;
  if (splits > 1) l.partial_floats = s.batch * splits * s.kv_heads * rows * (s.head_dim + 1);
  l.slot_bytes =
      static_cast<size_t>(detail::decode_scratch_floats(s, l.heads_per_task)) * sizeof(float);
  return l;
}

size_t partial_bytes(const Layout& l) {
  return detail::align_up(static_cast<size_t>(l.partial_floats) * sizeof(float));
}

class DecodeCpu final : public DecodeAttention {
 public:
  DecodeCpu(std::unique_ptr<detail::CpuBackend> backend, const CpuInfo& cpu)
      : backend_(std::move(backend)),
        vnni_(backend_->isa() == CpuIsa::kAvx512 && cpu.avx512_vnni) {}

  Device device() const override { return Device::kCPU; }

  std::string describe() const override {
    return std::string("decode (cpu): GQA-packed rows, split-KV over oneTBB, merge_states") +
           (vnni_ ? ", int8 Q.K on avx512-vnni; " : "; ") + backend_->describe();
  }

 protected:
  uint64_t facts() const override {
    // Threads decide the split count and the workspace's thread slots; the ISA the kernel.
    return (static_cast<uint64_t>(backend_->threads()) << 8 |
            static_cast<uint64_t>(backend_->isa())) +
           1;
  }

  Status check_device(const DecodeParams& p) const override {
    if (p.kv.k.device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "kv.k.device = ", to_string(p.kv.k.device),
                        ": CPU decode needs a host-resident cache");
    return Status();
  }

  Status make_plan(const DecodeParams& p, DecodePlan* plan) const override {
    const DecodeShape& s = plan->shape;
    int64_t splits = p.num_splits;
    if (splits == 0) {
      // Enough tasks for oneTBB to balance (4 per thread), none shorter than kMinSplitKeys.
      const int64_t want = (4 * backend_->threads() + s.batch - 1) / s.batch;
      const int64_t most = std::max<int64_t>(1, s.max_len / kMinSplitKeys);
      splits = std::clamp<int64_t>(std::min(want, most), 1, kMaxAutoSplits);
    }
    const Layout l = layout_of(s, splits, p.kv.per_head());
    plan->splits = splits;
    plan->workspace_bytes = partial_bytes(l) + backend_->workspace_bytes(l.slot_bytes);
    plan->reason = detail::concat("cpu decode: ", splits, splits == 1 ? " split" : " key splits",
                                  " (keys <= ", s.max_len, ", ", backend_->threads(), " threads), ",
                                  l.heads_per_task, " KV head(s) a task, ", plan->workspace_bytes,
                                  " workspace bytes");
    return Status();
  }

  Status launch(const DecodePlan& plan, const DecodeParams& p, Workspace ws, void*) const override {
    const DecodeShape& s = plan.shape;
    const Layout l = layout_of(s, plan.splits, p.kv.per_head());
    const size_t partial = partial_bytes(l);
    const Workspace slots{static_cast<char*>(ws.data) + partial, ws.bytes - partial};
    QWEN3VL_RETURN_IF_ERROR(backend_->check_workspace(slots, l.slot_bytes));

    const int64_t rows = s.group_size() * s.rows;
    float* partial_o = static_cast<float*>(ws.data);
    float* partial_lse = partial_o + s.batch * l.splits * s.kv_heads * rows * s.head_dim;
    const int64_t groups = l.head_groups(s);
    const int64_t tasks = s.batch * l.splits * groups;
    const auto kernel = detail::isa_table<detail::DecodeKernels>(backend_->isa()).run_task;

    backend_->arena().execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, tasks, 1),
          [&](const tbb::blocked_range<int64_t>& range) {
            for (int64_t id = range.begin(); id != range.end(); ++id) {
              detail::DecodeTask t;
              t.params = &p;
              t.shape = s;
              t.b = id / (l.splits * groups);
              const int64_t split = id / groups % l.splits, group = id % groups;
              t.kv_head_begin = group * l.heads_per_task;
              t.kv_head_end = t.kv_head_begin + l.heads_per_task;
              t.seq_len = p.kv.seq_len(t.b, t.kv_head_begin);
              const int64_t per_split = (t.seq_len + l.splits - 1) / l.splits;
              const int64_t chunk = (per_split + 15) / 16 * 16;  // split on 16-key (block) bounds
              t.key_begin = std::min(t.seq_len, split * chunk);
              t.key_end = std::min(t.seq_len, t.key_begin + chunk);
              const int64_t part = t.b * l.splits + split;
              t.partial_o =
                  l.splits > 1 ? partial_o + part * s.kv_heads * rows * s.head_dim : nullptr;
              t.partial_lse = l.splits > 1 ? partial_lse + part * s.kv_heads * rows : nullptr;
              t.scratch = detail::CpuBackend::thread_slot(slots, l.slot_bytes);
              t.vnni = vnni_;
              kernel(t);
            }
          },
          tbb::simple_partitioner());
      if (l.splits > 1) merge(p, s, l, partial_o, partial_lse);
    });
    return Status();
  }

 private:
  // out[b, r, h] = the merge of the splits' partials, folded pairwise with merge_weights.
  static void merge(const DecodeParams& p, const DecodeShape& s, const Layout& plan,
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
  bool vnni_ = false;  // the AVX-512 kernel may use AVX512-VNNI (DecodeTask::vnni)
};

}  // namespace

Status create_decode_cpu(const CpuOptions& options, std::unique_ptr<DecodeAttention>* out) {
  std::unique_ptr<detail::CpuBackend> backend;
  QWEN3VL_RETURN_IF_ERROR(detail::CpuBackend::create(options, &backend));
  const CpuInfo& cpu = options.cpu_info ? *options.cpu_info : CpuInfo::current();
  *out = std::make_unique<DecodeCpu>(std::move(backend), cpu);
  return Status();
}

}  // namespace qwen3vl
