// Standard attention through the selector, checked by hand: with q = 0 every score is equal, so
// under the causal mask query row i gets the mean of V[0..i].
#include <qwen3vl/attention.hpp>
#include <qwen3vl/testing/random_fill.hpp>

#include <cmath>
#include <cstdio>
#include <memory>

int main() {
  using namespace qwen3vl;
  using qwen3vl::testing::fill_uniform;
  const int64_t seq = 5, heads = 2, head_dim = 8;
  Tensor q(DType::kF32, {1, seq, heads, head_dim});  // zeros
  Tensor k(DType::kF32, {1, seq, heads, head_dim});
  Tensor v(DType::kF32, {1, seq, heads, head_dim});
  Tensor out(DType::kF32, {1, seq, heads, head_dim});
  fill_uniform(k, /*seed=*/1);
  fill_uniform(v, /*seed=*/2);

  AttentionConfig config;
  config.variant = Variant::kStandard;
  config.num_heads = heads;
  config.num_kv_heads = heads;
  config.head_dim = head_dim;
  config.mask = MaskKind::kCausal;
  std::unique_ptr<Attention> attention = Selector::create(config);

  AttentionParams params;
  params.q = q;
  params.k = k;
  params.v = v;
  params.out = out;
  params.mask = MaskKind::kCausal;
  attention->run(params);  // throws qwen3vl::Error on bad input

  int wrong = 0;  // NaN counts as wrong
  for (int64_t i = 0; i < seq; ++i)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t d = 0; d < head_dim; ++d) {
        double mean = 0.0;
        for (int64_t j = 0; j <= i; ++j) mean += v.get((j * heads + h) * head_dim + d);
        mean /= static_cast<double>(i + 1);
        if (!(std::fabs(out.get((i * heads + h) * head_dim + d) - mean) < 1e-5)) ++wrong;
      }
  std::printf("%s\n%d of %d outputs differ from the mean of V\n", attention->describe().c_str(),
              wrong, static_cast<int>(out.numel()));
  return wrong == 0 ? 0 : 1;
}
