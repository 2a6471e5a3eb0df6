// qwen3vl-attn-bench decode: decode attention against a long f16 KV cache (default Hq 32 / Hkv 8 /
// D 128, one query row, KV 4096 / 16384 / 65536), reported as K/V bytes read per second and as a
// fraction of the copy bandwidth measured in the same run (bytes read + written per second).
//
// Every ratio divides two figures timed the same way. CUDA: the decode and a 1 GiB
// device-to-device copy (one copy kernel, bench/common/copy_kernel.cu), both as event-timed
// back-to-back launches outside graphs (ms, copy GB/s, ratio) and both replayed from CUDA graphs
// (graph ms, graph copy GB/s, graph ratio); see decode_bench_cuda.cpp. CPU: wall time of
// back-to-back calls against std::memcpy over the same threads, alternated round by round.
//
// On the CPU the cache and the copy buffers are in 2 MiB pages unless --huge-pages 0: with 4 KiB
// pages a 256 MiB cache needs 512 KiB of page tables, whose walks then miss the caches.
#include <sys/mman.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <thread>
#include <vector>

#include "cli/routines.hpp"
#include "common/progress.hpp"
#include "common/timing.hpp"
#include "decode_bench.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/kv_cache.hpp"

namespace qwen3vl::bench {

HostBuffer::HostBuffer(size_t bytes, bool huge_pages) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t rounded = (std::max<size_t>(bytes, 1) + kHuge - 1) / kHuge * kHuge;
  data_.reset(std::aligned_alloc(kHuge, rounded));
  if (!data_) throw Error(StatusCode::kOutOfMemory, "bench buffer");
#ifdef MADV_HUGEPAGE
  if (huge_pages) madvise(data_.get(), rounded, MADV_HUGEPAGE);  // a hint: 4 KiB pages if refused
#else
  (void)huge_pages;
#endif
  std::memset(data_.get(), 0, rounded);
}

HostCopy::HostCopy(int64_t bytes, int threads, bool huge_pages)
    : bytes_(bytes),
      src_(static_cast<size_t>(bytes), huge_pages),
      dst_(static_cast<size_t>(bytes), huge_pages),
      threads_(std::max(1, threads)) {
  std::memset(src_.data(), 1, static_cast<size_t>(bytes));
  sample_gbps();  // warm-up: threads started once
}

// --copy-threads pool: the copy runs on oneTBB's threads (the decode's worker included) instead of
// fresh std::threads, so each decode call finds the worker awake, as a model step would after an
// op on the same pool. With fresh threads the worker sleeps through the copy, and waking it cost
// 0.3-1 ms a call on the 2-vCPU VM (measured: 2 threads at KV 4096 used 1.2-1.4 CPUs, not 2).
static bool g_copy_on_pool = false;  // --copy-threads pool

double HostCopy::sample_gbps() {
  const int64_t part = bytes_ / threads_;
  auto copy_part = [&](int t) {
    std::memcpy(dst_.data() + t * part, src_.data() + t * part, part);
  };
  const double ms = wall_ms([&] {
    if (g_copy_on_pool) {
      tbb::task_arena(threads_).execute(
          [&] { tbb::parallel_for(0, threads_, copy_part, tbb::static_partitioner()); });
      return;
    }
    std::vector<std::thread> pool;
    for (int t = 0; t < threads_; ++t) pool.emplace_back(copy_part, t);
    for (auto& th : pool) th.join();
  });
  return 2.0 * static_cast<double>(part * threads_) / (ms * 1e6);  // bytes read + written
}

namespace {

// Fills a storage-typed tensor with small pseudo-random values quickly (no mt19937 per element).
void fill_fast(Tensor& t, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    x = x * 1664525u + 1013904223u;
    t.set(i, static_cast<float>(x >> 8) / 16777216.0f - 0.5f);
  }
}

}  // namespace

KvCacheConfig cache_config(const DecodeCase& c) {
  KvCacheConfig config;
  config.layout = c.layout;
  config.batch = c.batch;
  config.kv_heads = c.kv_heads;
  config.head_dim = c.head_dim;
  config.dtype = c.dtype;
  config.format = c.format;
  config.max_len = c.kv_len;
  config.block_size = c.block_size;
  config.max_blocks = (c.kv_len + c.block_size - 1) / c.block_size;
  config.num_blocks = config.max_blocks * c.batch;
  return config;
}

DecodeResult run_cpu_decode(const DecodeCase& c) {
  const KvCacheConfig config = cache_config(c);
  const std::vector<int64_t> shape = kv_storage_shape(config);
  const DType store_dtype = kv_storage_dtype(config);
  const size_t store_bytes =
      static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]) * size_of(store_dtype);
  HostBuffer k_buffer(store_bytes, c.huge_pages), v_buffer(store_bytes, c.huge_pages);
  KvStorageViews views;
  views.k = TensorView::contiguous(k_buffer.data(), store_dtype,
                                   {shape[0], shape[1], shape[2], shape[3]});
  views.v = views.k;
  views.v.data = v_buffer.data();
  // Scales (compressed formats), next to nothing else: their own buffers, copied with the codes.
  const std::vector<int64_t> sshape = kv_scale_shape(config);
  const size_t scale_bytes = static_cast<size_t>(kv_scale_bytes(config));
  HostBuffer ks_buffer(scale_bytes, c.huge_pages), vs_buffer(scale_bytes, c.huge_pages);
  if (is_compressed(c.format)) {
    views.k_scales = TensorView::contiguous(ks_buffer.data(), DType::kF16,
                                            {sshape[0], sshape[1], sshape[2], sshape[3]});
    views.v_scales = views.k_scales;
    views.v_scales.data = vs_buffer.data();
  }
  KvCache cache;
  throw_if_error(KvCache::create(config, views, &cache));
  const int64_t chunk = std::min<int64_t>(c.kv_len, 4096);
  const DType source = is_compressed(c.format) ? DType::kF16 : c.dtype;
  Tensor k(source, {c.batch, chunk, c.kv_heads, c.head_dim}),
      v(source, {c.batch, chunk, c.kv_heads, c.head_dim});
  fill_fast(k, 1);
  fill_fast(v, 2);
  for (int64_t done = 0; done < c.kv_len; done += chunk) {
    TensorView kv = k.view(), vv = v.view();
    kv.shape[1] = vv.shape[1] = std::min(chunk, c.kv_len - done);
    throw_if_error(cache.append(kv, vv));
  }

  Tensor q(source, {c.batch, c.rows, c.heads, c.head_dim}),
      out(source, {c.batch, c.rows, c.heads, c.head_dim});
  fill_fast(q, 3);
  DecodeParams p;
  p.q = q.view();
  p.out = out.view();
  p.kv = cache.view();
  p.num_splits = c.num_splits;
  p.integer_qk = c.integer_qk;
  // Copies of the storage the rounds cycle through (same block table): >= 256 MiB in all, so no
  // call finds the previous one's K/V in the L3 (a 4096-key cache is 16.8 MB, the VM's L3 32 MiB).
  const int copies = c.rotate
                         ? static_cast<int>(std::max<size_t>(
                               1, ((size_t(256) << 20) + 2 * store_bytes - 1) / (2 * store_bytes)))
                         : 1;
  std::vector<HostBuffer> copy_store;
  std::vector<DecodeParams> params(1, p);
  auto copy_of = [&](const HostBuffer& from, size_t bytes) {
    HostBuffer& to = copy_store.emplace_back(bytes, c.huge_pages);
    std::memcpy(to.data(), from.data(), bytes);
    return to.data();
  };
  for (int i = 1; i < copies; ++i) {
    DecodeParams& call = params.emplace_back(p);
    call.kv.k.data = copy_of(k_buffer, store_bytes);
    call.kv.v.data = copy_of(v_buffer, store_bytes);
    if (is_compressed(c.format)) {
      call.kv.k_scales.data = copy_of(ks_buffer, scale_bytes);
      call.kv.v_scales.data = copy_of(vs_buffer, scale_bytes);
    }
  }
  CpuOptions options;
  options.num_threads = c.threads;
  std::unique_ptr<DecodeAttention> decode;
  throw_if_error(create_decode_cpu(options, &decode));
  throw_if_error(decode->supports(p));
  std::vector<char> ws(decode->workspace_size(p) + 64);
  const Workspace workspace{ws.data(), ws.size()};

  DecodeResult r;
  r.device = decode->describe();
  r.splits = decode->splits(p);
  const int threads = c.threads > 0 ? c.threads : CpuInfo::current().physical_cores;
  const int64_t copy_bytes = std::max<int64_t>(256 << 20, 4 * CpuInfo::current().l3_bytes);
  HostCopy copier(copy_bytes, threads, c.huge_pages);
  for (int i = 0; i < c.warmup; ++i) throw_if_error(decode->forward(p, workspace));
  // Rounds of one copy sample and one pass of back-to-back decode calls over the copies (one call
  // without rotation), so both see the same machine (other work comes and goes). Calls in a row
  // are how a model's layers use decode; a lone call after the copy (fresh threads) also paid
  // oneTBB's worker wake-up, 0.3-1 ms against ~1 ms of work at KV 4096.
  std::vector<double> ms, copy, cpu;
  auto cpu_now_ms = [] {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
  };
  for (int i = 0; i < c.repeats; ++i) {
    copy.push_back(copier.sample_gbps());
    const double cpu0 = cpu_now_ms();
    ms.push_back(wall_ms([&] {
                   for (const DecodeParams& call : params)
                     throw_if_error(decode->forward(call, workspace));
                 }) /
                 copies);
    cpu.push_back((cpu_now_ms() - cpu0) / copies);
  }
  r.cpu_ms = median(cpu);
  r.ms = median(ms);
  r.min_ms = *std::min_element(ms.begin(), ms.end());
  r.copy_gbps = median(copy);
  r.best_copy_gbps = *std::max_element(copy.begin(), copy.end());
  return r;
}

}  // namespace qwen3vl::bench

namespace qwen3vl::bench {

int decode_routine(const std::vector<std::string>& args) {
  DecodeCase base;
  std::string device = "cpu", layout = "paged", kv_order = "nhd", copy_threads = "fresh",
              format = "float", qk = "float";
  std::vector<int64_t> lens = {4096, 16384, 65536};
  int huge_pages = 1, rotate = 1, tensor_cores = 1;
  ArgParser parser(
      "decode",
      R"(Decode attention against a long KV cache (Hq 32 / Hkv 8 / D 128, f16, one query row by
default), as K/V bytes read per second and as a fraction of a copy's bandwidth (bytes read +
written per second) measured in the same run (was qwen3vl-decode-bench).
cuda: the decode and a 1 GiB device copy (one copy kernel) both as event-timed back-to-back
launches outside graphs (ms, copy GB/s, ratio: the figure to quote), and both replayed from CUDA
graphs (graph ms, graph copy GB/s, graph ratio); the calls cycle through >= 512 MiB of cache
copies so each reads HBM; max|gpu-cpu| checks the output against the CPU kernel.
cpu: wall time of back-to-back calls over >= 256 MiB of cache copies (--rotate 0: one call a
round), against std::memcpy on the same threads, alternated round by round.)");
  parser.add_choice("--device", &device, {"cpu", "cuda"}, "where decode runs");
  parser.add_int_list("--lens", &lens, 1, int64_t(1) << 24, "KV lengths, one line each");
  parser.add_int("--threads", &base.threads, 0, 1024, "CPU threads (0: physical cores)");
  parser.add_choice("--layout", &layout, {"paged", "contiguous"}, "KV cache layout");
  parser.add_int("--block-size", &base.block_size, 1, 4096, "paged: tokens a page");
  parser.add_choice("--kv-order", &kv_order, {"nhd", "hnd"},
                    "cuda: storage [major, minor, Hkv, D] (nhd) or [major, Hkv, minor, D] (hnd)");
  parser.add_int("--splits", &base.num_splits, 0, 4096, "KV splits (0: the kernel's choice)");
  parser.add_int("--rows", &base.rows, 1, 64, "query rows a sequence");
  parser.add_int("--batch", &base.batch, 1, 1024, "sequences");
  parser.add_dtype("--dtype", &base.dtype, {DType::kF16, DType::kBF16, DType::kF32}, "cache dtype");
  parser.add_choice("--format", &format, {"float", "int8", "int4", "fp8e4m3"},
                    "cache format: float (--dtype) or compressed (cpu; q and out f16)");
  parser.add_choice("--qk", &qk, {"float", "int"},
                    "cpu, int8: Q.K in fp32 or as integer dot products (q quantized)");
  parser.add_int("--repeats", &base.repeats, 1, 100000, "timed samples");
  parser.add_int("--huge-pages", &huge_pages, 0, 1,
                 "cpu: 2 MiB pages for the cache and copy buffers");
  parser.add_choice("--copy-threads", &copy_threads, {"fresh", "pool"},
                    "cpu: the copy on fresh std::threads or on oneTBB's pool");
  parser.add_int(
      "--tensor-cores", &tensor_cores, 0, 1,
      "cuda: 1 = the tensor-core kernel where it applies (default); 0 = CUDA cores only");
  parser.add_int(
      "--rotate", &rotate, 0, 1,
      "cpu: 1 = back-to-back calls over cache copies; 0 = one call a round on one cache");
  return run_routine(parser, args, [&](Report& report) {
    base.layout = layout == "contiguous" ? KvLayout::kContiguous : KvLayout::kPaged;
    base.head_major = kv_order == "hnd";
    base.huge_pages = huge_pages != 0;
    base.rotate = rotate != 0;
    base.tensor_cores = tensor_cores != 0;
    g_copy_on_pool = copy_threads == "pool";
    throw_if_error(parse_kv_format(format, &base.format));
    base.integer_qk = qk == "int";
    if (device == "cuda" && is_compressed(base.format))
      return usage_error("decode", make_error(StatusCode::kUnsupported, "--format = ", format,
                                              ": compressed caches decode on the CPU only"));
#if !QWEN3VL_BENCH_CUDA
    if (device == "cuda") return no_cuda_error("decode");
#endif
    std::printf("# decode: B%lld Hq%lld/Hkv%lld D%lld rows %lld %s %s cache, block %lld\n",
                static_cast<long long>(base.batch), static_cast<long long>(base.heads),
                static_cast<long long>(base.kv_heads), static_cast<long long>(base.head_dim),
                static_cast<long long>(base.rows),
                is_compressed(base.format) ? to_string(base.format) : to_string(base.dtype),
                to_string(base.layout), static_cast<long long>(base.block_size));
    if (base.format == KvFormat::kInt8)
      std::printf("# Q.K: %s\n", base.integer_qk ? "integer (--qk int)" : "fp32 (--qk float)");
    std::printf("%-6s %8s %7s %10s %10s %10s %11s %8s %10s %12s %12s %10s %11s %11s\n", "device",
                "kv_len", "splits", "ms", "min ms", "KV GB/s", "copy GB/s", "ratio", "best ratio",
                "GB/cpu-s", "max|gpu-cpu|", "graph ms", "graph copy", "graph ratio");
    auto text = [](double v) { return v > 0 ? std::to_string(v) : std::string("-"); };
    Progress progress("decode", lens.size());
    for (int64_t len : lens) {
      DecodeCase c = base;
      c.kv_len = len;
      DecodeResult r;
      progress.start("kv_len " + std::to_string(len));
#if QWEN3VL_BENCH_CUDA
      r = device == "cuda" ? run_cuda_decode(c) : run_cpu_decode(c);
#else
      r = run_cpu_decode(c);
#endif
      progress.erase();
      const double gbps = c.kv_bytes() / (r.ms * 1e6);
      const double best = c.kv_bytes() / (r.min_ms * 1e6) / r.best_copy_gbps;
      const double graph_ratio = r.graph_ms > 0 && r.graph_copy_gbps > 0
                                     ? c.kv_bytes() / (r.graph_ms * 1e6) / r.graph_copy_gbps
                                     : -1;
      const double cpu_gbps = r.cpu_ms > 0 ? c.kv_bytes() / (r.cpu_ms * 1e6) : -1;
      std::printf(
          "%-6s %8lld %7lld %10.4f %10.4f %10.1f %11.1f %8.3f %10.3f %12s %12s %10s %11s %11s\n",
          device.c_str(), static_cast<long long>(len), static_cast<long long>(r.splits), r.ms,
          r.min_ms, gbps, r.copy_gbps, gbps / r.copy_gbps, best, text(cpu_gbps).c_str(),
          r.max_abs_diff >= 0 ? std::to_string(r.max_abs_diff).c_str() : "-",
          text(r.graph_ms).c_str(), text(r.graph_copy_gbps).c_str(), text(graph_ratio).c_str());
      if (len == lens.front()) std::printf("# %s\n", r.device.c_str());
      std::fflush(stdout);
      report.add({{"device", device},
                  {"kv_len", len},
                  {"layout", to_string(c.layout)},
                  {"kv_order", kv_order},
                  {"dtype", to_string(c.dtype)},
                  {"format", to_string(c.format)},
                  {"qk", c.integer_qk ? "int" : "float"},
                  {"batch", c.batch},
                  {"rows", c.rows},
                  {"splits", r.splits},
                  {"ms", r.ms},
                  {"min_ms", r.min_ms},
                  {"kv_gbps", gbps},
                  {"copy_gbps", r.copy_gbps},
                  {"ratio", gbps / r.copy_gbps},
                  {"best_ratio", best},
                  {"cpu_gbps", measured(cpu_gbps)},
                  {"max_abs_diff", measured(r.max_abs_diff)},
                  {"graph_ms", measured(r.graph_ms)},
                  {"graph_copy_gbps", measured(r.graph_copy_gbps)},
                  {"graph_ratio", measured(graph_ratio)},
                  {"copy_method", device == "cuda" ? "copy kernel" : "std::memcpy"},
                  {"kernel", r.device}});
    }
    return 0;
  });
}

}  // namespace qwen3vl::bench
