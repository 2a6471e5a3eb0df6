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
//
// Gathered rows (gathered_rows.hpp, mixture-of-heads): the same schedule with runs of query heads
// in place of KV heads, each task a block of one run's gathered rows of a sequence. A run of n
// heads takes group x block_q / n positions per task, so its tiles hold as many rows as dense ones.
#include <algorithm>
#include <atomic>
#include <string>

#include <tbb/parallel_for.h>

#include "gathered_rows.hpp"
#include "key_intervals.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "src/core/workspace_carver.hpp"
#include "src/cpu/cpu_backend.hpp"
#include "src/cpu/kernels.hpp"

namespace qwen3vl {
namespace {

class Flash2Cpu final : public Attention {
 public:
  Flash2Cpu(std::unique_ptr<detail::CpuBackend> backend, int64_t l2_bytes)
      : backend_(std::move(backend)),
        kernels_(detail::isa_table<detail::Flash2Kernels>(backend_->isa())),
        l2_bytes_(l2_bytes) {}

  Variant variant() const override { return Variant::kFlash2; }
  Device device() const override { return Device::kCPU; }

  // A tile plan, how many key intervals and query positions a task holds, and the thread slot.
  struct PlanData {
    detail::Flash2Plan tiles;
    int64_t max_intervals = 1;
    int64_t max_positions = 0;
    size_t slot = 0;
    const void* layout_indices = nullptr;  // the planned layout's, whose intervals were counted
  };

  // The gathered-rows mode (gathered_rows.hpp): one task pool over every run's rows; `shape` is
  // the validated problem's.
  void plan_gathered(const AttentionShape& s, AttentionPlan* plan) const {
    plan_tasks(s, 1, s.group_size(), nullptr, plan);
    plan->reason = "flash2 (cpu) over gathered query rows; " + tiles_text(s, plan);
  }

  Status run_gathered(const AttentionPlan& plan, const AttentionParams& p,
                      const detail::Flash2GatheredRows& g, Workspace ws) const {
    if (plan.owner != id() || !plan.data)
      return make_error(StatusCode::kInvalidArgument,
                        "plan: not a gathered-rows plan of this flash2 object");
    QWEN3VL_RETURN_IF_ERROR(check_gathered(p, plan.shape, g));
    return run_tasks(p, plan, &g, ws);
  }

 protected:
  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    if (p.q.device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "q.device = ", to_string(p.q.device),
                        ": the CPU flash2 variant needs host memory");
    if (p.weights.present())
      return make_error(StatusCode::kUnsupported, "weights = ", p.weights.shape_string(),
                        ": flash2 never materialises the scores; use the standard variant");
    // validate() put q_positions and block_layout on q's device: host memory
    const BlockLayout& layout = p.block_layout;
    plan_tasks(plan->shape, detail::max_key_intervals(layout), 1,
               layout.present() ? layout.indices.data : nullptr, plan);
    if (plan->with_reason) plan->reason = "flash2 (cpu); " + tiles_text(plan->shape, plan);
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* /*stream*/) const override {
    return run_tasks(p, plan, nullptr, ws);
  }

  std::string description() const override {
    AttentionShape typical;  // the tile policy for MHA at head_dim 128
    typical.batch = typical.heads = typical.kv_heads = 1;
    typical.head_dim = 128;
    typical.max_q = typical.max_k = 4096;
    const detail::Flash2Plan t = tiles_for(typical);
    return "flash2 (cpu): fused tiles with online softmax, O(n) memory; " + backend_->describe() +
           "; tiles at head_dim 128: " + std::to_string(t.block_q) +
           " query rows (group x positions) x " + std::to_string(t.block_k) + " keys for L2 " +
           std::to_string(l2_bytes_ >> 10) + " KiB, " + std::to_string(t.register_keys) + "x" +
           std::to_string(t.register_rows) + " register blocks";
  }

 private:
  // Every task of the problem's rows (g null) or of the gathered rows g, pulled from one counter.
  Status run_tasks(const AttentionParams& p, const AttentionPlan& plan,
                   const detail::Flash2GatheredRows* g, Workspace ws) const {
    const AttentionShape& s = plan.shape;
    const auto& planned = *static_cast<const PlanData*>(plan.data.get());
    const detail::Flash2Plan& tiles = planned.tiles;
    const BlockLayout& layout = p.block_layout;  // absent with gathered rows
    const int64_t max_intervals = planned.max_intervals;
    const int64_t group = s.group_size();
    const int64_t max_positions = planned.max_positions;  // per task
    const size_t slot = planned.slot;
    QWEN3VL_RETURN_IF_ERROR(backend_->check_workspace(ws, slot));
    // A layout other than the planned one (a router's, planned for its widest rows) must fit the
    // planned interval lists.
    if (layout.present() && layout.indices.data != planned.layout_indices) {
      const int64_t needed = detail::max_key_intervals(layout);
      if (needed > max_intervals)
        return make_error(StatusCode::kInvalidArgument, "block_layout: a row block lists ", needed,
                          " key intervals; the plan holds ", max_intervals,
                          " (plan() this layout)");
    }

    // A sequence is cut into segments (the layout's row blocks; without a layout, one segment),
    // each into chunks of the plan's block_q: task (unit, sequence, chunk of the sequence), a unit
    // being a KV head (all its query heads) or a gathered run. A run of fewer heads than the group
    // takes more positions per chunk, so its last chunks are empty.
    const int64_t segment = layout.present() ? layout.block_q : std::max<int64_t>(s.max_q, 1);
    const int64_t chunks = (segment + tiles.block_q - 1) / tiles.block_q;
    const int64_t blocks = (s.max_q + segment - 1) / segment * chunks;
    const int64_t units = g ? g->runs : s.kv_heads;
    const int64_t total = units * s.batch * blocks;
    if (total == 0) return Status();
    const bool heavy_last = p.mask == MaskKind::kCausal || p.mask == MaskKind::kCausalTopLeft;
    std::atomic<int64_t> next{0};
    const auto worker = [&] {
      detail::Carver carver(detail::CpuBackend::thread_slot(ws, slot));
      const SlotParts parts = carve_slot(carver, tiles, max_intervals, max_positions);
      KeyRange* ranges = parts.ranges;
      KeyRange* intervals = parts.intervals;
      void* scratch = parts.scratch;
      for (int64_t t = next++; t < total; t = next++) {
        const int64_t order = t % blocks;
        const int64_t qb = heavy_last ? blocks - 1 - order : order;
        const int64_t unit = t / blocks / s.batch;
        detail::Flash2Task task;
        task.params = &p;
        task.shape = s;
        task.plan = tiles;
        task.b = t / blocks % s.batch;
        task.span = sequence_span(p, task.b);
        task.gathered = g;
        // The unit's rows of the sequence, [first, first + count): the sequence's own, or the run's
        // gathered rows of it.
        int64_t first = 0, count = task.span.q_len, positions = tiles.block_q;
        if (g) {
          task.head = g->run_begin ? g->run_begin[unit] : unit;
          task.heads = g->run_begin ? g->run_begin[unit + 1] - task.head : 1;
          const int32_t* cu = g->cu_rows + task.head * (s.batch + 1) + task.b;
          first = cu[0];
          count = cu[1] - cu[0];
          positions = max_positions / task.heads;
        } else {
          task.head = unit * group;
          task.heads = group;
        }
        task.kv_head = task.head / group;
        const int64_t row_block = qb / chunks;
        const int64_t segment_end = std::min((row_block + 1) * segment, count);
        const int64_t begin = row_block * segment + qb % chunks * positions;
        if (begin >= segment_end) continue;
        task.q_begin = first + begin;
        task.q_end = first + std::min(begin + positions, segment_end);
        for (int64_t i = task.q_begin; i < task.q_end; ++i)
          ranges[i - task.q_begin] =
              g ? gathered_keys(p, *g, task, i) : row_visible_keys(p, task.b, task.span, i);
        task.rows = ranges;
        task.intervals = intervals;
        task.interval_count = detail::key_intervals(
            layout, layout.layout_index(task.b, task.kv_head, s.kv_heads), row_block,
            detail::key_hull(ranges, task.q_end - task.q_begin), intervals);
        task.scratch = scratch;
        kernels_.tile(task);
      }
    };
    backend_->arena().execute(
        [&] { tbb::parallel_for(0, backend_->threads(), [&](int) { worker(); }); });
    return Status();
  }

  // Keys seen by the run's gathered row i (its first head holds the positions).
  static KeyRange gathered_keys(const AttentionParams& p, const detail::Flash2GatheredRows& g,
                                const detail::Flash2Task& t, int64_t i) {
    if (!g.positions) return KeyRange{0, t.span.k_len};
    const int64_t position = g.positions[t.head * g.rows + i];
    return visible_keys_at(p.mask, p.window_left, p.window_right, position, t.span.k_len);
  }

  // What the gathered rows must hold for the problem: rows and gates, row offsets inside the
  // capacity, runs of one KV group, positions whenever a mask looks at them. (Row indices and
  // positions are the caller's word: O(rows) to check, and the caller just wrote them.)
  static Status check_gathered(const AttentionParams& p, const AttentionShape& s,
                               const detail::Flash2GatheredRows& g) {
    if (p.block_layout.present() || p.additive_mask.present())
      return make_error(StatusCode::kUnsupported,
                        "gathered query rows take structural masks and key_lengths only (no "
                        "block_layout or additive_mask)");
    if (g.row == nullptr || g.gate == nullptr || g.cu_rows == nullptr)
      return make_error(StatusCode::kNullPointer, "gathered row/gate/cu_rows = null: must point ",
                        "to the heads' rows, gates and row offsets");
    if (g.positions == nullptr && p.mask != MaskKind::kNone)
      return make_error(StatusCode::kInvalidArgument, "gathered positions = null with mask ",
                        to_string(p.mask), ": masked rows need their key positions");
    const int64_t runs = g.run_begin ? g.runs : s.heads;
    if (g.run_begin && (g.runs < 1 || g.run_begin[0] != 0 || g.run_begin[g.runs] != s.heads))
      return make_error(StatusCode::kInvalidArgument, "gathered runs = ", g.runs,
                        ": run_begin must go from 0 to heads = ", s.heads);
    for (int64_t r = 0; r < runs; ++r) {
      const int64_t h = g.run_begin ? g.run_begin[r] : r;
      const int64_t end = g.run_begin ? g.run_begin[r + 1] : r + 1;
      if (end <= h || h / s.group_size() != (end - 1) / s.group_size())
        return make_error(StatusCode::kInvalidArgument, "gathered run ", r, " = heads [", h, ", ",
                          end, "): must be non-empty and inside one KV group of ", s.group_size());
      const int32_t* cu = g.cu_rows + h * (s.batch + 1);
      for (int64_t b = 0; b < s.batch; ++b)
        if (cu[b] < 0 || cu[b + 1] < cu[b] || cu[b + 1] > g.rows)
          return make_error(StatusCode::kInvalidArgument, "gathered cu_rows[", h, ", ", b + 1,
                            "] = ", cu[b + 1], ": must be non-decreasing from ", cu[b],
                            " and at most rows = ", g.rows);
    }
    return Status();
  }

  detail::Flash2Plan tiles_for(const AttentionShape& s) const {
    detail::Flash2Plan t;
    kernels_.plan(s, l2_bytes_, &t);
    return t;
  }
  // The tiles for s; tasks of `groups` x block_q positions (gathered rows: a group's worth of
  // one-head positions) and `max_intervals` key intervals; the workspace of one slot per thread.
  void plan_tasks(const AttentionShape& s, int64_t max_intervals, int64_t groups,
                  const void* layout_indices, AttentionPlan* plan) const {
    auto data = std::make_shared<PlanData>();
    data->layout_indices = layout_indices;
    data->tiles = tiles_for(s);
    data->max_intervals = max_intervals;
    data->max_positions = groups * data->tiles.block_q;
    data->slot = slot_bytes(data->tiles, max_intervals, data->max_positions);
    plan->workspace_bytes = backend_->workspace_bytes(data->slot);
    plan->data = std::move(data);
  }
  std::string tiles_text(const AttentionShape& s, const AttentionPlan* plan) const {
    const auto& d = *static_cast<const PlanData*>(plan->data.get());
    return backend_->describe() + "; tiles at head_dim " + std::to_string(s.head_dim) + ": " +
           std::to_string(d.tiles.block_q) + " query rows x " + std::to_string(d.tiles.block_k) +
           " keys, " + std::to_string(d.tiles.register_keys) + "x" +
           std::to_string(d.tiles.register_rows) + " register blocks, " +
           std::to_string(d.max_intervals) + " key intervals per task";
  }
  // Per thread: the task's row ranges (one per position), its key intervals (as many as the
  // layout's longest row block needs; one without a layout) and the kernel's tile scratch, laid
  // out by one carver (counting for the plan, over the thread's slot in run()).
  struct SlotParts {
    KeyRange* ranges;
    KeyRange* intervals;
    char* scratch;
  };
  static SlotParts carve_slot(detail::Carver& c, const detail::Flash2Plan& t, int64_t max_intervals,
                              int64_t max_positions) {
    SlotParts parts;
    parts.ranges = c.take<KeyRange>(max_positions);
    parts.intervals = c.take<KeyRange>(max_intervals);
    parts.scratch = c.take<char>(static_cast<int64_t>(t.scratch_bytes));
    return parts;
  }
  static size_t slot_bytes(const detail::Flash2Plan& t, int64_t max_intervals,
                           int64_t max_positions) {
    detail::Carver sizing;
    carve_slot(sizing, t, max_intervals, max_positions);
    return sizing.used();
  }

  std::unique_ptr<detail::CpuBackend> backend_;
  const detail::Flash2Kernels& kernels_;
  int64_t l2_bytes_;  // sizes the tiles
};

}  // namespace

Status create_flash2_cpu(const CpuOptions& options, std::unique_ptr<Attention>* out) {
  std::unique_ptr<detail::CpuBackend> backend;
  QWEN3VL_RETURN_IF_ERROR(detail::CpuBackend::create(options, &backend));
  const CpuInfo& cpu = options.cpu_info ? *options.cpu_info : CpuInfo::current();
  *out = std::make_unique<Flash2Cpu>(std::move(backend), cpu.l2_bytes);
  return Status();
}

namespace detail {

bool is_flash2_cpu(const Attention& attention) {
  return dynamic_cast<const Flash2Cpu*>(&attention) != nullptr;
}

size_t flash2_gathered_workspace_size(const Attention& flash2, const AttentionParams& p) {
  AttentionPlan plan;
  if (!flash2.plan(p, &plan).ok() || !flash2_plan_gathered(flash2, plan.shape, &plan).ok())
    return 0;
  return plan.workspace_bytes;
}

Status flash2_forward_gathered(const Attention& flash2, const AttentionParams& p,
                               const Flash2GatheredRows& g, Workspace ws) {
  AttentionPlan plan;
  if (dynamic_cast<const Flash2Cpu*>(&flash2) != nullptr)
    QWEN3VL_RETURN_IF_ERROR(flash2.plan(p, &plan));
  QWEN3VL_RETURN_IF_ERROR(flash2_plan_gathered(flash2, plan.shape, &plan));
  return flash2_run_gathered(flash2, plan, p, g, ws);
}

Status flash2_plan_gathered(const Attention& flash2, const AttentionShape& shape,
                            AttentionPlan* plan) {
  const auto* f = dynamic_cast<const Flash2Cpu*>(&flash2);
  if (f == nullptr)
    return make_error(StatusCode::kInvalidArgument, "flash2 = ", flash2.describe(),
                      ": gathered query rows run on a CPU flash2 object");
  const AttentionShape planned = shape;  // `shape` may be plan->shape
  *plan = AttentionPlan();
  plan->variant = f->variant();
  plan->device = f->device();
  plan->owner = f->id();
  plan->shape = planned;
  f->plan_gathered(planned, plan);
  return Status();
}

Status flash2_run_gathered(const Attention& flash2, const AttentionPlan& plan,
                           const AttentionParams& p, const Flash2GatheredRows& g, Workspace ws) {
  const auto* f = dynamic_cast<const Flash2Cpu*>(&flash2);
  if (f == nullptr)
    return make_error(StatusCode::kInvalidArgument, "flash2 = ", flash2.describe(),
                      ": gathered query rows run on a CPU flash2 object");
  return f->run_gathered(plan, p, g, ws);
}

}  // namespace detail
}  // namespace qwen3vl
