// qwen3vl-attn-bench tiered: decode steps of a whole model (every layer) over a TieredKvStore whose
// arena holds a budget of the KV and whose host and disk stores hold the rest, beside the same
// steps over all-resident storage when it fits (--ram-mib). Prints tokens/s and what moved.
#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cli/routines.hpp"
#include "common/timing.hpp"
#include "lifecycle/tiered_bench.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/kv_cache/decode.hpp"
#include "qwen3vl/kv_cache/layer_storage.hpp"
#include "qwen3vl/lifecycle/tiered_kv.hpp"
#include "qwen3vl/testing/random_fill.hpp"

namespace qwen3vl::bench {
namespace {

using lifecycle::TieredKvStore;

constexpr double kMiB = 1024.0 * 1024.0;

// One decode step of every layer: the token's rows appended, then decode over `view(l)`.
template <class View>
double step_ms(KvPageTable& table, const TieredCase& c, const DecodeAttention& decode,
               const Tensor& q, Tensor& out, const std::function<Status(int64_t)>& apply,
               const View& view, const std::function<Status(int64_t)>& done) {
  return wall_ms([&] {
    throw_if_error(table.begin_append(1));
    DecodePlan plan;
    std::vector<unsigned char> ws;
    for (int64_t l = 0; l < c.layers; ++l) {
      throw_if_error(apply(l));
      DecodeParams p;
      p.q = q.view();
      p.out = out.view();
      throw_if_error(view(l, &p.kv));
      if (l == 0) {  // one plan a step serves every layer
        throw_if_error(decode.plan(p, &plan));
        ws.resize(plan.workspace_bytes);
      }
      throw_if_error(decode.run(plan, p, Workspace{ws.data(), ws.size()}));
      throw_if_error(done(l));
    }
    throw_if_error(table.commit());
  });
}

}  // namespace

int tiered_routine(const std::vector<std::string>& args) {
  TieredCase c;
  ArgParser parser(
      "tiered",
      R"(Decode steps of a whole model (every layer, one sequence, f16 KV) over a TieredKvStore in
fetch mode: a compute arena of --arena-mib, a host store of --host-mib, the rest in a slot file
under --disk-dir (io_uring + O_DIRECT where the file system allows). The context is prefilled
through the store, then --steps decode steps are timed (wall clock). Beside it, the same steps over
all-resident storage when the whole KV fits in --ram-mib. Reports tokens/s, the blocks each tier
pair moved, fetches (the layer waited), prefetches and arena hits per step, and the mover's time:
stall (the decode thread waiting for moves), busy (copying) and overlap = 1 - stall / busy.)");
  parser.add_int("--layers", &c.layers, 1, 1024, "layers");
  parser.add_int("--heads", &c.heads, 1, 1024, "query heads");
  parser.add_int("--kv-heads", &c.kv_heads, 1, 1024, "KV heads");
  parser.add_int("--head-dim", &c.head_dim, 8, 256, "head dim");
  parser.add_int("--context", &c.context, 16, int64_t(1) << 24, "tokens in the cache");
  parser.add_int("--steps", &c.steps, 1, 100000, "timed decode steps");
  parser.add_int("--chunk", &c.chunk, 16, int64_t(1) << 20, "prefill tokens per append");
  parser.add_int("--threads", &c.threads, 1, 1024, "CPU threads of the decode kernel");
  parser.add_int("--prefetch-layers", &c.prefetch, 0, 1024, "layers prefetched ahead");
  parser.add_int("--async", &c.async, 0, 1,
                 "1: a worker thread moves the blocks; 0: the decode thread does");
  parser.add_int("--disk-copies", &c.disk_copies, 0, 1,
                 "1: a block read up from disk keeps its disk slot while unchanged, so its "
                 "eviction writes nothing; 0: every eviction writes");
  parser.add_number("--arena-mib", &c.arena_mib, 0.01, 1 << 24, "compute arena budget");
  parser.add_number("--host-mib", &c.host_mib, 0, 1 << 24, "host store budget");
  parser.add_number("--ram-mib", &c.ram_mib, 0, 1 << 24,
                    "all-resident baseline only when the whole KV fits in this");
  parser.add_string("--disk-dir", &c.disk_dir, "DIR", "where the slot file goes");
  parser.add_choice("--policy", &c.policy, {"schedule", "lru"}, "eviction policy");
  parser.add_choice("--device", &c.device, {"cpu", "cuda"},
                    "cuda: a CUDA arena (--arena-mib of GPU memory), CUDA decode, the host store "
                    "in pinned memory; the baseline is all-resident device storage");
  return run_routine(parser, args, [&](Report& report) {
    if (c.device == "cuda") return run_tiered_cuda(c, report);
    KvTableConfig tc;
    tc.layout = KvLayout::kPaged;
    tc.batch = 1;
    tc.block_size = c.block;
    tc.max_blocks = (c.context + c.steps + c.block - 1) / c.block;
    tc.num_blocks = tc.max_blocks;
    KvPageTable table;
    throw_if_error(KvPageTable::create(tc, &table));
    const double block_bytes = 2.0 * c.block * c.kv_heads * c.head_dim * 2;  // K + V, f16
    const double kv_mib = block_bytes * tc.num_blocks * c.layers / kMiB;
    lifecycle::TieredKvConfig cfg;
    cfg.layers = static_cast<int32_t>(c.layers);
    cfg.kv_heads = c.kv_heads;
    cfg.head_dim = c.head_dim;
    cfg.dtype = DType::kF16;
    cfg.arena_blocks = std::max<int64_t>(1, static_cast<int64_t>(c.arena_mib * kMiB / block_bytes));
    cfg.host_blocks = static_cast<int64_t>(c.host_mib * kMiB / block_bytes);
    const int64_t units = tc.num_blocks * c.layers;
    // Room on disk for every block: an eviction needs a free slot below before its arena slot
    // frees, so the tiers together hold more than the units.
    cfg.disk_blocks = units;
    std::filesystem::create_directories(c.disk_dir);
    cfg.disk_path = c.disk_dir + "/kv.slots";
    cfg.policy = c.policy == "lru" ? lifecycle::EvictionPolicy::kLru
                                   : lifecycle::EvictionPolicy::kScheduleDriven;
    cfg.prefetch_layers = static_cast<int32_t>(c.prefetch);
    cfg.async_mover = c.async != 0;
    cfg.keep_disk_copies = c.disk_copies != 0;
    std::unique_ptr<TieredKvStore> store;
    throw_if_error(TieredKvStore::create(table, cfg, &store));
    std::printf("# %s\n# KV %.1f MiB: %lld layers x %lld blocks of %.0f KiB\n",
                store->describe().c_str(), kv_mib, static_cast<long long>(c.layers),
                static_cast<long long>(tc.num_blocks), block_bytes / 1024);

    std::unique_ptr<DecodeAttention> decode;
    CpuOptions cpu;
    cpu.num_threads = static_cast<int>(c.threads);
    throw_if_error(create_decode_cpu(cpu, &decode));
    Tensor chunk(DType::kF16, {1, c.chunk, c.kv_heads, c.head_dim});
    testing::fill_uniform(chunk, 1);
    Tensor row(DType::kF16, {1, 1, c.kv_heads, c.head_dim});
    testing::fill_uniform(row, 2);
    Tensor q(DType::kF16, {1, 1, c.heads, c.head_dim}),
        out(DType::kF16, {1, 1, c.heads, c.head_dim});
    testing::fill_uniform(q, 3);

    // Prefill through the store, a chunk at a time (the same rows in every layer).
    const double prefill_ms = wall_ms([&] {
      for (int64_t at = 0; at < c.context; at += c.chunk) {
        const int64_t n = std::min(c.chunk, c.context - at);
        TensorView rows = chunk.view();
        rows.shape[1] = n;
        throw_if_error(table.begin_append(n));
        throw_if_error(store->sync(table));
        for (int64_t l = 0; l < c.layers; ++l)
          throw_if_error(store->apply(table, static_cast<int32_t>(l), rows, rows));
        throw_if_error(table.commit());
      }
    });
    throw_if_error(store->wait_idle());
    const lifecycle::TieredKvStats before = store->stats();
    std::vector<double> tiered;
    for (int64_t s = 0; s < c.steps; ++s)
      tiered.push_back(step_ms(
          table, c, *decode, q, out,
          [&](int64_t l) {
            return store->apply(table, static_cast<int32_t>(l), row.view(), row.view());
          },
          [&](int64_t l, KvCacheView* v) {
            return store->acquire(table, static_cast<int32_t>(l), v);
          },
          [&](int64_t l) { return store->release(static_cast<int32_t>(l)); }));
    throw_if_error(store->wait_idle());  // the last step's prefetches, outside the timing
    const lifecycle::TieredKvStats& after = store->stats();
    const double per_step = 1.0 / static_cast<double>(c.steps);
    const double stall = (after.stall_ms - before.stall_ms) * per_step,
                 busy = (after.busy_ms - before.busy_ms) * per_step;
    const double overlap = busy > 0 ? 1.0 - stall / busy : 0.0;
    const auto moved = [&](lifecycle::Tier a, lifecycle::Tier b) {
      const size_t i = static_cast<size_t>(a), j = static_cast<size_t>(b);
      return (after.units_moved[i][j] - before.units_moved[i][j]) * per_step;
    };
    using lifecycle::Tier;
    const double step = median(tiered);
    // The stall of each layer a step, and the bytes each tier gave and took.
    double worst_layer = 0, layer_sum = 0;
    for (size_t l = 0; l < after.layer_stall_ms.size(); ++l) {
      const double ms = (after.layer_stall_ms[l] - before.layer_stall_ms[l]) * per_step;
      worst_layer = std::max(worst_layer, ms);
      layer_sum += ms;
    }
    const double hits = static_cast<double>(after.hits - before.hits),
                 fetched = static_cast<double>(after.fetched - before.fetched);
    const double hit_rate = hits + fetched > 0 ? hits / (hits + fetched) : 0;
    std::array<double, lifecycle::kTierCount> read_mib{}, written_mib{};
    for (int a = 0; a < lifecycle::kTierCount; ++a)
      for (int b = 0; b < lifecycle::kTierCount; ++b) {
        const double mib = moved(static_cast<Tier>(a), static_cast<Tier>(b)) * block_bytes / kMiB;
        read_mib[static_cast<size_t>(a)] += mib;
        written_mib[static_cast<size_t>(b)] += mib;
      }
    std::printf("prefill through the store: %.1f s\n", prefill_ms / 1e3);
    std::printf(
        "tiered: %.1f ms a step, %.2f tokens/s; a step moves (blocks): host->arena %.0f, "
        "disk->arena %.0f, arena->host %.0f, arena->disk %.0f, host->disk %.0f; fetched "
        "%.0f, prefetched %.0f, hits %.0f; evictions into a clean disk copy (no write) %.0f\n"
        "mover (%s): a step stalls %.2f ms waiting for moves, copies for %.2f ms; overlap %.2f\n"
        "a step reads %.1f MiB from the disk and writes %.1f MiB there; arena hit rate %.3f; "
        "stall per layer: mean %.2f ms, worst %.2f ms\n",
        step, 1e3 / step, moved(Tier::kHost, Tier::kDevice), moved(Tier::kDisk, Tier::kDevice),
        moved(Tier::kDevice, Tier::kHost), moved(Tier::kDevice, Tier::kDisk),
        moved(Tier::kHost, Tier::kDisk), (after.fetched - before.fetched) * per_step,
        (after.prefetched - before.prefetched) * per_step, (after.hits - before.hits) * per_step,
        (after.clean_drops - before.clean_drops) * per_step,
        c.async ? "asynchronous" : "synchronous", stall, busy, overlap, read_mib[2], written_mib[2],
        hit_rate, layer_sum / static_cast<double>(c.layers), worst_layer);
    ReportRow r{{"mode", "tiered"},
                {"layers", c.layers},
                {"context", c.context},
                {"kv_mib", kv_mib},
                {"arena_mib", c.arena_mib},
                {"host_mib", c.host_mib},
                {"policy", c.policy},
                {"step_ms", step},
                {"tokens_per_s", 1e3 / step},
                {"host_to_arena_blocks", moved(Tier::kHost, Tier::kDevice)},
                {"disk_to_arena_blocks", moved(Tier::kDisk, Tier::kDevice)},
                {"arena_to_host_blocks", moved(Tier::kDevice, Tier::kHost)},
                {"arena_to_disk_blocks", moved(Tier::kDevice, Tier::kDisk)},
                {"fetched_blocks", (after.fetched - before.fetched) * per_step},
                {"prefetched_blocks", (after.prefetched - before.prefetched) * per_step},
                {"arena_hits", (after.hits - before.hits) * per_step},
                {"clean_drops", (after.clean_drops - before.clean_drops) * per_step},
                {"disk_copies", c.disk_copies},
                {"async_mover", c.async},
                {"stall_ms", stall},
                {"busy_ms", busy},
                {"overlap", overlap},
                {"hit_rate", hit_rate},
                {"layer_stall_ms_mean", layer_sum / static_cast<double>(c.layers)},
                {"layer_stall_ms_max", worst_layer},
                {"arena_read_mib", read_mib[0]},
                {"host_read_mib", read_mib[1]},
                {"disk_read_mib", read_mib[2]},
                {"arena_written_mib", written_mib[0]},
                {"host_written_mib", written_mib[1]},
                {"disk_written_mib", written_mib[2]},
                {"block_bytes", block_bytes},
                {"store", store->describe()}};
    report.add(r);

    if (kv_mib <= c.ram_mib) {  // the same steps over all-resident storage
      KvPageTable flat;
      throw_if_error(KvPageTable::create(tc, &flat));
      std::vector<Tensor> k, v;
      std::vector<KvLayerStorage> storage(static_cast<size_t>(c.layers));
      for (int64_t l = 0; l < c.layers; ++l) {
        k.emplace_back(DType::kF16,
                       std::vector<int64_t>{tc.num_blocks, c.block, c.kv_heads, c.head_dim});
        v.emplace_back(DType::kF16,
                       std::vector<int64_t>{tc.num_blocks, c.block, c.kv_heads, c.head_dim});
      }
      for (int64_t l = 0; l < c.layers; ++l)
        throw_if_error(KvLayerStorage::create(&flat, k[l].view(), v[l].view(), {}, &storage[l]));
      for (int64_t at = 0; at < c.context; at += c.chunk) {
        const int64_t n = std::min(c.chunk, c.context - at);
        TensorView rows = chunk.view();
        rows.shape[1] = n;
        throw_if_error(flat.begin_append(n));
        for (int64_t l = 0; l < c.layers; ++l) throw_if_error(storage[l].apply(flat, rows, rows));
        throw_if_error(flat.commit());
      }
      std::vector<double> resident;
      for (int64_t s = 0; s < c.steps; ++s)
        resident.push_back(step_ms(
            flat, c, *decode, q, out,
            [&](int64_t l) { return storage[l].apply(flat, row.view(), row.view()); },
            [&](int64_t l, KvCacheView* view) {
              *view = storage[l].view(flat);
              return Status();
            },
            [](int64_t) { return Status(); }));
      const double all = median(resident);
      std::printf("all resident: %.1f ms a step, %.2f tokens/s; tiered / all-resident time %.2f\n",
                  all, 1e3 / all, step / all);
      report.add({{"mode", "all_resident"},
                  {"layers", c.layers},
                  {"context", c.context},
                  {"kv_mib", kv_mib},
                  {"step_ms", all},
                  {"tokens_per_s", 1e3 / all}});
    } else {
      std::printf("all resident: not run (KV %.0f MiB > --ram-mib %.0f)\n", kv_mib, c.ram_mib);
    }
    return 0;
  });
}

}  // namespace qwen3vl::bench
