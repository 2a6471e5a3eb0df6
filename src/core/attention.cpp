#include "qwen3vl/variants/attention.hpp"

#include <cstdlib>
#include <memory>

namespace qwen3vl {

namespace {
constexpr Variant kAllVariants[] = {
    Variant::kAuto,         Variant::kStandard,      Variant::kFlash2,
    Variant::kSm61Tiled,    Variant::kStaticSparse,  Variant::kDynamicSparse,
    Variant::kBlockSparse,  Variant::kLinear,        Variant::kMixtureOfHeads};
}

const char* to_string(Variant v) {
  switch (v) {
    case Variant::kAuto: return "auto";
    case Variant::kStandard: return "standard";
    case Variant::kFlash2: return "flash2";
    case Variant::kSm61Tiled: return "sm61_tiled";
    case Variant::kStaticSparse: return "static_sparse";
    case Variant::kDynamicSparse: return "dynamic_sparse";
    case Variant::kBlockSparse: return "block_sparse";
    case Variant::kLinear: return "linear";
    case Variant::kMixtureOfHeads: return "moh";
  }
  return "?";
}

Status parse_variant(const std::string& text, Variant* v) {
  std::string allowed;
  for (Variant candidate : kAllVariants) {
    if (text == to_string(candidate)) {
      *v = candidate;
      return Status();
    }
    allowed += (allowed.empty() ? "" : ", ") + std::string(to_string(candidate));
  }
  return make_error(StatusCode::kInvalidArgument, "variant = '", text, "': allowed ", allowed);
}

void Attention::run(const AttentionParams& params) const {
  if (device() != Device::kCPU)
    throw Error(StatusCode::kUnsupported,
                detail::concat("run() on a ", to_string(device()), " variant (",
                               to_string(variant()), "): run() allocates host memory; call ",
                               "forward() with a device workspace of workspace_size() bytes"));
  throw_if_error(supports(params));
  const size_t bytes = workspace_size(params);
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> buffer(bytes ? std::malloc(bytes) : nullptr);
  if (bytes && !buffer)
    throw Error(StatusCode::kOutOfMemory, detail::concat("workspace of ", bytes, " bytes"));
  throw_if_error(forward(params, Workspace{buffer.get(), bytes}));
}

}  // namespace qwen3vl
