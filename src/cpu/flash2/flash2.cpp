// FlashAttention-2 on the CPU: validation, the ISA's tile plan, per-thread workspace slots and the
// task schedule; the tile math is in flash2_kernel.inl, compiled once per ISA.
//
// Tasks are (KV head, sequence, query block): each computes every query head of its group, so a
// K/V block is converted once for G heads. Workers pull tasks from one atomic counter, KV head by
// KV head, so the threads share one head's K/V in the caches (4 MB at N 4096, D 128, fp32: an L3
// holds it, not all heads'); under causal masks the query blocks of a sequence come in order of
// decreasing cost (later blocks see more keys), so short tasks fill the gaps at the end. Every task
// writes disjoint output rows with a fixed order of operations, so the result does not depend on
// the thread count.
//
// Query positions (q_positions) only change the rows' key ranges. A block-sparse layout cuts each
// sequence into its row blocks first (tasks never cross one), and each task walks the key
// intervals its row block lists instead of the hull of its rows' keys.
#include <algorithm>
#include <atomic>
#include <string>

#include <tbb/parallel_for.h>

#include "../cpu_backend.hpp"
#include "../kernels.hpp"
#include "key_intervals.hpp"
#include "qwen3vl/variants/flash2.hpp"

namespace qwen3vl {
namespace {

class Flash2Cpu final : public Attention {
 public:
  Flash2Cpu(std::unique_ptr<detail::CpuBackend> backend, int64_t l2_bytes)
      : backend_(std::move(backend)),
        kernels_(detail::cpu_kernels(backend_->isa())),
        l2_bytes_(l2_bytes) {}

  Variant variant() const override { return Variant::kFlash2; }
  Device device() const override { return Device::kCPU; }

  Status supports(const AttentionParams& p) const override {
    QWEN3VL_RETURN_IF_ERROR(validate(p));
    if (p.q.device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "q.device = ", to_string(p.q.device),
                        ": the CPU flash2 variant needs host memory");
    if (p.weights.present())
      return make_error(StatusCode::kUnsupported, "weights = ", p.weights.shape_string(),
                        ": flash2 never materialises the scores; use the standard variant");
    return Status();  // validate() put q_positions and block_layout on q's device: host memory
  }

  size_t workspace_size(const AttentionParams& p) const override {
    AttentionShape s;
    if (!validate(p, &s).ok()) return 0;
    const int64_t intervals = detail::max_key_intervals(p.block_layout);
    return backend_->workspace_bytes(slot_bytes(plan(s), intervals));
  }

  Status forward(const AttentionParams& p, Workspace ws, void* /*stream*/) const override {
    QWEN3VL_RETURN_IF_ERROR(supports(p));
    AttentionShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
    const detail::Flash2Plan tiles = plan(s);
    const BlockLayout& layout = p.block_layout;
    const int64_t max_intervals = detail::max_key_intervals(layout);
    const size_t slot = slot_bytes(tiles, max_intervals);
    QWEN3VL_RETURN_IF_ERROR(backend_->check_workspace(ws, slot));

    // A sequence is cut into segments (the layout's row blocks; without a layout, one segment),
    // each into chunks of the plan's block_q: task (KV head, sequence, chunk of the sequence).
    const int64_t segment = layout.present() ? layout.block_q : std::max<int64_t>(s.max_q, 1);
    const int64_t chunks = (segment + tiles.block_q - 1) / tiles.block_q;
    const int64_t blocks = (s.max_q + segment - 1) / segment * chunks;
    const int64_t total = s.kv_heads * s.batch * blocks;
    if (total == 0) return Status();
    const bool heavy_last = p.mask == MaskKind::kCausal || p.mask == MaskKind::kCausalTopLeft;
    std::atomic<int64_t> next{0};
    const auto worker = [&] {
      char* base = static_cast<char*>(detail::CpuBackend::thread_slot(ws, slot));
      auto* ranges = reinterpret_cast<KeyRange*>(base);
      auto* intervals = reinterpret_cast<KeyRange*>(base + ranges_bytes(tiles));
      void* scratch = base + ranges_bytes(tiles) + intervals_bytes(max_intervals);
      for (int64_t t = next++; t < total; t = next++) {
        const int64_t order = t % blocks;
        const int64_t qb = heavy_last ? blocks - 1 - order : order;
        detail::Flash2Task task;
        task.params = &p;
        task.shape = s;
        task.plan = tiles;
        task.b = t / blocks % s.batch;
        task.kv_head = t / blocks / s.batch;
        task.span = sequence_span(p, task.b);
        const int64_t row_block = qb / chunks;
        const int64_t segment_end = std::min((row_block + 1) * segment, task.span.q_len);
        task.q_begin = row_block * segment + qb % chunks * tiles.block_q;
        if (task.q_begin >= segment_end) continue;
        task.q_end = std::min(task.q_begin + tiles.block_q, segment_end);
        for (int64_t i = task.q_begin; i < task.q_end; ++i)
          ranges[i - task.q_begin] = row_visible_keys(p, task.b, task.span, i);
        task.rows = ranges;
        task.intervals = intervals;
        task.interval_count = detail::key_intervals(
            layout, layout.layout_index(task.b, task.kv_head, s.kv_heads), row_block,
            detail::key_hull(ranges, task.q_end - task.q_begin), intervals);
        task.scratch = scratch;
        kernels_.flash2_tile(task);
      }
    };
    backend_->arena().execute(
        [&] { tbb::parallel_for(0, backend_->threads(), [&](int) { worker(); }); });
    return Status();
  }

  std::string describe() const override {
    AttentionShape typical;  // the tile policy for MHA at head_dim 128
    typical.batch = typical.heads = typical.kv_heads = 1;
    typical.head_dim = 128;
    typical.max_q = typical.max_k = 4096;
    const detail::Flash2Plan t = plan(typical);
    return "flash2 (cpu): fused tiles with online softmax, O(n) memory; " + backend_->describe() +
           "; tiles at head_dim 128: " + std::to_string(t.block_q) +
           " query rows (group x positions) x " + std::to_string(t.block_k) + " keys for L2 " +
           std::to_string(l2_bytes_ >> 10) + " KiB, " + std::to_string(t.register_keys) + "x" +
           std::to_string(t.register_rows) + " register blocks";
  }

 private:
  detail::Flash2Plan plan(const AttentionShape& s) const {
    detail::Flash2Plan t;
    kernels_.flash2_plan(s, l2_bytes_, &t);
    return t;
  }
  static size_t ranges_bytes(const detail::Flash2Plan& t) {
    return detail::align_up(static_cast<size_t>(t.block_q) * sizeof(KeyRange));
  }
  static size_t intervals_bytes(int64_t count) {
    return detail::align_up(static_cast<size_t>(count) * sizeof(KeyRange));
  }
  // Per thread: the task's row ranges, its key intervals (as many as the layout's longest row
  // block needs; one without a layout) and the kernel's tile scratch.
  static size_t slot_bytes(const detail::Flash2Plan& t, int64_t max_intervals) {
    return ranges_bytes(t) + intervals_bytes(max_intervals) + t.scratch_bytes;
  }

  std::unique_ptr<detail::CpuBackend> backend_;
  const detail::CpuKernels& kernels_;
  int64_t l2_bytes_;  // sizes the tiles
};

}  // namespace

Status create_flash2_cpu(const CpuOptions& options, std::unique_ptr<Attention>* out) {
  std::unique_ptr<detail::CpuBackend> backend;
  QWEN3VL_RETURN_IF_ERROR(detail::CpuBackend::create(options, &backend));
  const CpuInfo& cpu = options.hardware ? options.hardware->cpu : CpuInfo::current();
  *out = std::make_unique<Flash2Cpu>(std::move(backend), cpu.l2_bytes);
  return Status();
}

}  // namespace qwen3vl
