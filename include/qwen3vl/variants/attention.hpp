// The interface every attention variant implements, on every device.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "qwen3vl/core/params.hpp"

namespace qwen3vl {

enum class Variant : uint8_t {
  kAuto,
  kStandard,        // scores materialised; can return the attention weights
  kFlash2,          // FlashAttention-2 style fused kernel, O(n) memory
  kSm61Tiled,       // flash kernel with Pascal (sm_61) tiles
  kStaticSparse,    // fixed sparse patterns (window, dilated, global, BigBird, ...)
  kDynamicSparse,   // routed sparse: the pattern is chosen from the inputs
  kBlockSparse,     // BSR block-sparse layout
  kLinear,          // linear attention (kernel feature maps)
  kMixtureOfHeads,  // per-token top-k head routing
};

const char* to_string(Variant v);
Status parse_variant(const std::string& text, Variant* v);

// Caller-owned scratch memory on the variant's device; size it with workspace_size().
struct Workspace {
  void* data = nullptr;
  size_t bytes = 0;
};

class Attention {
 public:
  virtual ~Attention() = default;

  virtual Variant variant() const = 0;
  virtual Device device() const = 0;
  // Whether forward() can run these params; never throws.
  virtual Status supports(const AttentionParams& params) const = 0;
  // Bytes of workspace forward() needs for these params (0 if none).
  virtual size_t workspace_size(const AttentionParams& params) const = 0;
  // Computes params.out (and lse / weights when given). No allocation; on CUDA no host sync, and
  // `stream` is the cudaStream_t to launch on.
  virtual Status forward(const AttentionParams& params, Workspace workspace,
                         void* stream = nullptr) const = 0;
  // What was chosen and why (variant, device, ISA or architecture, threads, tiles).
  virtual std::string describe() const = 0;

  // Convenience for CPU variants: allocates a host workspace and throws Error on failure (CUDA
  // variants refuse it: they need forward() with a device workspace).
  void run(const AttentionParams& params) const;
};

}  // namespace qwen3vl
