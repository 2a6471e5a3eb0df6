// qwen3vl-attn-bench layer: one Qwen3-VL text attention layer (default the 4B shape: hidden 2560,
// Hq 32, Hkv 8, D 128, interleaved M-RoPE [24, 20, 20]) on the CPU: a prefill of --prefill tokens,
// then
// --decode single-token steps through a KV cache, with the time split into projections, QK-norm +
// RoPE, the cache append and attention (LayerProfile). Projection rates are quoted against the
// machine's sgemm measured in the same run with the same threads.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/routines.hpp"
#include "common/sgemm.hpp"
#include "common/timing.hpp"
#include "qwen3vl/layers/layers.hpp"

namespace qwen3vl::bench {
namespace {

struct Options {
  int64_t prefill = 2048, decode = 128, hidden = 2560, heads = 32, kv_heads = 8, head_dim = 128;
  int threads = 0, reps = 3;
  DType dtype = DType::kF32, cache_dtype = DType::kF16;
  KvLayout layout = KvLayout::kPaged;
};

void fill(Tensor& t, uint32_t seed, float scale) {  // fast seeded values in [-scale, scale)
  uint32_t x = seed * 2654435761u + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    x = x * 1664525u + 1013904223u;
    t.set(i, scale * (static_cast<float>(x >> 8) / 8388608.0f - 1.0f));
  }
}

struct Phase {
  layers::LayerProfile profile;
  double total_ms = 0.0;
};

void print_phase(const char* name, const Phase& p, double proj_flops, double attn_flops,
                 double per) {
  const layers::LayerProfile& f = p.profile;
  const double other = p.total_ms / 1e3 - f.projections - f.norm_rope - f.cache - f.attention;
  std::printf(
      "%-8s total %9.2f ms%s | projections %8.2f ms (%5.1f GFLOP/s) | norm+rope %6.2f ms | "
      "cache %6.2f ms | attention %8.2f ms (%5.1f GFLOP/s) | other %5.2f ms\n",
      name, p.total_ms / per, per > 1 ? "/step" : "     ", 1e3 * f.projections / per,
      proj_flops / f.projections / 1e9, 1e3 * f.norm_rope / per, 1e3 * f.cache / per,
      1e3 * f.attention / per, attn_flops / f.attention / 1e9, 1e3 * other / per);
}

int run(const Options& o, Report* report) {
  layers::TextAttentionConfig c;
  c.hidden_size = o.hidden;
  c.num_heads = o.heads;
  c.num_kv_heads = o.kv_heads;
  c.head_dim = o.head_dim;
  c.options.dtype = o.dtype;
  c.options.cpu.num_threads = o.threads;
  const int64_t hq = o.heads * o.head_dim, hkv = o.kv_heads * o.head_dim;
  Tensor wq(DType::kF32, {hq, o.hidden}), wk(DType::kF32, {hkv, o.hidden}),
      wv(DType::kF32, {hkv, o.hidden}), wo(DType::kF32, {o.hidden, hq});
  Tensor qn(DType::kF32, {o.head_dim}), kn(DType::kF32, {o.head_dim});
  fill(wq, 1, 0.02f), fill(wk, 2, 0.02f), fill(wv, 3, 0.02f), fill(wo, 4, 0.02f);
  fill(qn, 5, 1.0f), fill(kn, 6, 1.0f);
  const auto layer = layers::Qwen3VLTextAttention::create(
      c, {wq.view(), wk.view(), wv.view(), wo.view(), qn.view(), kn.view()});
  std::printf("%s\n", layer->describe().c_str());

  const int64_t total = o.prefill + o.decode;
  KvCacheConfig kc;
  kc.layout = o.layout;
  kc.kv_heads = o.kv_heads;
  kc.head_dim = o.head_dim;
  kc.dtype = o.cache_dtype;
  kc.max_len = total;
  kc.max_blocks = (total + kc.block_size - 1) / kc.block_size;
  kc.num_blocks = kc.max_blocks;
  Tensor ks(o.cache_dtype, kv_storage_shape(kc)), vs(o.cache_dtype, kv_storage_shape(kc));
  Tensor x(o.dtype, {1, total, o.hidden});
  fill(x, 7, 1.0f);
  Tensor out(o.dtype, {1, o.prefill, o.hidden}), step_out(o.dtype, {1, 1, o.hidden});

  // Workspace for the largest call (the prefill), reused by the decode steps.
  KvCache cache;
  throw_if_error(KvCache::create(kc, ks.view(), vs.view(), &cache));
  const layers::TextAttentionInputs prefill_in{
      TensorView::contiguous(x.data<char>(), o.dtype, {1, o.prefill, o.hidden}), {}, {}};
  std::vector<char> ws(layer->workspace_size(prefill_in, &cache, {out.view(), {}}) + (1 << 20));
  const Workspace work{ws.data(), ws.size()};

  std::vector<Phase> prefills, decodes;
  for (int rep = 0; rep < o.reps + 1; ++rep) {  // rep 0 warms up
    throw_if_error(cache.reset(0));
    Phase pre, dec;
    pre.total_ms = wall_ms([&] {
      throw_if_error(
          layer->forward(prefill_in, &cache, {out.view(), {}}, work, nullptr, &pre.profile));
    });
    dec.total_ms = wall_ms([&] {
      for (int64_t s = 0; s < o.decode; ++s) {
        const layers::TextAttentionInputs in{
            TensorView::strided(x.data<char>() + (o.prefill + s) * o.hidden * size_of(o.dtype),
                                o.dtype, {1, 1, o.hidden}, {total * o.hidden, o.hidden, 1}),
            {},
            {}};
        throw_if_error(
            layer->forward(in, &cache, {step_out.view(), {}}, work, nullptr, &dec.profile));
      }
    });
    if (rep > 0) prefills.push_back(pre), decodes.push_back(dec);
  }
  const auto pick = [](std::vector<Phase> v) {  // the run with the median total
    std::sort(v.begin(), v.end(),
              [](const Phase& a, const Phase& b) { return a.total_ms < b.total_ms; });
    return v[v.size() / 2];
  };
  const Phase pre = pick(prefills), dec = pick(decodes);

  const double T = static_cast<double>(o.prefill), H = static_cast<double>(o.hidden);
  const double proj_per_token =
      2.0 * H * static_cast<double>(hq + 2 * hkv) + 2.0 * static_cast<double>(hq) * H;
  const double attn_prefill = 2.0 * o.heads * T * T * o.head_dim;  // causal: half of 4 H L^2 D
  double attn_decode = 0.0;
  for (int64_t s = 0; s < o.decode; ++s)
    attn_decode += 4.0 * o.heads * static_cast<double>(o.prefill + s + 1) * o.head_dim;
  const int threads =
      o.threads > 0 ? o.threads : static_cast<int>(CpuInfo::current().physical_cores);
  const SgemmRate sgemm = measure_cpu_sgemm(threads);
  std::printf(
      "shape: hidden %lld, Hq %lld, Hkv %lld, D %lld; %s activations, %s %s cache; %d threads; "
      "median of %d reps\n",
      static_cast<long long>(o.hidden), static_cast<long long>(o.heads),
      static_cast<long long>(o.kv_heads), static_cast<long long>(o.head_dim), to_string(o.dtype),
      to_string(o.cache_dtype), to_string(o.layout), threads, o.reps);
  std::printf("sgemm anchor: %.1f GFLOP/s (%s, n = %lld)\n", sgemm.gflops, sgemm.source.c_str(),
              static_cast<long long>(sgemm.n));
  print_phase("prefill", pre, proj_per_token * T, attn_prefill, 1.0);
  const auto row = [&](const char* name, const Phase& p, double per) {
    const layers::LayerProfile& f = p.profile;
    report->add({{"phase", name},
                 {"total_ms", p.total_ms / per},
                 {"projections_ms", 1e3 * f.projections / per},
                 {"norm_rope_ms", 1e3 * f.norm_rope / per},
                 {"cache_ms", 1e3 * f.cache / per},
                 {"attention_ms", 1e3 * f.attention / per},
                 {"threads", threads},
                 {"sgemm_gflops", sgemm.gflops}});
  };
  row("prefill", pre, 1.0);
  if (o.decode > 0) {
    print_phase("decode", dec, proj_per_token * o.decode, attn_decode,
                static_cast<double>(o.decode));
    row("decode_step", dec, static_cast<double>(o.decode));
  }
  std::printf(
      "prefill projections: %.2f of sgemm; decode: %.1f tokens/s, weights streamed at %.1f GB/s\n",
      proj_per_token * T / pre.profile.projections / 1e9 / sgemm.gflops,
      1e3 * o.decode / dec.total_ms,
      4.0 * proj_per_token / 2.0 * o.decode / dec.profile.projections / 1e9);
  return 0;
}

}  // namespace
}  // namespace qwen3vl::bench

namespace qwen3vl::bench {

int layer_routine(const std::vector<std::string>& args) {
  Options o;
  std::string layout = "paged";
  ArgParser parser(
      "layer",
      R"(One Qwen3-VL text attention layer (default the 4B shape: hidden 2560, Hq 32, Hkv 8, D 128,
interleaved M-RoPE [24, 20, 20]) on the CPU: a prefill of --prefill tokens, then --decode
single-token steps through a KV cache, with the time split into projections, QK-norm + RoPE, the
cache append and attention (LayerProfile); the run with the median total of --reps after a
warm-up. Projection rates are quoted against the machine's sgemm measured in the same run with
the same threads (was qwen3vl-layer-bench).)");
  parser.add_int("--prefill", &o.prefill, 1, int64_t(1) << 20, "prefill tokens");
  parser.add_int("--decode", &o.decode, 0, int64_t(1) << 20, "decode steps");
  parser.add_int("--threads", &o.threads, 0, 1024, "CPU threads (0: physical cores)");
  parser.add_int("--reps", &o.reps, 1, 10000, "timed repetitions");
  parser.add_int("--hidden", &o.hidden, 1, 1 << 16, "hidden size");
  parser.add_int("--heads", &o.heads, 1, 1024, "query heads");
  parser.add_int("--kv-heads", &o.kv_heads, 1, 1024, "KV heads");
  parser.add_int("--head-dim", &o.head_dim, 2, 256, "head dim");
  parser.add_dtype("--dtype", &o.dtype, {DType::kF32, DType::kF16, DType::kBF16},
                   "activation dtype");
  parser.add_dtype("--cache-dtype", &o.cache_dtype, {DType::kF16, DType::kBF16, DType::kF32},
                   "KV cache dtype");
  parser.add_choice("--layout", &layout, {"paged", "contiguous"}, "KV cache layout");
  return run_routine(parser, args, [&](Report& report) {
    o.layout = layout == "contiguous" ? KvLayout::kContiguous : KvLayout::kPaged;
    return run(o, &report);
  });
}

}  // namespace qwen3vl::bench
