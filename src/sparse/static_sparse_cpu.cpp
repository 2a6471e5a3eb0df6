// The static-sparse CPU variant: builds its pattern's layout once per problem shape and runs the
// block-sparse CPU object with it.
#include <memory>
#include <mutex>
#include <sstream>
#include <utility>

#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/sparse.hpp"

namespace qwen3vl {
namespace {

// Layouts already built, by (max_q, max_k, Hkv). Entries are shared, so a forward() that still
// reads one is safe when a newer shape evicts it.
class LayoutCache {
 public:
  struct Entry {
    int64_t max_q = 0, max_k = 0, kv_heads = 0;
    std::shared_ptr<const BlockLayoutData> layout;
    double density = 0.0;
  };

  explicit LayoutCache(StaticSparseConfig config) : config_(std::move(config)) {}

  Status get(int64_t max_q, int64_t max_k, int64_t kv_heads,
             std::shared_ptr<const BlockLayoutData>* out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < count_; ++i) {
      const Entry& e = entries_[i];
      if (e.max_q == max_q && e.max_k == max_k && e.kv_heads == kv_heads) {
        *out = e.layout;
        last_ = i;
        return Status();
      }
    }
    auto built = std::make_shared<BlockLayoutData>();
    QWEN3VL_RETURN_IF_ERROR(build_static_sparse_layout(config_, max_q, max_k, kv_heads, built.get()));
    const size_t slot = count_ < kSlots ? count_++ : next_evict_++ % kSlots;  // oldest first
    entries_[slot] = Entry{max_q, max_k, kv_heads, built,
                           block_layout_density(built->view(), max_q, max_k)};
    last_ = slot;
    *out = std::move(built);
    return Status();
  }

  // The last shape used and its density ("" before the first call).
  std::string last_built() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (count_ == 0) return "";
    const Entry& e = entries_[last_];
    std::ostringstream s;
    s << "density " << e.density << " at Lq " << e.max_q << " x Lk " << e.max_k << ", "
      << e.layout->layouts << (e.layout->layouts == 1 ? " layout" : " layouts");
    return s.str();
  }

  const StaticSparseConfig& config() const { return config_; }

 private:
  static constexpr size_t kSlots = 8;
  StaticSparseConfig config_;
  mutable std::mutex mutex_;
  mutable Entry entries_[kSlots];
  mutable size_t count_ = 0, next_evict_ = 0, last_ = 0;
};

class StaticSparseCpu final : public Attention {
 public:
  StaticSparseCpu(std::unique_ptr<Attention> block_sparse, StaticSparseConfig config)
      : block_sparse_(std::move(block_sparse)), cache_(std::move(config)) {}

  Variant variant() const override { return Variant::kStaticSparse; }
  Device device() const override { return Device::kCPU; }

  Status supports(const AttentionParams& params) const override {
    AttentionParams with;
    std::shared_ptr<const BlockLayoutData> layout;
    QWEN3VL_RETURN_IF_ERROR(with_layout(params, &with, &layout));
    return block_sparse_->supports(with);
  }

  size_t workspace_size(const AttentionParams& params) const override {
    AttentionParams with;
    std::shared_ptr<const BlockLayoutData> layout;
    if (!with_layout(params, &with, &layout).ok()) return 0;
    return block_sparse_->workspace_size(with);
  }

  Status forward(const AttentionParams& params, Workspace workspace,
                 void* stream) const override {
    AttentionParams with;
    std::shared_ptr<const BlockLayoutData> layout;  // keeps the layout alive for this call
    QWEN3VL_RETURN_IF_ERROR(with_layout(params, &with, &layout));
    return block_sparse_->forward(with, workspace, stream);
  }

  std::string describe() const override {
    const std::string built = cache_.last_built();
    return "static_sparse cpu: " + cache_.config().to_string() + (built.empty() ? "" : ", ") +
           built + "; over " + block_sparse_->describe();
  }

 private:
  // params with block_layout set to the pattern's layout for this problem's shape.
  Status with_layout(const AttentionParams& params, AttentionParams* with,
                     std::shared_ptr<const BlockLayoutData>* layout) const {
    if (params.block_layout.present())
      return make_error(StatusCode::kInvalidArgument, "block_layout (", params.block_layout.block_q,
                        "x", params.block_layout.block_k,
                        " blocks) is set: the static-sparse variant supplies its own pattern (use "
                        "the block-sparse variant for a given layout)");
    AttentionShape shape;
    QWEN3VL_RETURN_IF_ERROR(validate(params, &shape));
    QWEN3VL_RETURN_IF_ERROR(cache_.get(shape.max_q, shape.max_k, shape.kv_heads, layout));
    *with = params;
    with->block_layout = (*layout)->view();
    return Status();
  }

  std::unique_ptr<Attention> block_sparse_;
  LayoutCache cache_;
};

}  // namespace

Status create_static_sparse_cpu(const CpuOptions& options, const StaticSparseConfig& config,
                                std::unique_ptr<Attention>* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  QWEN3VL_RETURN_IF_ERROR(validate(config));
  std::unique_ptr<Attention> block_sparse;
  QWEN3VL_RETURN_IF_ERROR(create_block_sparse_cpu(options, &block_sparse));
  *out = std::make_unique<StaticSparseCpu>(std::move(block_sparse), config);
  return Status();
}

}  // namespace qwen3vl
