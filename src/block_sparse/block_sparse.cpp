// Block-sparse attention on the CPU: the flash2 object itself, whose K/V loop walks the layout's
// column runs (src/flash/key_intervals.hpp); this wrapper only insists on a layout, so that
// a caller asking for block-sparse attention never silently gets dense attention.
#include <memory>
#include <string>
#include <utility>

#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"

namespace qwen3vl {
namespace {

class BlockSparseCpu final : public Attention {
 public:
  explicit BlockSparseCpu(std::unique_ptr<Attention> flash2) : flash2_(std::move(flash2)) {}

  Variant variant() const override { return Variant::kBlockSparse; }
  Device device() const override { return Device::kCPU; }

  std::string description() const override {
    const std::string what =
        "block_sparse (cpu): flash2 visiting only a layout's listed key blocks";
    return what + "; " + flash2_->describe();
  }

 protected:
  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    if (!p.block_layout.present())
      return make_error(StatusCode::kInvalidArgument,
                        "block_layout is absent: the block-sparse variant needs a BSR layout "
                        "(indptr and indices); use flash2 for dense attention");
    auto inner = std::make_shared<AttentionPlan>();
    inner->with_reason = plan->with_reason;
    QWEN3VL_RETURN_IF_ERROR(plan_part(*flash2_, p, plan->shape, inner.get()));
    plan->workspace_bytes = inner->workspace_bytes;
    if (plan->with_reason) plan->reason = "block_sparse (cpu) over " + inner->reason;
    plan->data = std::move(inner);
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* stream) const override {
    return launch_part(*flash2_, *static_cast<const AttentionPlan*>(plan.data.get()), p, ws,
                       stream);
  }

 private:
  std::unique_ptr<Attention> flash2_;
};

}  // namespace

Status create_block_sparse_cpu(const CpuOptions& options, std::unique_ptr<Attention>* out) {
  std::unique_ptr<Attention> flash2;
  QWEN3VL_RETURN_IF_ERROR(create_flash2_cpu(options, &flash2));
  *out = std::make_unique<BlockSparseCpu>(std::move(flash2));
  return Status();
}

}  // namespace qwen3vl
