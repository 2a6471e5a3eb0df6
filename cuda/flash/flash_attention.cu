// The flash2, sm61_tiled and block_sparse variants on CUDA: one Attention class over the flash
// kernel template. flash2 and sm61_tiled differ only in which tile configuration runs each
// head_dim; block_sparse is flash2 that requires params.block_layout (the kernel walks a layout
// and query positions for all three).
#include <cuda_runtime.h>

#include <string>
#include <utility>

#include "cuda/common/device_context.hpp"
#include "flash_registry.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/check.cuh"

namespace qwen3vl {
namespace detail::flash {

const char* to_string(TileConfig c) {
  return c == TileConfig::kGeneric ? "generic" : "compact(sm61)";
}

// The fast path compiled for head_dim, else the run-time head_dim kernel: one comparison per entry
// of kFastHeadDims, expanded at compile time.
template <TileConfig C, size_t... I>
KernelInfo find_kernel_in(int head_dim, std::index_sequence<I...>) {
  KernelInfo found = kernel_info<C, 0>();
  ((kFastHeadDims[I] == head_dim ? (found = kernel_info<C, kFastHeadDims[I]>(), true) : false) ||
   ...);
  return found;
}

KernelInfo find_kernel(TileConfig config, int head_dim) {
  constexpr auto fast = std::make_index_sequence<kFastHeadDimCount>();
  return config == TileConfig::kGeneric ? find_kernel_in<TileConfig::kGeneric>(head_dim, fast)
                                        : find_kernel_in<TileConfig::kCompact>(head_dim, fast);
}

namespace {

class FlashCuda final : public Attention {
 public:
  FlashCuda(Variant variant, const DeviceContext& ctx) : variant_(variant), ctx_(ctx) {}

  // Picks the configuration of every head_dim slot and raises the kernels' shared-memory limit.
  Status init() {
    for (int slot = 0; slot < kHeadDimSlots; ++slot) {
      const int d = slot_head_dim(slot);
      TileConfig config =
          variant_ == Variant::kSm61Tiled ? TileConfig::kCompact : TileConfig::kGeneric;
      KernelInfo k = find_kernel(config, d);
      bool fits = false;
      if (config == TileConfig::kGeneric) QWEN3VL_RETURN_IF_ERROR(generic_fits(k, &fits));
      if (config == TileConfig::kGeneric && !fits) {
        config = TileConfig::kCompact;  // e.g. sm_61 (48 KB) or sm_75 (64 KB)
        k = find_kernel(config, d);
      }
      if (k.smem_bytes > ctx_.max_shared_per_block_optin)
        return make_error(StatusCode::kUnsupported, "device ", ctx_.to_string(), " offers ",
                          ctx_.max_shared_per_block_optin,
                          " bytes of shared memory per block: the ", to_string(config),
                          " tiles need ", k.smem_bytes);
      if (k.smem_bytes > 48 * 1024)
        QWEN3VL_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
            k.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, k.smem_bytes));
      configs_[slot] = config;
      kernels_[slot] = k;
    }
    return Status();
  }

  // Whether generic tiles run here: the device offers their shared memory, and the kernel was not
  // compiled for an architecture older than Volta (there it is only a trap; e.g. the sm_61 build's
  // compute_61 PTX JIT-compiled on a newer GPU).
  Status generic_fits(const KernelInfo& k, bool* fits) const {
    cudaFuncAttributes attr{};
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaFuncGetAttributes(&attr, k.kernel));
    *fits = k.smem_bytes <= ctx_.max_shared_per_block_optin &&
            (attr.ptxVersion >= 70 || k.smem_bytes <= 48 * 1024);
    return Status();
  }

  Variant variant() const override { return variant_; }
  Device device() const override { return Device::kCUDA; }

  // Data pointers are checked where they live at every run (they change between runs).
  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    // A plan is made from shapes: where the data lives is checked by launch(), per call.
    QWEN3VL_RETURN_IF_ERROR(check(p, plan->shape, /*query_pointers=*/false));
    if (plan->with_reason) plan->reason = description();
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace,
                void* stream) const override {
    const AttentionShape& s = plan.shape;
    bool query_pointers = true;
    QWEN3VL_RETURN_IF_ERROR(pointer_queries_allowed(stream, &query_pointers));
    QWEN3VL_RETURN_IF_ERROR(check(p, s, query_pointers));
    QWEN3VL_RETURN_IF_ERROR(check_current_device(ctx_));
    return launch_kernel(make_attention_args(p, s), s, stream);
  }

  // One launch over the query rows each head gathered (forward_gathered()); the caller checked
  // the params against this object (supports()) outside any capture.
  Status forward_gathered(const AttentionParams& p, const GatheredQueries& g, void* stream) const {
    AttentionShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
    QWEN3VL_RETURN_IF_ERROR(check_grid(s));
    QWEN3VL_RETURN_IF_ERROR(check_current_device(ctx_));
    return launch_kernel(make_gathered_args(p, s, g), s, stream);
  }

  std::string description() const override {
    std::string s = std::string(qwen3vl::to_string(variant_)) +
                    " (cuda): fused FlashAttention-2 forward, fp32 math" +
                    (variant_ == Variant::kBlockSparse
                         ? ", K/V loop walks the BSR block layout's column blocks; "
                         : "; ") +
                    ctx_.to_string() + "; tiles:";
    for (int slot = 0; slot < kHeadDimSlots; ++slot) {
      const KernelInfo& k = kernels_[slot];
      s += std::string(slot ? "," : "") + " D" +
           (slot_head_dim(slot) ? std::to_string(slot_head_dim(slot)) : "<=256") + " " +
           to_string(configs_[slot]) + " " + std::to_string(k.block_m) + "x" +
           std::to_string(k.block_n) + "/" + std::to_string(k.threads) + "thr/" +
           std::to_string(k.smem_bytes / 1024) + "KB";
    }
    return s;
  }

 private:
  Status launch_kernel(const AttentionArgs& args, const AttentionShape& s, void* stream) const {
    if (s.batch == 0 || s.max_q == 0) return Status();
    const KernelInfo& k = kernels_[slot_of(static_cast<int>(s.head_dim))];
    const dim3 grid(static_cast<unsigned>(s.heads),
                    static_cast<unsigned>((s.max_q + k.block_m - 1) / k.block_m),
                    static_cast<unsigned>(s.batch));
    k.kernel<<<grid, k.threads, k.smem_bytes, static_cast<cudaStream_t>(stream)>>>(args);
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("flash_forward_kernel");
    return Status();
  }

  Status check_grid(const AttentionShape& s) const {
    if (s.batch > ctx_.max_grid_z)
      return make_error(StatusCode::kUnsupported, "batch = ", s.batch,
                        ": this device launches at most ", ctx_.max_grid_z, " sequences per call");
    const KernelInfo& k = kernels_[slot_of(static_cast<int>(s.head_dim))];
    if ((s.max_q + k.block_m - 1) / k.block_m > ctx_.max_grid_y)
      return make_error(StatusCode::kUnsupported, "max_seqlen_q = ", s.max_q, ": allowed up to ",
                        int64_t{ctx_.max_grid_y} * k.block_m, " per call on this device");
    return Status();
  }

  Status check(const AttentionParams& p, const AttentionShape& s, bool query_pointers) const {
    if (p.weights.present())
      return make_error(StatusCode::kUnsupported, "weights = ", p.weights.shape_string(),
                        ": the fused kernel never materialises attention weights (use the standard "
                        "variant)");
    QWEN3VL_RETURN_IF_ERROR(check_device_params(ctx_, p, query_pointers));
    QWEN3VL_RETURN_IF_ERROR(
        check_device_tensor(ctx_, p.q_positions, "q_positions", query_pointers));
    const BlockLayout& bl = p.block_layout;
    if (variant_ == Variant::kBlockSparse && !bl.present())
      return make_error(StatusCode::kInvalidArgument,
                        "block_layout is absent: the block_sparse variant walks "
                        "params.block_layout (use flash2 for dense attention)");
    QWEN3VL_RETURN_IF_ERROR(
        check_device_tensor(ctx_, bl.indptr, "block_layout.indptr", query_pointers));
    QWEN3VL_RETURN_IF_ERROR(
        check_device_tensor(ctx_, bl.indices, "block_layout.indices", query_pointers));
    return check_grid(s);
  }

  Variant variant_;
  DeviceContext ctx_;
  TileConfig configs_[kHeadDimSlots] = {};
  KernelInfo kernels_[kHeadDimSlots];
};

}  // namespace

Status forward_gathered(const Attention& flash, const AttentionParams& p, const GatheredQueries& g,
                        void* stream) {
  const auto* impl = dynamic_cast<const FlashCuda*>(&flash);
  if (impl == nullptr || impl->variant() == Variant::kBlockSparse)
    return make_error(StatusCode::kInvalidArgument, "flash = ", flash.describe(),
                      ": gathered query rows run on a CUDA flash2 or sm61_tiled object");
  if (p.block_layout.present() || p.additive_mask.present() || p.weights.present())
    return make_error(StatusCode::kUnsupported,
                      "gathered query rows take structural masks and key_lengths only");
  return impl->forward_gathered(p, g, stream);
}

Status create_flash_attention(Variant variant, const CudaOptions& options,
                              std::unique_ptr<Attention>* out) {
  DeviceContext ctx;
  QWEN3VL_RETURN_IF_ERROR(DeviceContext::create(options, &ctx));
  int previous = -1;
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaGetDevice(&previous));
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaSetDevice(ctx.device));  // function attributes are per device
  auto impl = std::make_unique<FlashCuda>(variant, ctx);
  const Status status = impl->init();
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaSetDevice(previous));
  QWEN3VL_RETURN_IF_ERROR(status);
  *out = std::move(impl);
  return Status();
}

}  // namespace detail::flash

Status create_flash2_cuda(const CudaOptions& options, std::unique_ptr<Attention>* out) {
  return detail::flash::create_flash_attention(Variant::kFlash2, options, out);
}

Status create_sm61_tiled_cuda(const CudaOptions& options, std::unique_ptr<Attention>* out) {
  return detail::flash::create_flash_attention(Variant::kSm61Tiled, options, out);
}

}  // namespace qwen3vl
