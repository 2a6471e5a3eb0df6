// The dynamic-sparse CPU variant: checks, workspace sizing, and forward() = route, then run. The
// block routers write the layout at the start of the workspace and the block-sparse kernel reuses
// the router's scratch after it; exact top-k runs its own two-pass kernel.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "block_routers.hpp"
#include "exact_topk.hpp"
#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "src/core/as_attention.hpp"
#include "src/cpu/cpu_backend.hpp"

namespace qwen3vl {

const char* to_string(DynamicSparseMethod m) {
  switch (m) {
    case DynamicSparseMethod::kBlockTopK: return "block_topk";
    case DynamicSparseMethod::kVerticalSlash: return "vertical_slash";
    case DynamicSparseMethod::kExactTopK: return "exact_topk";
  }
  return "?";
}

Status validate(const DynamicSparseConfig& c) {
  if (c.method > DynamicSparseMethod::kExactTopK)
    return make_error(StatusCode::kInvalidArgument, "method = ", static_cast<int>(c.method),
                      ": allowed block_topk, vertical_slash, exact_topk");
  const auto bad_block = [](int32_t x) { return x < 16 || x > 128 || x % 16 != 0; };
  if (bad_block(c.block_q))
    return make_error(StatusCode::kInvalidArgument, "block_q = ", c.block_q,
                      ": allowed 16..128, a multiple of 16");
  if (bad_block(c.block_k))
    return make_error(StatusCode::kInvalidArgument, "block_k = ", c.block_k,
                      ": allowed 16..128, a multiple of 16");
  if (!(c.keep_fraction >= 0.0 && c.keep_fraction <= 1.0))
    return make_error(StatusCode::kInvalidArgument, "keep_fraction = ", c.keep_fraction,
                      ": allowed 0 (use the counts) or (0, 1]");
  const bool counts = c.keep_fraction == 0.0;
  switch (c.method) {
    case DynamicSparseMethod::kBlockTopK:
      if (c.top_k_blocks < 0 || (counts && c.top_k_blocks + c.sink_blocks + c.local_blocks < 1))
        return make_error(StatusCode::kInvalidArgument, "top_k_blocks = ", c.top_k_blocks,
                          " (sink ", c.sink_blocks, ", local ", c.local_blocks,
                          "): must be >= 0, and the three must keep at least one block");
      if (c.sink_blocks < 0 || c.local_blocks < 0)
        return make_error(StatusCode::kInvalidArgument,
                          "sink_blocks / local_blocks = ", c.sink_blocks, " / ", c.local_blocks,
                          ": must be >= 0");
      break;
    case DynamicSparseMethod::kVerticalSlash:
      if (c.last_queries < 1)
        return make_error(StatusCode::kInvalidArgument, "last_queries = ", c.last_queries,
                          ": must be >= 1 (MInference uses 64)");
      if (c.vertical < 0 || c.slash < 0 || (counts && c.vertical + c.slash < 1))
        return make_error(StatusCode::kInvalidArgument, "vertical / slash = ", c.vertical, " / ",
                          c.slash, ": must be >= 0 and keep at least one column or diagonal");
      if (c.forced_vertical < 0 || c.forced_slash < 0)
        return make_error(StatusCode::kInvalidArgument,
                          "forced_vertical / forced_slash = ", c.forced_vertical, " / ",
                          c.forced_slash, ": must be >= 0");
      break;
    case DynamicSparseMethod::kExactTopK:
      if (counts && c.top_k < 1)
        return make_error(StatusCode::kInvalidArgument, "top_k = ", c.top_k,
                          ": must be >= 1 (or set keep_fraction)");
      break;
  }
  return Status();
}

namespace {

class DynamicSparseCpu final : public DynamicSparseAttention {
 public:
  DynamicSparseCpu(std::unique_ptr<detail::CpuBackend> backend, std::unique_ptr<Attention> blocks,
                   const DynamicSparseConfig& config)
      : backend_(std::move(backend)), block_sparse_(std::move(blocks)), config_(config) {}

  Variant variant() const override { return Variant::kDynamicSparse; }
  Device device() const override { return Device::kCPU; }
  const DynamicSparseConfig& config() const override { return config_; }
  double last_density() const override { return last_density_.load(); }

  size_t estimate_workspace_size(const AttentionParams& p) const override {
    detail::RoutingCall call;
    if (!checked_call(p, &call).ok() || !is_block_method()) return 0;
    return detail::block_route_bytes(call);
  }

  Status estimate(const AttentionParams& p, Workspace ws, BlockLayout* layout) const override {
    if (layout == nullptr) return make_error(StatusCode::kNullPointer, "layout = null");
    if (!is_block_method())
      return make_error(StatusCode::kUnsupported, "method = ", to_string(config_.method),
                        ": exact top-k is token granular and has no block layout");
    detail::RoutingCall call;
    QWEN3VL_RETURN_IF_ERROR(checked_call(p, &call));
    QWEN3VL_RETURN_IF_ERROR(check_bytes(ws, detail::block_route_bytes(call)));
    double density = 0.0;
    detail::route_blocks(call, ws.data, layout, &density);
    last_density_.store(density);
    return Status();
  }

 protected:
  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    QWEN3VL_RETURN_IF_ERROR(check_problem(p));
    const detail::RoutingCall call = make_call(p, plan->shape);
    if (plan->with_reason) plan->reason = description();
    if (!is_block_method()) {
      plan->workspace_bytes = detail::exact_topk_bytes(call);
      return Status();
    }
    // The block-sparse kernel's plan for the widest layout a router can make for this shape.
    auto widest = std::make_shared<WidestPlan>();
    QWEN3VL_RETURN_IF_ERROR(plan_widest_kernel(p, plan->shape, widest.get()));
    size_t layout_bytes = 0;
    const size_t route = detail::block_route_bytes(call, &layout_bytes);
    plan->workspace_bytes =
        std::max(route, layout_bytes + widest->inner.workspace_bytes + detail::kAlignSlack);
    plan->data = std::move(widest);
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* stream) const override {
    const detail::RoutingCall call = make_call(p, plan.shape);
    double density = 0.0;
    if (!is_block_method()) {
      QWEN3VL_RETURN_IF_ERROR(check_bytes(ws, detail::exact_topk_bytes(call)));
      detail::run_exact_topk(call, ws.data, &density);
      last_density_.store(density);
      return Status();
    }
    size_t layout_bytes = 0;
    QWEN3VL_RETURN_IF_ERROR(check_bytes(ws, detail::block_route_bytes(call, &layout_bytes)));
    AttentionParams routed = p;
    detail::route_blocks(call, ws.data, &routed.block_layout, &density);
    last_density_.store(density);
    // The kernel's workspace follows the layout, over the router's finished scratch.
    const auto& inner = static_cast<const WidestPlan*>(plan.data.get())->inner;
    char* rest = detail::carve(ws.data).cursor() + layout_bytes;
    const size_t used = static_cast<size_t>(rest - static_cast<char*>(ws.data));
    const size_t need = inner.workspace_bytes;
    if (ws.bytes < used + need)
      return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes, ": need ",
                        used + need, " for this layout (workspace_size() for these params)");
    return launch_part(*block_sparse_, inner, routed, Workspace{rest, ws.bytes - used}, stream);
  }

  std::string description() const override {
    const DynamicSparseConfig& c = config_;
    std::string budget;
    char fraction[32];
    std::snprintf(fraction, sizeof fraction, "%.3g", c.keep_fraction);
    switch (c.method) {
      case DynamicSparseMethod::kBlockTopK:
        budget = (c.keep_fraction > 0 ? std::string(fraction) + " of the visible blocks"
                                      : "top " + std::to_string(c.top_k_blocks) + " blocks") +
                 " + " + std::to_string(c.sink_blocks) + " sink + " +
                 std::to_string(c.local_blocks) + " local per query block";
        break;
      case DynamicSparseMethod::kVerticalSlash:
        budget = (c.keep_fraction > 0
                      ? std::string(fraction) + " of the keys as columns and as diagonals"
                      : std::to_string(c.vertical) + " columns + " + std::to_string(c.slash) +
                            " diagonals") +
                 " from the last " + std::to_string(c.last_queries) + " queries";
        break;
      case DynamicSparseMethod::kExactTopK:
        budget = c.keep_fraction > 0 ? std::string(fraction) + " of each row's keys"
                                     : "top " + std::to_string(c.top_k) + " keys per query";
        break;
    }
    std::string text = std::string("dynamic_sparse (cpu): ") + to_string(c.method) + ", " + budget;
    if (is_block_method())
      text += ", blocks " + std::to_string(c.block_q) + "x" + std::to_string(c.block_k);
    const double density = last_density();
    if (density >= 0) {
      std::snprintf(fraction, sizeof fraction, "%.4f", density);
      text += std::string("; last density ") + fraction;
    }
    text += "; " + backend_->describe();
    if (block_sparse_) text += "; over " + block_sparse_->describe();
    return text;
  }

 private:
  bool is_block_method() const { return config_.method != DynamicSparseMethod::kExactTopK; }

  // The variant's own limits, for params that passed validate().
  Status check_problem(const AttentionParams& p) const {
    if (p.q.device != Device::kCPU)
      return make_error(StatusCode::kUnsupported, "q.device = ", to_string(p.q.device),
                        ": the CPU dynamic-sparse variant needs host memory");
    if (p.weights.present())
      return make_error(StatusCode::kUnsupported, "weights = ", p.weights.shape_string(),
                        ": dynamic sparse never materialises the scores; use the standard variant");
    if (p.block_layout.present())
      return make_error(StatusCode::kInvalidArgument, "block_layout (", p.block_layout.block_q, "x",
                        p.block_layout.block_k,
                        " blocks) is set: the dynamic-sparse variant routes its own layout (use "
                        "the block-sparse variant for a given one)");
    return Status();
  }

  detail::RoutingCall make_call(const AttentionParams& p, const AttentionShape& shape) const {
    detail::RoutingCall call;
    call.params = &p;
    call.shape = shape;
    call.config = &config_;
    const detail::ScoresKernels& products =
        detail::isa_table<detail::ScoresKernels>(backend_->isa());
    call.scores = products.scores;
    call.pv = products.pv;
    call.arena = &backend_->arena();
    call.threads = backend_->slots();  // scratch slots by arena slot index
    return call;
  }

  // estimate()'s checks: validate() and the variant's limits.
  Status checked_call(const AttentionParams& p, detail::RoutingCall* call) const {
    AttentionShape shape;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &shape));
    QWEN3VL_RETURN_IF_ERROR(check_problem(p));
    *call = make_call(p, shape);
    return Status();
  }

  // The kernel's plan for the widest layout, and that layout: the kernel's plan keeps a pointer to
  // the layout it was made for (a routed layout at another address is checked against the plan),
  // so the layout lives as long as the plan does; freed, its address could come back holding a
  // routed layout that skips the check.
  struct WidestPlan {
    AttentionPlan inner;
    std::vector<int32_t> indptr, indices;
  };

  // The block-sparse kernel's plan for the most fragmented row a layout of this shape can have
  // (its per-thread scratch grows with a row block's runs of consecutive key blocks: at most
  // every other block), so any routed layout fits.
  Status plan_widest_kernel(const AttentionParams& p, const AttentionShape& s,
                            WidestPlan* widest) const {
    const int64_t nbq = (s.max_q + config_.block_q - 1) / config_.block_q;
    const int64_t nbk = (s.max_k + config_.block_k - 1) / config_.block_k;
    const int64_t runs = (nbk + 1) / 2;
    std::vector<int32_t>& indptr = widest->indptr;
    std::vector<int32_t>& indices = widest->indices;
    indptr.assign(static_cast<size_t>(nbq + 1), static_cast<int32_t>(runs));
    indices.assign(static_cast<size_t>(std::max<int64_t>(runs, 1)), 0);
    indptr[0] = 0;
    for (int64_t e = 0; e < runs; ++e)
      indices[static_cast<size_t>(e)] = static_cast<int32_t>(2 * e);
    AttentionParams with_layout = p;
    with_layout.block_layout.block_q = config_.block_q;
    with_layout.block_layout.block_k = config_.block_k;
    with_layout.block_layout.indptr = TensorView::contiguous(indptr.data(), DType::kI32, {nbq + 1});
    with_layout.block_layout.indices =
        TensorView::contiguous(indices.data(), DType::kI32, {static_cast<int64_t>(indices.size())});
    widest->inner.with_reason = false;  // the description is the plan's reason
    return plan_part(*block_sparse_, with_layout, s, &widest->inner);
  }

  static Status check_bytes(Workspace ws, size_t need) {
    if (need > 0 && (ws.data == nullptr || ws.bytes < need))
      return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                        ws.data ? "" : " (data = null)", ": need ", need,
                        " (workspace_size() / estimate_workspace_size() for these params)");
    return Status();
  }

  std::unique_ptr<detail::CpuBackend> backend_;
  std::unique_ptr<Attention> block_sparse_;  // null for exact top-k
  DynamicSparseConfig config_;
  mutable std::atomic<double> last_density_{-1.0};
};

}  // namespace

Status create_dynamic_sparse_cpu(const CpuOptions& options, const DynamicSparseConfig& config,
                                 std::unique_ptr<DynamicSparseAttention>* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  QWEN3VL_RETURN_IF_ERROR(validate(config));
  std::unique_ptr<detail::CpuBackend> backend;
  QWEN3VL_RETURN_IF_ERROR(detail::CpuBackend::create(options, &backend));
  std::unique_ptr<Attention> blocks;
  if (config.method != DynamicSparseMethod::kExactTopK)
    QWEN3VL_RETURN_IF_ERROR(create_block_sparse_cpu(options, &blocks));
  *out = std::make_unique<DynamicSparseCpu>(std::move(backend), std::move(blocks), config);
  return Status();
}

Status create_dynamic_sparse_cpu(const CpuOptions& options, const DynamicSparseConfig& config,
                                 std::unique_ptr<Attention>* out) {
  return detail::create_as_attention<DynamicSparseAttention>(
      out, [&](auto* made) { return create_dynamic_sparse_cpu(options, config, made); });
}

}  // namespace qwen3vl
