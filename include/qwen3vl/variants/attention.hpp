// The interface every attention variant implements, on every device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "qwen3vl/core/params.hpp"
#include "qwen3vl/variants/plan.hpp"

namespace qwen3vl {

Status parse_variant(const std::string& text, Variant* v);

// Caller-owned scratch memory on the variant's device; size it with the plan's workspace_bytes.
struct Workspace {
  void* data = nullptr;
  size_t bytes = 0;
};

// The contract is plan once, run many: plan() validates a problem once and decides everything
// that depends only on its shapes (kernel, ISA, tiles, workspace layout); run() launches it for
// any params equal to the planned ones up to the data pointers, with cheap checks only.
class Attention {
 public:
  Attention() = default;
  // An object is its id: a copy would accept the original's plans.
  Attention(const Attention&) = delete;
  Attention& operator=(const Attention&) = delete;
  virtual ~Attention() = default;

  virtual Variant variant() const = 0;
  // Unique among every Attention object of the process (never reused); a plan names its maker by
  // it.
  uint64_t id() const { return id_; }
  virtual Device device() const = 0;

  // Validates `problem` (data pointers of q, k, v, out, lse, weights, additive_mask and of
  // device-resident cu_seqlens, key_lengths and q_positions may be null; host index tensors are
  // read, and run() refuses them rewritten) and plans it; a problem this object cannot run is the
  // error. Never throws.
  Status plan(const AttentionParams& problem, AttentionPlan* plan) const;
  // Computes params.out (and lse / weights when given) with a plan of this object: checks that
  // params match the plan, the data pointers and the workspace, then launches. No allocation; on
  // CUDA no host sync, and `stream` is the cudaStream_t to launch on.
  Status run(const AttentionPlan& plan, const AttentionParams& params, Workspace workspace,
             void* stream = nullptr) const;

  // plan() then run(), for one-off calls.
  Status forward(const AttentionParams& params, Workspace workspace, void* stream = nullptr) const;
  // Whether forward() can run these params (plan()'s status).
  Status supports(const AttentionParams& params) const;
  // Bytes of workspace forward() needs for these params (0 if none, or if plan() refuses them).
  size_t workspace_size(const AttentionParams& params) const;
  // Convenience for CPU variants: plans, allocates a host workspace, runs; throws Error on failure
  // (CUDA variants refuse it: they need forward() with a device workspace).
  void run(const AttentionParams& params) const;

  // What was chosen and why (variant, device, ISA or architecture, threads, tiles), and the
  // selector's reason when a selector made it.
  std::string describe() const;
  // The selector's word on this object: why it was chosen, and the mask every call must carry
  // (the config's mask when set: plan() refuses a problem whose mask differs, never overriding it
  // in silence; unset, each call's mask decides).
  void set_selection(std::string reason, std::optional<MaskKind> required_mask) {
    selection_reason_ = std::move(reason);
    required_mask_ = required_mask;
  }

 protected:
  // The variant's description for describe().
  virtual std::string description() const = 0;
  // The variant's planning: plan->shape holds what validate() derived; fills workspace_bytes,
  // reason and data, or returns why the problem is refused.
  virtual Status make_plan(const AttentionParams& problem, AttentionPlan* plan) const = 0;
  // The launch: plan is this object's and matches params, the data pointers are set and the
  // workspace holds plan.workspace_bytes.
  virtual Status launch(const AttentionPlan& plan, const AttentionParams& params,
                        Workspace workspace, void* stream) const = 0;

  // run()'s checks before the launch: the plan is this object's, params match it, data pointers
  // are set and the workspace is large enough.
  Status check_run(const AttentionPlan& plan, const AttentionParams& params,
                   Workspace workspace) const;
  static Status check_workspace(const AttentionPlan& plan, Workspace workspace);
  // plan() with options: need_data (data pointers set and checked, as forward() needs), for_run
  // (false: a one-off plan launched at once by its maker, without a signature or reason text).
  Status plan_problem(const AttentionParams& problem, bool need_data, bool for_run,
                      AttentionPlan* plan) const;
  // For objects built over others: plan a part for a problem already validated (shape), and
  // launch it with that plan, without the public entry points' checks and counters.
  static Status plan_part(const Attention& part, const AttentionParams& problem,
                          const AttentionShape& shape, AttentionPlan* plan);
  static Status launch_part(const Attention& part, const AttentionPlan& plan,
                            const AttentionParams& params, Workspace workspace, void* stream) {
    return part.launch(plan, params, workspace, stream);
  }

 private:
  static uint64_t next_id();

  const uint64_t id_ = next_id();
  std::string selection_reason_;
  std::optional<MaskKind> required_mask_;
};

}  // namespace qwen3vl
