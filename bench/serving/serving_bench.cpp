// qwen3vl-serving-bench: the serving paths of append attention (kv_cache/append.hpp) on the CPU,
// each against the calls it replaces, ratios from one run (median of --reps timed calls):
//   chunked  a prompt of --prompt tokens appended in --chunk chunks over a paged cache (shuffled
//            blocks) against one contiguous flash2 prefill of the whole prompt; the same chunks
//            over a contiguous cache show what reading K/V through the block table costs
//   cascade  --seqs sequences sharing a --prefix token prefix, one decode row each over their own
//            --suffix tokens: shared-prefix groups against the same call without them
//   mixed    one chunk of --mixed-chunk new rows (after --mixed-past cached tokens) and
//            --decode-seqs decode rows over caches of --min-cache..--max-cache tokens: one append
//            call against an append call for the chunk plus a decode call for the rest
// Attention only: the cache is filled before timing (the chunked case also times
// append_and_attend, which writes each chunk's K/V first). Model shape: Qwen3-VL-8B's text
// attention by default (Hq 32, Hkv 8, D 128), f16 cache and queries.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/timing.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/kv_cache/append.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "qwen3vl/variants/flash2.hpp"
#include "src/core/host_workspace.hpp"

namespace qwen3vl {
namespace {

struct Options {
  std::string only;  // chunked, cascade, mixed ("" = all)
  int64_t heads = 32, kv_heads = 8, dim = 128;
  DType dtype = DType::kF16;
  int threads = 0;
  int reps = 3;
  int64_t prompt = 16384, chunk = 2048;
  int64_t seqs = 32, prefix = 8192, suffix = 64;
  int64_t mixed_chunk = 2048, mixed_past = 2048, decode_seqs = 63, min_cache = 4096,
          max_cache = 16384;
  int64_t block = 16;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> int64_t {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::atoll(argv[++i]);
    };
    if (a == "--only" && i + 1 < argc)
      o.only = argv[++i];
    else if (a == "--heads")
      o.heads = value();
    else if (a == "--kv-heads")
      o.kv_heads = value();
    else if (a == "--dim")
      o.dim = value();
    else if (a == "--f32")
      o.dtype = DType::kF32;
    else if (a == "--threads")
      o.threads = static_cast<int>(value());
    else if (a == "--reps")
      o.reps = static_cast<int>(value());
    else if (a == "--prompt")
      o.prompt = value();
    else if (a == "--chunk")
      o.chunk = value();
    else if (a == "--seqs")
      o.seqs = value();
    else if (a == "--prefix")
      o.prefix = value();
    else if (a == "--suffix")
      o.suffix = value();
    else if (a == "--mixed-chunk")
      o.mixed_chunk = value();
    else if (a == "--mixed-past")
      o.mixed_past = value();
    else if (a == "--decode-seqs")
      o.decode_seqs = value();
    else if (a == "--min-cache")
      o.min_cache = value();
    else if (a == "--max-cache")
      o.max_cache = value();
    else if (a == "--block")
      o.block = value();
    else {
      std::fprintf(stderr,
                   "usage: qwen3vl-serving-bench [--only chunked|cascade|mixed] [--heads N] "
                   "[--kv-heads N] [--dim N] [--f32] [--threads N] [--reps N] [--prompt N] "
                   "[--chunk N] [--seqs N] [--prefix N] [--suffix N] [--mixed-chunk N] "
                   "[--mixed-past N] [--decode-seqs N] [--min-cache N] [--max-cache N] "
                   "[--block N]\n");
      std::exit(2);
    }
  }
  return o;
}

CpuOptions cpu_options(const Options& o) {
  CpuOptions c;
  c.num_threads = o.threads;
  return c;
}

// A paged (or contiguous) cache of `lens` tokens per sequence with random K/V; sequences
// [0, shared_seqs) share their first `shared` tokens' blocks. Blocks are handed out shuffled.
struct Cache {
  KvLayout layout;
  Tensor k, v, lens, table;
  int64_t cols = 0;
  KvCacheView view;
  Cache(const Options& o, KvLayout l, const std::vector<int64_t>& lengths, int64_t shared_seqs = 0,
        int64_t shared = 0)
      : layout(l) {
    const int64_t batch = static_cast<int64_t>(lengths.size());
    const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
    lens = Tensor(DType::kI32, {batch});
    for (int64_t b = 0; b < batch; ++b)
      lens.data<int32_t>()[b] = static_cast<int32_t>(lengths[static_cast<size_t>(b)]);
    view.layout = l;
    if (l == KvLayout::kContiguous) {
      k = Tensor(o.dtype, {batch, longest, o.kv_heads, o.dim});
      v = Tensor(o.dtype, {batch, longest, o.kv_heads, o.dim});
    } else {
      const int64_t bs = o.block, shared_blocks = shared / bs;
      cols = (longest + bs - 1) / bs;
      int64_t blocks = 0;
      for (int64_t b = 0; b < batch; ++b)
        blocks += (lengths[static_cast<size_t>(b)] + bs - 1) / bs -
                  (b > 0 && b < shared_seqs ? shared_blocks : 0);
      k = Tensor(o.dtype, {blocks, bs, o.kv_heads, o.dim});
      v = Tensor(o.dtype, {blocks, bs, o.kv_heads, o.dim});
      std::vector<int32_t> ids(static_cast<size_t>(blocks));
      std::iota(ids.begin(), ids.end(), 0);
      std::shuffle(ids.begin(), ids.end(), std::mt19937_64(7));
      table = Tensor(DType::kI32, {batch, cols});
      size_t next = 0;
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t j = 0; j * bs < lengths[static_cast<size_t>(b)]; ++j)
          table.data<int32_t>()[b * cols + j] = b > 0 && b < shared_seqs && j < shared_blocks
                                                    ? table.data<int32_t>()[j]
                                                    : ids[next++];
      view.block_table = table.view();
    }
    testing::fill_uniform(k, 1);
    testing::fill_uniform(v, 2);
    view.k = k.view();
    view.v = v.view();
    view.seq_lens = lens.view();
  }
};

// Packed queries and outputs for `rows` new rows per sequence.
struct Rows {
  Tensor q, out, cu;
  explicit Rows(const Options& o, const std::vector<int64_t>& rows) {
    const int64_t total = std::accumulate(rows.begin(), rows.end(), int64_t{0});
    q = Tensor(o.dtype, {total, o.heads, o.dim});
    out = Tensor(o.dtype, {total, o.heads, o.dim});
    testing::fill_uniform(q, 3);
    cu = Tensor(DType::kI32, {static_cast<int64_t>(rows.size()) + 1});
    for (size_t b = 0; b < rows.size(); ++b)
      cu.data<int32_t>()[b + 1] = cu.data<int32_t>()[b] + static_cast<int32_t>(rows[b]);
  }
  AppendParams params(const KvCacheView& kv) const {
    AppendParams p;
    p.q = q.view();
    p.out = out.view();
    p.cu_seqlens = cu.view();
    p.kv = kv;
    return p;
  }
};

// Timed calls alternate between the compared cases (a, b, c, a, b, c, ...), so that load from
// other processes on the machine falls on all of them alike; each case's median.
std::vector<double> interleaved(int reps, const std::vector<std::function<void()>>& cases) {
  for (const auto& c : cases) c();  // warm-up
  std::vector<std::vector<double>> samples(cases.size());
  for (int r = 0; r < std::max(1, reps); ++r)
    for (size_t i = 0; i < cases.size(); ++i) samples[i].push_back(bench::wall_ms(cases[i]));
  std::vector<double> medians;
  for (auto& s : samples) medians.push_back(bench::median(s));
  return medians;
}

// A planned append call: plan once, then run() as often as timed.
struct PlannedAppend {
  const AppendAttention* a;
  AppendParams p;
  AppendPlan plan;
  std::unique_ptr<detail::HostWorkspace> ws;
  PlannedAppend(const AppendAttention& attention, const AppendParams& params)
      : a(&attention), p(params) {
    throw_if_error(a->plan(p, &plan));
    ws = std::make_unique<detail::HostWorkspace>(plan.workspace_bytes);
  }
  void operator()() const { throw_if_error(a->run(plan, p, ws->workspace())); }
};

void chunked(const Options& o, const AppendAttention& a) {
  const int64_t n = o.prompt, c = std::min(o.chunk, o.prompt);
  // One contiguous prefill: flash2 over [1, n] q / k / v, causal.
  std::unique_ptr<Attention> flash;
  throw_if_error(create_flash2_cpu(cpu_options(o), &flash));
  Tensor q(o.dtype, {1, n, o.heads, o.dim}), out(o.dtype, {1, n, o.heads, o.dim});
  Tensor k(o.dtype, {1, n, o.kv_heads, o.dim}), v(o.dtype, {1, n, o.kv_heads, o.dim});
  testing::fill_uniform(q, 3);
  testing::fill_uniform(k, 4);
  testing::fill_uniform(v, 5);
  AttentionParams ap;
  ap.q = q.view();
  ap.k = k.view();
  ap.v = v.view();
  ap.out = out.view();
  ap.mask = MaskKind::kCausal;
  AttentionPlan fplan;
  throw_if_error(flash->plan(ap, &fplan));
  const detail::HostWorkspace fws(fplan.workspace_bytes);
  // The chunks over a filled cache: chunk i sees the (i + 1) * c tokens written so far.
  struct Series {
    Cache cache;
    Rows rows;
    std::vector<std::unique_ptr<PlannedAppend>> calls;
    std::vector<int64_t> ends;
    Series(const Options& o, const AppendAttention& a, KvLayout layout, int64_t n, int64_t c)
        : cache(o, layout, {n}), rows(o, {c}) {
      for (int64_t at = 0; at < n; at += c) {
        const int64_t len = std::min(c, n - at);
        AppendParams p = rows.params(cache.view);
        p.q = p.q.narrowed(0, 0, len);
        p.out = p.out.narrowed(0, 0, len);
        calls.push_back(std::make_unique<PlannedAppend>(a, p));
        ends.push_back(at + len);
      }
    }
    void operator()() {
      for (size_t i = 0; i < calls.size(); ++i) {
        const int64_t begin = i == 0 ? 0 : ends[i - 1];
        cache.lens.data<int32_t>()[0] = static_cast<int32_t>(ends[i]);
        rows.cu.data<int32_t>()[1] = static_cast<int32_t>(ends[i] - begin);
        (*calls[i])();
      }
    }
  };
  Series paged_series(o, a, KvLayout::kPaged, n, c),
      contiguous_series(o, a, KvLayout::kContiguous, n, c);
  const std::vector<double> ms =
      interleaved(o.reps, {[&] { throw_if_error(flash->run(fplan, ap, fws.workspace())); },
                           [&] { paged_series(); }, [&] { contiguous_series(); }});
  const double one = ms[0], paged = ms[1], contiguous = ms[2];

  // append_and_attend: each chunk's K/V written through the page table, then attended.
  KvCacheConfig cc;
  cc.layout = KvLayout::kPaged;
  cc.batch = 1;
  cc.kv_heads = o.kv_heads;
  cc.head_dim = o.dim;
  cc.dtype = o.dtype;
  cc.block_size = o.block;
  cc.max_blocks = (n + o.block - 1) / o.block;
  cc.num_blocks = cc.max_blocks;
  std::vector<double> steps;
  for (int rep = 0; rep < std::max(1, o.reps); ++rep) {
    Tensor ks(o.dtype, kv_storage_shape(cc)), vs(o.dtype, kv_storage_shape(cc));
    KvPageTable table;
    throw_if_error(KvPageTable::create(table_config(cc), &table));
    KvLayerStorage storage;
    throw_if_error(KvLayerStorage::create(&table, ks.view(), vs.view(), {}, &storage));
    Rows rows(o, {c});
    double total = 0;
    for (int64_t at = 0; at < n; at += c) {
      const int64_t len = std::min(c, n - at);
      rows.cu.data<int32_t>()[1] = static_cast<int32_t>(len);
      AppendParams p = rows.params(storage.view(table));
      p.kv.max_seq_len = 0;
      p.q = p.q.narrowed(0, 0, len);
      p.out = p.out.narrowed(0, 0, len);
      const detail::HostWorkspace ws(a.workspace_size(p));
      const TensorView kn = k.view().narrowed(1, at, len), vn = v.view().narrowed(1, at, len);
      TensorView k3 = kn, v3 = vn;  // [1, len, Hkv, D] seen as ragged [len, Hkv, D]
      for (TensorView* t : {&k3, &v3}) {
        t->rank = 3;
        t->shape[0] = len;
        t->shape[1] = o.kv_heads;
        t->shape[2] = o.dim;
        t->stride[0] = kn.stride[1];
        t->stride[1] = kn.stride[2];
        t->stride[2] = 1;
      }
      total += bench::wall_ms([&] {
        throw_if_error(append_and_attend(a, nullptr, &table, storage, k3, v3, p, ws.workspace()));
      });
    }
    steps.push_back(total);
  }
  const double written = bench::median(steps);
  std::printf(
      "chunked  prompt %lld in chunks of %lld: one contiguous flash2 prefill %.1f ms; chunks over "
      "a "
      "paged cache %.1f ms (%.3fx of one prefill), over a contiguous cache %.1f ms (paged / "
      "contiguous %.3f); append_and_attend with the K/V writes %.1f ms (%.3fx)\n",
      static_cast<long long>(n), static_cast<long long>(c), one, paged, paged / one, contiguous,
      paged / contiguous, written, written / one);
}

void cascade(const Options& o, const AppendAttention& a) {
  const int64_t s = o.seqs;
  std::vector<int64_t> lens(static_cast<size_t>(s), o.prefix + o.suffix + 1);
  Cache cache(o, KvLayout::kPaged, lens, s, o.prefix);
  Rows rows(o, std::vector<int64_t>(static_cast<size_t>(s), 1));
  AppendParams flat = rows.params(cache.view);
  Tensor groups(DType::kI32, {1, 3});
  groups.data<int32_t>()[0] = 0;
  groups.data<int32_t>()[1] = static_cast<int32_t>(s);
  groups.data<int32_t>()[2] = static_cast<int32_t>(o.prefix);
  AppendParams shared = flat;
  shared.prefix_groups = groups.view();
  const PlannedAppend flat_call(a, flat), shared_call(a, shared);
  // For scale: one flash2 call of the same query rows against the prefix alone, held contiguous
  // (what the shared pass computes, with the kernel's own K/V reads).
  std::unique_ptr<Attention> flash;
  throw_if_error(create_flash2_cpu(cpu_options(o), &flash));
  Tensor fq(o.dtype, {1, s, o.heads, o.dim}), fout(o.dtype, {1, s, o.heads, o.dim});
  Tensor fk(o.dtype, {1, o.prefix, o.kv_heads, o.dim}),
      fv(o.dtype, {1, o.prefix, o.kv_heads, o.dim});
  testing::fill_uniform(fq, 3);
  testing::fill_uniform(fk, 4);
  testing::fill_uniform(fv, 5);
  AttentionParams ap;
  ap.q = fq.view();
  ap.k = fk.view();
  ap.v = fv.view();
  ap.out = fout.view();
  AttentionPlan fplan;
  throw_if_error(flash->plan(ap, &fplan));
  const detail::HostWorkspace fws(fplan.workspace_bytes);
  const std::vector<double> ms =
      interleaved(o.reps, {[&] { flat_call(); }, [&] { shared_call(); },
                           [&] { throw_if_error(flash->run(fplan, ap, fws.workspace())); }});
  const double without = ms[0], with = ms[1];
  const std::string cascade_reason = shared_call.plan.reason;
  std::printf(
      "cascade  %lld sequences sharing a %lld-token prefix (+%lld own tokens), 1 decode row each: "
      "without groups %.2f ms, with %.2f ms: %.2fx (flash2, the rows against the prefix alone, "
      "contiguous: %.2f ms)\n",
      static_cast<long long>(s), static_cast<long long>(o.prefix), static_cast<long long>(o.suffix),
      without, with, without / with, ms[2]);
  std::printf("         plan: %s\n", cascade_reason.c_str());
}

void mixed(const Options& o, const AppendAttention& a) {
  const int64_t decode_seqs = std::max<int64_t>(o.decode_seqs, 1);  // a decode call needs one
  std::vector<int64_t> lens = {o.mixed_past + o.mixed_chunk};
  std::mt19937_64 rng(11);
  for (int64_t b = 0; b < decode_seqs; ++b)
    lens.push_back(std::uniform_int_distribution<int64_t>(o.min_cache, o.max_cache)(rng));
  std::vector<int64_t> rows(lens.size(), 1);
  rows[0] = o.mixed_chunk;
  Cache cache(o, KvLayout::kPaged, lens);
  Rows all(o, rows);
  const PlannedAppend mixed_call(a, all.params(cache.view));

  // Separate: the chunk alone (sequence 0 of the cache), then a decode call over the others.
  KvCacheView first = cache.view, rest = cache.view;
  first.seq_lens = first.seq_lens.narrowed(0, 0, 1);
  first.block_table = first.block_table.narrowed(0, 0, 1);
  rest.seq_lens = rest.seq_lens.narrowed(0, 1, decode_seqs);
  rest.block_table = rest.block_table.narrowed(0, 1, decode_seqs);
  Rows chunk_rows(o, {o.mixed_chunk});
  const PlannedAppend chunk_call(a, chunk_rows.params(first));
  std::unique_ptr<DecodeAttention> decode;
  throw_if_error(create_decode_cpu(cpu_options(o), &decode));
  Tensor dq(o.dtype, {decode_seqs, 1, o.heads, o.dim}),
      dout(o.dtype, {decode_seqs, 1, o.heads, o.dim});
  testing::fill_uniform(dq, 9);
  DecodeParams dp;
  dp.q = dq.view();
  dp.out = dout.view();
  dp.kv = rest;
  DecodePlan dplan;
  throw_if_error(decode->plan(dp, &dplan));
  const detail::HostWorkspace dws(dplan.workspace_bytes);
  const std::vector<double> ms =
      interleaved(o.reps, {[&] { mixed_call(); }, [&] { chunk_call(); },
                           [&] { throw_if_error(decode->run(dplan, dp, dws.workspace())); }});
  const double one_call = ms[0], chunk_ms = ms[1], decode_ms = ms[2];
  std::printf(
      "mixed    1 chunk of %lld rows (past %lld) + %lld decode rows over %lld..%lld-token caches: "
      "one call %.1f ms; separate %.1f ms (chunk %.1f + decode %.1f): %.3fx\n",
      static_cast<long long>(o.mixed_chunk), static_cast<long long>(o.mixed_past),
      static_cast<long long>(decode_seqs), static_cast<long long>(o.min_cache),
      static_cast<long long>(o.max_cache), one_call, chunk_ms + decode_ms, chunk_ms, decode_ms,
      (chunk_ms + decode_ms) / one_call);
}

}  // namespace
}  // namespace qwen3vl

int main(int argc, char** argv) {
  using namespace qwen3vl;
  const Options o = parse(argc, argv);
  std::unique_ptr<AppendAttention> a;
  throw_if_error(create_append_attention_cpu(cpu_options(o), &a));
  std::printf("%s\nHq %lld, Hkv %lld, D %lld, %s, block %lld, median of %d\n",
              a->describe().c_str(), static_cast<long long>(o.heads),
              static_cast<long long>(o.kv_heads), static_cast<long long>(o.dim), to_string(o.dtype),
              static_cast<long long>(o.block), o.reps);
  if (o.only.empty() || o.only == "chunked") chunked(o, *a);
  if (o.only.empty() || o.only == "cascade") cascade(o, *a);
  if (o.only.empty() || o.only == "mixed") mixed(o, *a);
  return 0;
}
