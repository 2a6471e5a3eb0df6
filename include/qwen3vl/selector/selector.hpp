// AttentionConfig -> the right Attention object, with a reason it can print.
#pragma once

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "qwen3vl/cpu/options.hpp"
#include "qwen3vl/variants/attention.hpp"
#include "qwen3vl/variants/dynamic_sparse.hpp"
#include "qwen3vl/variants/linear.hpp"
#include "qwen3vl/variants/mixture_of_heads.hpp"
#include "qwen3vl/variants/static_sparse.hpp"

namespace qwen3vl {

struct AttentionConfig {
  Variant variant = Variant::kAuto;
  Device device = Device::kCPU;
  int num_heads = 0;     // Hq (0: not known in advance)
  int num_kv_heads = 0;  // Hkv
  int head_dim = 0;
  DType dtype = DType::kF32;
  // The mask of every call, when set: a call whose params.mask differs is a kInvalidArgument
  // error naming both (the per-call mask is never overridden in silence). Unset: each call's
  // params.mask decides. The window bounds always come with the call.
  std::optional<MaskKind> mask;
  bool need_weights = false;  // the caller wants the attention weights (standard variant only)
  CpuOptions cpu;             // threads, ISA and CPU override for CPU variants
  int cuda_device = -1;       // CUDA variants: the device ordinal (-1: the current device)
  // The machine auto selection plans for (its first GPU's compute capability picks the CUDA
  // tiles, its CPU stands in for cpu.cpu_info when that is null); nullptr: this machine.
  const HardwareInfo* hardware = nullptr;

  // The knobs of the variant that uses them (the others ignore them). kBlockSparse has none: its
  // layout comes with each call (AttentionParams::block_layout).
  StaticSparseConfig static_sparse;    // kStaticSparse: the pattern and its knobs
  DynamicSparseConfig dynamic_sparse;  // kDynamicSparse: the routing method and its budget
  LinearConfig linear;                 // kLinear: the feature map
  MoHConfig mixture_of_heads;          // kMixtureOfHeads: shared heads and top-k (num_heads 0:
                                       // taken from num_heads above)
};

class Selector {
 public:
  // Builds the variant the config asks for (or the best for kAuto). A variant that is not built
  // yet is an error naming it, never a silent fallback. Throws Error.
  static std::unique_ptr<Attention> create(const AttentionConfig& config, int layer_idx = 0);
  // The same without exceptions.
  static Status try_create(const AttentionConfig& config, int layer_idx,
                           std::unique_ptr<Attention>* out);
  // The (variant, device) pairs this build contains.
  static std::vector<std::pair<Variant, Device>> built();
};

}  // namespace qwen3vl
