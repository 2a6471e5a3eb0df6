# The Python example of the README (python/tests/test_examples.py runs it): causal GQA attention on
# NumPy arrays through the selector, planned once and run on new data without copies.
import numpy as np

import qwen3vl_attention as qa

rng = np.random.default_rng(0)
q = rng.standard_normal((1, 9, 8, 64), dtype=np.float32)  # [batch, seq, heads, head_dim]
k = rng.standard_normal((1, 9, 2, 64), dtype=np.float32)  # 2 KV heads: GQA
v = rng.standard_normal((1, 9, 2, 64), dtype=np.float32)
out = np.empty_like(q)  # written in place

config = qa.AttentionConfig(num_heads=8, num_kv_heads=2, head_dim=64, mask=qa.MaskKind.causal)
attention = qa.Attention(config)  # the selector picks the variant and says why
plan = attention.plan(q, k, v, out)  # validates once: kernel, tiles, workspace
attention.run(plan, q, k, v, out)  # then runs on any arrays of the same shapes
print(attention.describe(), out[0, 0, 0, :4], sep="\n")
