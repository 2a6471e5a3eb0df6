// The example of docs/api.md (a test keeps the two equal): packed varlen frames, bf16, LSE,
// and the Status API without exceptions.
#include <qwen3vl/attention.hpp>
#include <qwen3vl/testing/random_fill.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

using namespace qwen3vl;
using qwen3vl::testing::fill_uniform;

int main() {
  // Two packed vision frames of 3 and 5 patches, 16 heads of dimension 72, bf16 storage.
  const int64_t tokens = 8, heads = 16, head_dim = 72;
  Tensor q(DType::kBF16, {tokens, heads, head_dim}), k(DType::kBF16, {tokens, heads, head_dim}),
      v(DType::kBF16, {tokens, heads, head_dim}), out(DType::kBF16, {tokens, heads, head_dim});
  fill_uniform(q, 1);
  fill_uniform(k, 2);
  fill_uniform(v, 3);
  std::vector<int32_t> cu = {0, 3, 8};  // frame boundaries: [batch + 1], starting at 0
  Tensor lse(DType::kF32, {heads, tokens});

  AttentionConfig config;  // variant kAuto: the selector picks, and says why
  config.num_heads = config.num_kv_heads = heads;
  config.head_dim = head_dim;
  config.dtype = DType::kBF16;
  config.mask = MaskKind::kNone;
  std::unique_ptr<Attention> attention;
  if (Status s = Selector::try_create(config, /*layer_idx=*/0, &attention); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 1;
  }
  std::printf("%s\n", attention->describe().c_str());

  AttentionParams p;
  p.q = q;
  p.k = k;
  p.v = v;
  p.out = out;
  p.lse = lse;  // optional: natural-log LSE per (head, token)
  p.cu_seqlens_q = p.cu_seqlens_k = TensorView::contiguous(cu.data(), DType::kI32, {3});
  if (Status s = attention->supports(p); !s.ok()) {  // e.g. "shape mismatch: k.shape = ..."
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 1;
  }
  std::vector<unsigned char> scratch(attention->workspace_size(p));
  Status s = attention->forward(p, Workspace{scratch.data(), scratch.size()});
  std::printf("%s, out[0] = %g\n", s.to_string().c_str(), out.get(0));
  return s.ok() ? 0 : 1;
}
