// The layouts a static-sparse object has built, one per problem shape, shared by the CPU and CUDA
// variants (the CUDA one adds a device copy). Thread-safe; entries are shared_ptr, so a forward()
// still reading one is safe when a newer shape evicts it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>

#include "qwen3vl/variants/static_sparse.hpp"

namespace qwen3vl::detail {

// One built shape: the host layout and the view forward() passes (host.view() on the CPU, a
// device copy on CUDA, owned by `device_memory`).
struct PatternLayout {
  BlockLayoutData host;
  BlockLayout view;
  std::shared_ptr<void> device_memory;
  double density = -1.0;  // < 0: not computed
};

class PatternLayoutCache {
 public:
  // place: sets layout->view (and its memory) on `device`. density: block_layout_density, or
  // nullptr where it cannot be linked (the CUDA library does not link the CPU one).
  using Place = Status (*)(int device, PatternLayout* layout);
  using Density = double (*)(const BlockLayout&, int64_t, int64_t);

  PatternLayoutCache(StaticSparseConfig config, Place place, Density density)
      : config_(std::move(config)), place_(place), density_(density) {}

  Status get(int device, int64_t max_q, int64_t max_k, int64_t kv_heads,
             std::shared_ptr<const PatternLayout>* out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < count_; ++i) {
      const Entry& e = entries_[i];
      if (e.device == device && e.max_q == max_q && e.max_k == max_k && e.kv_heads == kv_heads) {
        *out = e.layout;
        last_ = i;
        return Status();
      }
    }
    auto built = std::make_shared<PatternLayout>();
    QWEN3VL_RETURN_IF_ERROR(
        build_static_sparse_layout(config_, max_q, max_k, kv_heads, &built->host));
    if (density_) built->density = density_(built->host.view(), max_q, max_k);
    QWEN3VL_RETURN_IF_ERROR(place_(device, built.get()));
    const size_t slot = count_ < kSlots ? count_++ : next_evict_++ % kSlots;  // oldest first
    entries_[slot] = Entry{device, max_q, max_k, kv_heads, built};
    last_ = slot;
    *out = std::move(built);
    return Status();
  }

  // The last shape used: "density 0.0234 at Lq 4096 x Lk 4096, 1 layout" ("" before any call).
  std::string last_built() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (count_ == 0) return "";
    const Entry& e = entries_[last_];
    const BlockLayoutData& h = e.layout->host;
    std::ostringstream s;
    if (e.layout->density >= 0.0)
      s << "density " << e.layout->density;
    else
      s << h.blocks(0) << " of " << h.row_blocks * h.col_blocks << " blocks (layout 0)";
    s << " at Lq " << e.max_q << " x Lk " << e.max_k << ", " << h.layouts
      << (h.layouts == 1 ? " layout" : " layouts");
    return s.str();
  }

  const StaticSparseConfig& config() const { return config_; }

 private:
  struct Entry {
    int device = 0;
    int64_t max_q = 0, max_k = 0, kv_heads = 0;
    std::shared_ptr<const PatternLayout> layout;
  };
  static constexpr size_t kSlots = 8;

  StaticSparseConfig config_;
  Place place_;
  Density density_;
  mutable std::mutex mutex_;
  mutable Entry entries_[kSlots];
  mutable size_t count_ = 0, next_evict_ = 0, last_ = 0;
};

// The Attention methods of a static-sparse object: everything goes to the block-sparse object
// `inner` with the pattern's layout for the problem's shape attached.
class StaticSparseAttention : public Attention {
 public:
  StaticSparseAttention(std::unique_ptr<Attention> inner, StaticSparseConfig config,
                        PatternLayoutCache::Place place, PatternLayoutCache::Density density)
      : inner_(std::move(inner)), cache_(std::move(config), place, density) {}

  Variant variant() const override { return Variant::kStaticSparse; }
  Device device() const override { return inner_->device(); }

 protected:
  std::string description() const override {
    const std::string built = cache_.last_built();
    return std::string("static_sparse ") + to_string(inner_->device()) + ": " +
           cache_.config().to_string() + (built.empty() ? "" : ", ") + built + "; over " +
           inner_->describe();
  }

  Status make_plan(const AttentionParams& params, AttentionPlan* plan) const override {
    if (params.block_layout.present())
      return make_error(StatusCode::kInvalidArgument, "block_layout (", params.block_layout.block_q,
                        "x", params.block_layout.block_k,
                        " blocks) is set: the static-sparse variant supplies its own pattern (use "
                        "the block-sparse variant for a given layout)");
    const AttentionShape& shape = plan->shape;
    auto planned = std::make_shared<Planned>();
    QWEN3VL_RETURN_IF_ERROR(cache_.get(params.q.device_index, shape.max_q, shape.max_k,
                                       shape.kv_heads, &planned->layout));
    planned->inner.with_reason = plan->with_reason;
    QWEN3VL_RETURN_IF_ERROR(
        plan_part(*inner_, with_layout(params, *planned), shape, &planned->inner));
    plan->workspace_bytes = planned->inner.workspace_bytes;
    if (plan->with_reason)
      plan->reason =
          "static_sparse (" + cache_.config().to_string() + ") over " + planned->inner.reason;
    plan->data = std::move(planned);
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& params, Workspace workspace,
                void* stream) const override {
    const auto& planned = *static_cast<const Planned*>(plan.data.get());
    return launch_part(*inner_, planned.inner, with_layout(params, planned), workspace, stream);
  }

 private:
  // The pattern's layout for the planned shape (kept alive by the plan) and the inner plan.
  struct Planned {
    std::shared_ptr<const PatternLayout> layout;
    AttentionPlan inner;
  };
  static AttentionParams with_layout(const AttentionParams& params, const Planned& planned) {
    AttentionParams with = params;
    with.block_layout = planned.layout->view;
    return with;
  }

  std::unique_ptr<Attention> inner_;
  PatternLayoutCache cache_;
};

}  // namespace qwen3vl::detail
