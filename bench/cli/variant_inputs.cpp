#include "variant_inputs.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "common/accuracy.hpp"
#include "qwen3vl/reference/attention.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "support/linear_oracle.hpp"

namespace qwen3vl::bench {

using testing::fill_uniform;

namespace {

int64_t query_rows(const AttentionParams& p, const AttentionShape& s) {
  return p.varlen() ? p.q.shape[0] : s.batch * s.max_q;
}

// A random layout over a square `block` grid: each query block keeps its last visible key block
// (the diagonal one under a causal mask, bottom-right aligned) and each other visible key block
// with probability `density`; one layout for every head and sequence.
Status random_layout(const VariantFlags& f, const AttentionParams& p, const AttentionShape& s,
                     BlockLayoutData* out) {
  const int64_t b = f.block_size;
  const int64_t nq = (s.max_q + b - 1) / b, nk = (s.max_k + b - 1) / b;
  const bool causal = p.mask == MaskKind::kCausal;
  std::mt19937_64 rng(f.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<uint8_t> mask(static_cast<size_t>(nq * nk), 0);
  for (int64_t i = 0; i < nq; ++i) {
    // The last key a row of this block sees: its position on the key axis under bottom-right
    // causal alignment.
    const int64_t last_row = std::min((i + 1) * b, s.max_q) - 1;
    const int64_t last_key =
        causal ? std::min(last_row + s.max_k - s.max_q, s.max_k - 1) : s.max_k - 1;
    if (last_key < 0) continue;
    const int64_t last = last_key / b;
    for (int64_t j = 0; j <= last; ++j)
      mask[static_cast<size_t>(i * nk + j)] = j == last || u(rng) < f.block_density;
  }
  return from_block_mask(mask, 1, nq, nk, static_cast<int32_t>(b), static_cast<int32_t>(b), out);
}

// Seeded router logits through the library's MoH router.
Status random_routing(const VariantFlags& f, const MoHConfig& mc, int64_t tokens,
                      VariantInputs* out) {
  Tensor shared, routed, mix;
  MoHRouterLogits logits;
  if (mc.num_shared_heads > 0) {
    shared = Tensor(DType::kF32, {tokens, mc.num_shared_heads});
    fill_uniform(shared, f.seed + 1, -2.0f, 2.0f);
    logits.shared = shared.view();
  }
  if (mc.routed_heads() > 0) {
    routed = Tensor(DType::kF32, {tokens, mc.routed_heads()});
    fill_uniform(routed, f.seed + 2, -2.0f, 2.0f);
    logits.routed = routed.view();
  }
  if (mc.num_shared_heads > 0 && mc.routed_heads() > 0) {
    mix = Tensor(DType::kF32, {tokens, 2});
    fill_uniform(mix, f.seed + 3, -1.0f, 1.0f);
    logits.mix = mix.view();
  }
  out->head_index = Tensor(DType::kI32, {tokens, mc.heads_per_token()});
  out->head_weight = Tensor(DType::kF32, {tokens, mc.heads_per_token()});
  return route_mixture_of_heads(mc, logits, {out->head_index.view(), out->head_weight.view()});
}

}  // namespace

void apply_variant_flags(const VariantFlags& flags, AttentionConfig* config) {
  MoHConfig& m = config->mixture_of_heads;
  m.num_heads = config->num_heads;
  m.num_shared_heads = flags.moh_shared_heads;
  m.top_k = flags.moh_top_k > 0 ? flags.moh_top_k : std::max<int64_t>(1, m.routed_heads() / 2);
  if (m.routed_heads() <= 0) m.top_k = 0;  // every head shared: nothing to route
  config->linear.head_dim = config->head_dim;
}

Status create_variant(const AttentionConfig& config, std::unique_ptr<Attention>* out) {
  if (config.variant != Variant::kMixtureOfHeads || config.device != Device::kCPU)
    return Selector::try_create(config, 0, out);
  std::unique_ptr<MixtureOfHeadsAttention> moh;
  QWEN3VL_RETURN_IF_ERROR(create_mixture_of_heads_cpu(config.cpu, config.mixture_of_heads, &moh));
  *out = std::move(moh);
  return Status();
}

Status VariantInputs::make(Variant variant, Device device, const VariantFlags& flags,
                           const AttentionConfig& config, const AttentionParams& host,
                           VariantInputs* out) {
  *out = VariantInputs();
  if (variant != Variant::kBlockSparse && variant != Variant::kMixtureOfHeads) return Status();
  if (device != Device::kCPU)
    return make_error(
        StatusCode::kUnsupported, to_string(variant), " on ", to_string(device), ": its ",
        variant == Variant::kBlockSparse ? "layout" : "routing",
        " must be in device memory, which this CLI does not upload (time it with ",
        variant == Variant::kBlockSparse ? "bench/block_sparse" : "bench/mixture_of_heads", ")");
  AttentionShape s;
  QWEN3VL_RETURN_IF_ERROR(validate(host, &s));
  if (variant == Variant::kBlockSparse) return random_layout(flags, host, s, &out->layout);
  return random_routing(flags, config.mixture_of_heads, query_rows(host, s), out);
}

AttentionParams VariantInputs::with_layout(const AttentionParams& params) const {
  AttentionParams p = params;
  if (layout.row_blocks > 0) p.block_layout = layout.view();
  return p;
}

Status forward_variant(const Attention& attention, const AttentionParams& params,
                       const VariantInputs& inputs, Workspace workspace, void* stream) {
  if (attention.variant() == Variant::kMixtureOfHeads) {
    const auto* moh = dynamic_cast<const MixtureOfHeadsAttention*>(&attention);
    if (!moh)
      return make_error(StatusCode::kInternal,
                        "moh object without the routed forward() (create it with create_variant)");
    return moh->forward(params, {inputs.head_index.view(), inputs.head_weight.view()}, workspace,
                        stream);
  }
  return attention.forward(inputs.with_layout(params), workspace, stream);
}

Status sampled_variant_error(const Attention& attention, const AttentionConfig& config,
                             const AttentionParams& host, const VariantInputs& inputs, int count,
                             double* error) {
  AttentionShape s;
  QWEN3VL_RETURN_IF_ERROR(validate(host, &s));
  switch (attention.variant()) {
    case Variant::kStaticSparse: {
      BlockLayoutData layout;
      QWEN3VL_RETURN_IF_ERROR(
          build_static_sparse_layout(config.static_sparse, s.max_q, s.max_k, s.kv_heads, &layout));
      AttentionParams p = host;
      p.block_layout = layout.view();
      *error = sampled_max_relative_error(p, count);
      return Status();
    }
    case Variant::kDynamicSparse: {
      if (config.dynamic_sparse.method == DynamicSparseMethod::kExactTopK)
        return make_error(StatusCode::kUnsupported,
                          "dynamic_sparse exact top-k: no block layout to check against");
      std::unique_ptr<DynamicSparseAttention> router;
      QWEN3VL_RETURN_IF_ERROR(
          create_dynamic_sparse_cpu(config.cpu, config.dynamic_sparse, &router));
      std::vector<unsigned char> scratch(router->estimate_workspace_size(host) + 64);
      Workspace ws{scratch.data(), scratch.size()};
      BlockLayout layout;
      QWEN3VL_RETURN_IF_ERROR(router->estimate(host, ws, &layout));
      AttentionParams p = host;
      p.block_layout = layout;
      *error = sampled_max_relative_error(p, count);
      return Status();
    }
    case Variant::kLinear: {
      const testing::LinearOracle oracle = testing::LinearOracle::of(config.linear, s.head_dim);
      *error = sampled_error(host, count, 7, [&](const RowIndex& r, double* want) {
        oracle.output_row(host, r.b, r.h, r.i, want);
      });
      return Status();
    }
    case Variant::kMixtureOfHeads: {
      const int64_t k = inputs.head_index.size(1);
      *error = sampled_error(host, count, 7, [&](const RowIndex& r, double* want) {
        const SequenceSpan span = sequence_span(host, r.b);
        const int64_t t = host.varlen() ? span.q_start + r.i : r.b * s.max_q + r.i;
        double gate = 0.0;
        for (int64_t j = 0; j < k; ++j)
          if (inputs.head_index.data<int32_t>()[t * k + j] == r.h)
            gate = inputs.head_weight.data<float>()[t * k + j];
        reference::attention_row(host, s, r.b, r.h, r.i, want);
        for (int64_t c = 0; c < s.head_dim; ++c) want[c] *= gate;
      });
      return Status();
    }
    default: *error = sampled_max_relative_error(inputs.with_layout(host), count); return Status();
  }
}

}  // namespace qwen3vl::bench
