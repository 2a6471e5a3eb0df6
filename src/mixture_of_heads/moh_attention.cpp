// MixtureOfHeadsAttention's routed entry points, for every backend: they sit in the core library,
// which the CPU and the CUDA libraries both link, so a program that links only one of them finds
// them (the routing checks of routing.cpp likewise).
#include <vector>

#include "qwen3vl/variants/mixture_of_heads.hpp"

namespace qwen3vl {

Status MixtureOfHeadsAttention::supports(const AttentionParams& p, const HeadRouting& r) const {
  AttentionPlan made;
  QWEN3VL_RETURN_IF_ERROR(plan(p, &made));
  return check_routing(made, p, r);
}

Status MixtureOfHeadsAttention::forward(const AttentionParams& p, const HeadRouting& r,
                                        Workspace ws, void* stream) const {
  AttentionPlan made;
  QWEN3VL_RETURN_IF_ERROR(plan(p, &made));
  return run(made, p, r, ws, stream);
}

void MixtureOfHeadsAttention::run(const AttentionParams& p, const HeadRouting& r) const {
  AttentionPlan made;
  throw_if_error(plan(p, &made));
  throw_if_error(check_routing(made, p, r));
  std::vector<unsigned char> scratch(made.workspace_bytes);
  throw_if_error(run(made, p, r, Workspace{scratch.data(), scratch.size()}));
}

}  // namespace qwen3vl
