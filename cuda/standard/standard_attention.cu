// The standard variant on CUDA: three launches over a materialised score buffer, which is the
// caller's `weights` tensor when given (so the weights come back) and the workspace otherwise.
#include <cuda_runtime.h>

#include <string>

#include "cuda/common/device_context.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/check.cuh"
#include "src/core/workspace_carver.hpp"
#include "standard_kernels.cuh"

namespace qwen3vl {
namespace detail::standard {
namespace {

constexpr size_t kWorkspaceAlignment = 256;

// The workspace: the scores [B, Hq, Lq, Lk] fp32 (null while `c` counts).
float* carve_scores(Carver* c, const AttentionShape& s) {
  return c->take<float>(s.batch * s.heads * s.max_q * s.max_k);
}
size_t workspace_bytes_for(const AttentionShape& s) {
  Carver sizing(nullptr, kWorkspaceAlignment);
  carve_scores(&sizing, s);
  return sizing.used() + kWorkspaceAlignment;
}

class StandardCuda final : public Attention {
 public:
  explicit StandardCuda(const DeviceContext& ctx) : ctx_(ctx) {}

  Variant variant() const override { return Variant::kStandard; }
  Device device() const override { return Device::kCUDA; }

  std::string description() const override {
    return "standard (cuda): scores materialised ([B, Hq, Lq, Lk] fp32 in weights or the "
           "workspace), row softmax, P V; fp32 math; " +
           ctx_.to_string();
  }

 protected:
  Status make_plan(const AttentionParams& p, AttentionPlan* plan) const override {
    const AttentionShape& s = plan->shape;
    // A plan is made from shapes: where the data lives is checked by launch(), per call.
    QWEN3VL_RETURN_IF_ERROR(check(p, s, /*query_pointers=*/false));
    const bool no_scores = s.batch == 0 || s.max_q == 0 || s.max_k == 0;  // launches nothing
    plan->workspace_bytes = p.weights.present() || no_scores ? 0 : workspace_bytes_for(s);
    if (plan->with_reason) plan->reason = description();
    return Status();
  }

  Status launch(const AttentionPlan& plan, const AttentionParams& p, Workspace ws,
                void* stream_ptr) const override {
    const AttentionShape& s = plan.shape;
    bool query_pointers = true;
    QWEN3VL_RETURN_IF_ERROR(pointer_queries_allowed(stream_ptr, &query_pointers));
    QWEN3VL_RETURN_IF_ERROR(check(p, s, query_pointers));  // where the new pointers live
    QWEN3VL_RETURN_IF_ERROR(check_current_device(ctx_));
    if (s.batch == 0 || s.max_q == 0) return Status();

    ScoreBuffer w;
    if (p.weights.present()) {
      w.data = p.weights.ptr<float>();
      w.batch = p.weights.stride[0];
      w.head = p.weights.stride[1];
      w.row = p.weights.stride[2];
    } else if (s.max_k > 0) {
      const size_t needed = workspace_bytes_for(s);
      if (ws.bytes < needed)
        return make_error(StatusCode::kWorkspaceTooSmall, "workspace.bytes = ", ws.bytes,
                          ": the standard CUDA variant needs ", needed, " (workspace_size())");
      TensorView wv;
      wv.data = ws.data;
      wv.device = Device::kCUDA;
      wv.device_index = ctx_.device;
      wv.rank = 1;
      wv.shape[0] = static_cast<int64_t>(ws.bytes);
      QWEN3VL_RETURN_IF_ERROR(check_device_tensor(ctx_, wv, "workspace", query_pointers));
      Carver carver = carve(ws.data, kWorkspaceAlignment);
      w.data = carve_scores(&carver, s);
      w.row = s.max_k;
      w.head = s.max_q * s.max_k;
      w.batch = s.heads * s.max_q * s.max_k;
    }

    const AttentionArgs args = make_attention_args(p, s);
    const auto stream = static_cast<cudaStream_t>(stream_ptr);
    const unsigned bh = static_cast<unsigned>(s.batch * s.heads);
    const unsigned q_tiles = static_cast<unsigned>((s.max_q + kTile - 1) / kTile);
    const dim3 block(kTile, kRowsY);
    if (s.max_k > 0) {
      const dim3 grid(static_cast<unsigned>((s.max_k + kTile - 1) / kTile), q_tiles, bh);
      scores_kernel<<<grid, block, 0, stream>>>(args, w, s.max_k);
      QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("standard scores_kernel");
    }
    const int64_t rows = s.batch * s.heads * s.max_q;
    constexpr int kWarpsPerBlock = 4;
    softmax_kernel<<<static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock),
                     32 * kWarpsPerBlock, 0, stream>>>(args, w, s.max_q, s.max_k);
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("standard softmax_kernel");
    const dim3 grid(static_cast<unsigned>((s.head_dim + kTile - 1) / kTile), q_tiles, bh);
    pv_kernel<<<grid, block, 0, stream>>>(args, w);
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("standard pv_kernel");
    return Status();
  }

 private:
  Status check(const AttentionParams& p, const AttentionShape& s, bool query_pointers) const {
    QWEN3VL_RETURN_IF_ERROR(check_device_params(ctx_, p, query_pointers));
    QWEN3VL_RETURN_IF_ERROR(refuse_sparse_rows(p, "CUDA standard"));
    if (s.batch * s.heads > ctx_.max_grid_z)
      return make_error(StatusCode::kUnsupported, "batch * heads = ", s.batch * s.heads,
                        ": the standard CUDA kernels launch at most ", ctx_.max_grid_z,
                        " (sequence, head) pairs per call");
    if ((s.max_q + kTile - 1) / kTile > ctx_.max_grid_y)
      return make_error(StatusCode::kUnsupported, "max_seqlen_q = ", s.max_q, ": allowed up to ",
                        int64_t{ctx_.max_grid_y} * kTile, " for the standard CUDA variant");
    return Status();
  }

  DeviceContext ctx_;
};

}  // namespace
}  // namespace detail::standard

Status create_standard_cuda(const CudaOptions& options, std::unique_ptr<Attention>* out) {
  detail::DeviceContext ctx;
  QWEN3VL_RETURN_IF_ERROR(detail::DeviceContext::create(options, &ctx));
  *out = std::make_unique<detail::standard::StandardCuda>(ctx);
  return Status();
}

}  // namespace qwen3vl
