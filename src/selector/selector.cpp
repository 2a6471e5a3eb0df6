// The selector: builds what the config asks for from what this build contains, and says why.
#include "qwen3vl/selector/selector.hpp"

#include <optional>
#include <string>

#include "qwen3vl/variants/block_sparse.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "qwen3vl/variants/standard.hpp"
#if QWEN3VL_WITH_CUDA
#include "qwen3vl/cuda/attention_cuda.hpp"
#endif

namespace qwen3vl {
namespace {

Status check_config(const AttentionConfig& c) {
  if (c.num_heads < 0 || c.num_kv_heads < 0 ||
      (c.num_heads > 0 && c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads != 0))
    return make_error(StatusCode::kInvalidArgument, "config heads = ", c.num_heads, "/",
                      c.num_kv_heads, ": Hq and Hkv must be >= 0 and Hkv must divide Hq");
  if (c.head_dim < 0 || c.head_dim > 256)
    return make_error(StatusCode::kInvalidArgument, "config head_dim = ", c.head_dim,
                      ": allowed 1..256 (0 = not known in advance)");
  if (c.mask && static_cast<int>(*c.mask) > static_cast<int>(MaskKind::kSlidingWindow))
    return make_error(StatusCode::kInvalidArgument, "config mask = ", static_cast<int>(*c.mask),
                      ": allowed none, causal, causal_top_left, sliding_window, or unset");
  if (!is_floating(c.dtype))
    return make_error(StatusCode::kInvalidArgument, "config dtype = ", to_string(c.dtype),
                      ": allowed f32, f16, bf16");
  return Status();
}

#if QWEN3VL_WITH_CUDA
// auto on CUDA (weights aside): the sm61 tiles on compute capability 6.x, flash2 otherwise. The
// capability is the hardware override's first GPU when given, else the current device's.
Variant cuda_auto_variant(const AttentionConfig& c, std::string* why) {
  int major = 0, minor = 0;
  if (c.hardware != nullptr && !c.hardware->gpus.empty()) {
    major = c.hardware->gpus[0].sm_major;
    minor = c.hardware->gpus[0].sm_minor;
  } else if (!cuda_compute_capability(-1, &major, &minor).ok()) {
    *why = "auto -> flash2 (no CUDA device to inspect)";
    return Variant::kFlash2;
  }
  const std::string arch = "sm_" + std::to_string(major) + std::to_string(minor);
  if (major == 6) {
    *why = "auto -> sm61_tiled (" + arch + ": Pascal tiles, <= 48 KB shared memory per block)";
    return Variant::kSm61Tiled;
  }
  *why = "auto -> flash2 (" + arch + ": fused fp32 kernel)";
  return Variant::kFlash2;
}

// The CUDA object for a variant (nullptr-free: kNotImplemented when this build has none).
Status create_cuda(Variant v, const AttentionConfig& c, std::unique_ptr<Attention>* out) {
  CudaOptions o;
  o.device = c.cuda_device;
  switch (v) {
    case Variant::kStandard: return create_standard_cuda(o, out);
    case Variant::kFlash2: return create_flash2_cuda(o, out);
    case Variant::kSm61Tiled: return create_sm61_tiled_cuda(o, out);
    case Variant::kBlockSparse: return create_block_sparse_cuda(o, out);
    case Variant::kStaticSparse: return create_static_sparse_cuda(o, c.static_sparse, out);
    case Variant::kDynamicSparse: return create_dynamic_sparse_cuda(o, c.dynamic_sparse, out);
    case Variant::kLinear: return create_linear_cuda(o, c.linear, out);
    case Variant::kMixtureOfHeads: return create_mixture_of_heads_cuda(o, c.mixture_of_heads, out);
    default: return make_error(StatusCode::kNotImplemented, "variant ", to_string(v), " on cuda");
  }
}
#endif

// The CPU object for a variant.
Status create_cpu(Variant v, const AttentionConfig& config, std::unique_ptr<Attention>* out) {
  AttentionConfig c = config;  // the machine override's CPU where the CPU options name none
  if (c.cpu.cpu_info == nullptr && c.hardware != nullptr) c.cpu.cpu_info = &c.hardware->cpu;
  switch (v) {
    case Variant::kStandard: return create_standard_cpu(c.cpu, out);
    case Variant::kFlash2: return create_flash2_cpu(c.cpu, out);
    case Variant::kBlockSparse: return create_block_sparse_cpu(c.cpu, out);
    case Variant::kStaticSparse: return create_static_sparse_cpu(c.cpu, c.static_sparse, out);
    case Variant::kDynamicSparse: return create_dynamic_sparse_cpu(c.cpu, c.dynamic_sparse, out);
    case Variant::kLinear: return create_linear_cpu(c.cpu, c.linear, out);
    case Variant::kMixtureOfHeads:
      return create_mixture_of_heads_cpu(c.cpu, c.mixture_of_heads, out);
    default: return make_error(StatusCode::kNotImplemented, "variant ", to_string(v), " on cpu");
  }
}

std::string built_list() {
  std::string s;
  for (const auto& [variant, device] : Selector::built())
    s += (s.empty() ? "" : ", ") + std::string(to_string(variant)) + "(" + to_string(device) + ")";
  return s;
}

}  // namespace

std::vector<std::pair<Variant, Device>> Selector::built() {
  const Variant every[] = {Variant::kStandard,      Variant::kFlash2,        Variant::kBlockSparse,
                           Variant::kStaticSparse,  Variant::kDynamicSparse, Variant::kLinear,
                           Variant::kMixtureOfHeads};
  std::vector<std::pair<Variant, Device>> built;
  for (Variant v : every) built.emplace_back(v, Device::kCPU);
#if QWEN3VL_WITH_CUDA
  for (Variant v : every) built.emplace_back(v, Device::kCUDA);
  built.emplace_back(Variant::kSm61Tiled, Device::kCUDA);
#endif
  return built;
}

Status Selector::try_create(const AttentionConfig& config, int layer_idx,
                            std::unique_ptr<Attention>* out) {
  QWEN3VL_RETURN_IF_ERROR(check_config(config));
  if (layer_idx < 0)
    return make_error(StatusCode::kInvalidArgument, "layer_idx = ", layer_idx, ": must be >= 0");
  Variant variant = config.variant;
  std::string reason = "layer " + std::to_string(layer_idx) + ": ";
  if (variant == Variant::kAuto) {
    const bool cpu = config.device == Device::kCPU;
    variant = config.need_weights || !cpu ? Variant::kStandard : Variant::kFlash2;
    reason += config.need_weights ? "auto -> standard (attention weights requested)"
              : cpu               ? "auto -> flash2 (fused, O(n) memory: the CPU prefill default)"
                                  : "auto -> standard";
  } else {
    reason += std::string("requested ") + to_string(variant);
  }
#if QWEN3VL_WITH_CUDA
  if (config.variant == Variant::kAuto && config.device == Device::kCUDA && !config.need_weights) {
    std::string why;
    variant = cuda_auto_variant(config, &why);
    reason = "layer " + std::to_string(layer_idx) + ": " + why;
  }
#endif
  if (config.need_weights && variant != Variant::kStandard)
    return make_error(StatusCode::kUnsupported, "need_weights with variant ", to_string(variant),
                      ": only the standard variant returns attention weights");

  AttentionConfig filled = config;  // knobs that default to the config's shape
  if (filled.mixture_of_heads.num_heads == 0) filled.mixture_of_heads.num_heads = config.num_heads;
  if (filled.linear.head_dim == 0) filled.linear.head_dim = config.head_dim;
  std::unique_ptr<Attention> impl;
  if (config.device == Device::kCPU && variant != Variant::kSm61Tiled) {
    QWEN3VL_RETURN_IF_ERROR(create_cpu(variant, filled, &impl));
#if QWEN3VL_WITH_CUDA
  } else if (config.device == Device::kCUDA) {
    QWEN3VL_RETURN_IF_ERROR(create_cuda(variant, filled, &impl));
#endif
  } else {
    return make_error(StatusCode::kNotImplemented, "variant ", to_string(variant), " on device ",
                      to_string(config.device), " is not built (built: ", built_list(), ")");
  }
  impl->set_selection(reason, config.mask);  // describe() tells the layer, why, and the mask
  *out = std::move(impl);
  return Status();
}

std::unique_ptr<Attention> Selector::create(const AttentionConfig& config, int layer_idx) {
  std::unique_ptr<Attention> out;
  throw_if_error(try_create(config, layer_idx, &out));
  return out;
}

}  // namespace qwen3vl
