// qwen3vl-attn-bench tiered --device cuda: decode steps of a whole model over a TieredKvStore with
// a CUDA arena (GPU memory) and a host store in pinned memory (and a disk store for what neither
// holds), beside the same steps over all-resident device storage. A step is wall-clock timed up
// to a stream synchronise at its end. The transfer bound a step could reach is the bytes it moved
// into the arena over the arena's own host-to-device rate, measured in the same run; the target
// is a step within 1.15 x max(transfer, all-resident compute): the copies overlap the decode.
#include <string>

#include "common/routine.hpp"
#include "lifecycle/tiered_bench.hpp"

#if QWEN3VL_BENCH_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <numeric>
#include <vector>

#include "common/timing.hpp"
#include "qwen3vl/core/tensor.hpp"
#include "qwen3vl/cuda/device_buffer.cuh"
#include "qwen3vl/kv_cache/cuda.hpp"
#include "qwen3vl/lifecycle/cuda_arena.hpp"
#include "qwen3vl/lifecycle/tiered_kv.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#endif

namespace qwen3vl::bench {

#if QWEN3VL_BENCH_CUDA
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

TensorView on_device(const DeviceBuffer& b, DType dtype, std::initializer_list<int64_t> dims) {
  TensorView v = TensorView::contiguous(b.data(), dtype, dims);
  v.device = Device::kCUDA;
  return v;
}

// The arena's host-to-device rate (GB/s) from a pinned host store, as the mover copies.
double arena_upload_gb_s(const lifecycle::ArenaShape& like, cudaStream_t stream) {
  lifecycle::ArenaShape s = like;
  s.units = std::max<int64_t>(1, static_cast<int64_t>(256 * kMiB / s.unit_bytes()));
  s.layers = s.batch = s.max_blocks = 1;
  std::unique_ptr<lifecycle::Arena> arena;
  throw_if_error(lifecycle::create_cuda_arena(s, 0, stream, &arena));
  std::unique_ptr<lifecycle::HostStore> host;
  throw_if_error(
      lifecycle::HostStore::create(s.unit_bytes(), s.units, &host, arena->host_allocator()));
  std::vector<int32_t> slots(static_cast<size_t>(s.units));
  std::iota(slots.begin(), slots.end(), 0);
  std::vector<unsigned char*> payload;
  for (int64_t i = 0; i < s.units; ++i) payload.push_back(host->payload_address(i));
  // Timed as the steps are, wall clock to the end of the copies, so that the step's bound
  // divides like by like.
  std::vector<double> ms;
  for (int r = 0; r < 7; ++r) {
    const double t = wall_ms([&] {
      throw_if_error(arena->upload(slots.data(), payload.data(), slots.size()));
      throw_if_error(arena->fence());
    });
    if (r >= 2) ms.push_back(t);  // two warm-ups
  }
  return static_cast<double>(s.units) * static_cast<double>(s.unit_bytes()) / (median(ms) * 1e6);
}

}  // namespace

int run_tiered_cuda(const TieredCase& c, Report& report) {
  cudaStream_t stream = nullptr;
  throw_if_error(
      cuda_status(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"));
  KvTableConfig tc;
  tc.layout = KvLayout::kPaged;
  tc.batch = 1;
  tc.block_size = c.block;
  tc.max_blocks = (c.context + c.steps + c.block - 1) / c.block;
  tc.num_blocks = tc.max_blocks;
  const double block_bytes = 2.0 * c.block * c.kv_heads * c.head_dim * 2;
  const double kv_mib = block_bytes * tc.num_blocks * c.layers / kMiB;
  const int64_t units = tc.num_blocks * c.layers;
  lifecycle::ArenaShape shape;
  shape.units = std::max<int64_t>(1, static_cast<int64_t>(c.arena_mib * kMiB / block_bytes));
  shape.block_size = c.block;
  shape.kv_heads = c.kv_heads;
  shape.head_dim = c.head_dim;
  shape.dtype = DType::kF16;
  shape.layers = static_cast<int32_t>(c.layers);
  shape.batch = 1;
  shape.max_blocks = tc.max_blocks;
  const double upload_gb_s = arena_upload_gb_s(shape, stream);

  KvPageTable table;
  throw_if_error(KvPageTable::create(tc, &table));
  lifecycle::TieredKvConfig cfg;
  cfg.layers = static_cast<int32_t>(c.layers);
  cfg.kv_heads = c.kv_heads;
  cfg.head_dim = c.head_dim;
  cfg.dtype = DType::kF16;
  cfg.host_blocks = std::min(units, static_cast<int64_t>(c.host_mib * kMiB / block_bytes));
  if (shape.units + cfg.host_blocks < units + tc.num_blocks) {  // the rest on disk
    cfg.disk_blocks = units;
    std::filesystem::create_directories(c.disk_dir);
    cfg.disk_path = c.disk_dir + "/kv.slots";
  }
  cfg.policy = c.policy == "lru" ? lifecycle::EvictionPolicy::kLru
                                 : lifecycle::EvictionPolicy::kScheduleDriven;
  cfg.prefetch_layers = static_cast<int32_t>(c.prefetch);
  cfg.keep_disk_copies = c.disk_copies != 0;
  std::unique_ptr<lifecycle::Arena> arena;
  throw_if_error(lifecycle::create_cuda_arena(shape, 0, stream, &arena));
  std::unique_ptr<lifecycle::TieredKvStore> store;
  throw_if_error(lifecycle::TieredKvStore::create(table, cfg, &store, std::move(arena)));
  std::printf(
      "# %s\n# KV %.1f MiB: %lld layers x %lld blocks of %.0f KiB; the arena's upload "
      "rate %.1f GB/s\n",
      store->describe().c_str(), kv_mib, static_cast<long long>(c.layers),
      static_cast<long long>(tc.num_blocks), block_bytes / 1024, upload_gb_s);

  std::unique_ptr<DecodeAttention> decode;
  throw_if_error(create_decode_cuda(CudaOptions{}, &decode));
  Tensor chunk_host(DType::kF16, {1, c.chunk, c.kv_heads, c.head_dim}),
      q_host(DType::kF16, {1, 1, c.heads, c.head_dim});
  testing::fill_uniform(chunk_host, 1);
  testing::fill_uniform(q_host, 3);
  const DeviceBuffer chunk = DeviceBuffer::copy_of(chunk_host), q = DeviceBuffer::copy_of(q_host);
  DeviceBuffer out(q.bytes());
  const TensorView qv = on_device(q, DType::kF16, {1, 1, c.heads, c.head_dim});
  const TensorView ov = on_device(out, DType::kF16, {1, 1, c.heads, c.head_dim});
  const auto rows = [&](int64_t n) {
    TensorView v = on_device(chunk, DType::kF16, {1, c.chunk, c.kv_heads, c.head_dim});
    v.shape[1] = n;
    return v;
  };
  DeviceBuffer workspace;
  // One decode step of every layer, timed to the stream's end.
  const auto step = [&](auto&& apply, auto&& view, auto&& done) {
    return wall_ms([&] {
      throw_if_error(table.begin_append(1));
      throw_if_error(table.sync_mirror(stream));
      for (int64_t l = 0; l < c.layers; ++l) {
        throw_if_error(apply(l));
        DecodeParams p;
        p.q = qv;
        p.out = ov;
        throw_if_error(view(l, &p.kv));
        const size_t need = decode->workspace_size(p);
        if (need > workspace.bytes()) workspace = DeviceBuffer(need);
        throw_if_error(decode->forward(p, Workspace{workspace.data(), workspace.bytes()}, stream));
        throw_if_error(done(l));
      }
      throw_if_error(table.commit());
      throw_if_error(cuda_status(cudaStreamSynchronize(stream), "cudaStreamSynchronize"));
    });
  };
  for (int64_t at = 0; at < c.context; at += c.chunk) {
    const int64_t n = std::min(c.chunk, c.context - at);
    throw_if_error(table.begin_append(n));
    throw_if_error(store->sync(table));
    for (int64_t l = 0; l < c.layers; ++l)
      throw_if_error(store->apply(table, static_cast<int32_t>(l), rows(n), rows(n)));
    throw_if_error(table.commit());
  }
  throw_if_error(store->wait_idle());
  const lifecycle::TieredKvStats before = store->stats();
  std::vector<double> tiered;
  for (int64_t s = 0; s < c.steps; ++s)
    tiered.push_back(step(
        [&](int64_t l) {
          if (l == 0) throw_if_error(store->sync(table));
          return store->apply(table, static_cast<int32_t>(l), rows(1), rows(1));
        },
        [&](int64_t l, KvCacheView* v) {
          return store->acquire(table, static_cast<int32_t>(l), v);
        },
        [&](int64_t l) { return store->release(static_cast<int32_t>(l)); }));
  const lifecycle::TieredKvStats& after = store->stats();
  const double per_step = 1.0 / static_cast<double>(c.steps);
  using lifecycle::Tier;
  const auto moved = [&](Tier a, Tier b) {
    const size_t i = static_cast<size_t>(a), j = static_cast<size_t>(b);
    return (after.units_moved[i][j] - before.units_moved[i][j]) * per_step;
  };
  const double in_blocks = moved(Tier::kHost, Tier::kDevice) + moved(Tier::kDisk, Tier::kDevice);
  const double transfer_ms = in_blocks * block_bytes / (upload_gb_s * 1e6);
  const double tiered_ms = median(tiered);
  std::printf(
      "tiered: %.2f ms a step; a step moves (blocks) host->arena %.0f, disk->arena %.0f, "
      "arena->host %.0f, arena->disk %.0f: %.1f MiB in, %.2f ms at %.1f GB/s\n",
      tiered_ms, moved(Tier::kHost, Tier::kDevice), moved(Tier::kDisk, Tier::kDevice),
      moved(Tier::kDevice, Tier::kHost), moved(Tier::kDevice, Tier::kDisk),
      in_blocks * block_bytes / kMiB, transfer_ms, upload_gb_s);
  store.reset();

  // All resident: per-layer device storage over a table of its own.
  double resident_ms = 0;
  size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  if (kv_mib * kMiB < 0.8 * static_cast<double>(free_bytes)) {
    KvPageTable flat;
    throw_if_error(KvPageTable::create(tc, &flat));
    std::vector<DeviceBuffer> k, v;
    std::vector<KvLayerStorage> storage(static_cast<size_t>(c.layers));
    const size_t bytes = static_cast<size_t>(block_bytes / 2) * static_cast<size_t>(tc.num_blocks);
    for (int64_t l = 0; l < c.layers; ++l) {
      k.emplace_back(bytes);
      v.emplace_back(bytes);
    }
    for (int64_t l = 0; l < c.layers; ++l)
      throw_if_error(KvLayerStorage::create(
          &flat, on_device(k[l], DType::kF16, {tc.num_blocks, c.block, c.kv_heads, c.head_dim}),
          on_device(v[l], DType::kF16, {tc.num_blocks, c.block, c.kv_heads, c.head_dim}), {},
          &storage[static_cast<size_t>(l)], &cuda_kv_storage_ops()));
    for (int64_t at = 0; at < c.context; at += c.chunk) {
      const int64_t n = std::min(c.chunk, c.context - at);
      throw_if_error(flat.begin_append(n));
      for (int64_t l = 0; l < c.layers; ++l)
        throw_if_error(storage[static_cast<size_t>(l)].apply(flat, rows(n), rows(n), stream));
      throw_if_error(flat.commit());
    }
    std::vector<double> resident;
    for (int64_t s = 0; s < c.steps; ++s) {
      resident.push_back(wall_ms([&] {
        throw_if_error(flat.begin_append(1));
        throw_if_error(flat.sync_mirror(stream));
        for (int64_t l = 0; l < c.layers; ++l) {
          const KvLayerStorage& st = storage[static_cast<size_t>(l)];
          throw_if_error(st.apply(flat, rows(1), rows(1), stream));
          DecodeParams p;
          p.q = qv;
          p.out = ov;
          p.kv = st.device_view(flat);
          const size_t need = decode->workspace_size(p);
          if (need > workspace.bytes()) workspace = DeviceBuffer(need);
          throw_if_error(
              decode->forward(p, Workspace{workspace.data(), workspace.bytes()}, stream));
        }
        throw_if_error(flat.commit());
        throw_if_error(cuda_status(cudaStreamSynchronize(stream), "cudaStreamSynchronize"));
      }));
    }
    resident_ms = median(resident);
  }
  const double bound = std::max(transfer_ms, resident_ms);
  std::printf("all resident: %.2f ms a step%s; tiered / max(transfer, compute) = %.2f\n",
              resident_ms, resident_ms > 0 ? "" : " (not run: the KV does not fit)",
              bound > 0 ? tiered_ms / bound : 0.0);
  report.add({{"mode", "tiered_cuda"},
              {"layers", c.layers},
              {"context", c.context},
              {"kv_mib", kv_mib},
              {"arena_mib", c.arena_mib},
              {"host_mib", c.host_mib},
              {"step_ms", tiered_ms},
              {"all_resident_ms", resident_ms},
              {"moved_in_mib", in_blocks * block_bytes / kMiB},
              {"arena_upload_gb_s", upload_gb_s},
              {"transfer_ms", transfer_ms},
              {"ratio_to_bound", bound > 0 ? tiered_ms / bound : 0.0},
              {"timing", "wall clock to a stream synchronise per step"}});
  cudaStreamDestroy(stream);
  return 0;
}
#else
int run_tiered_cuda(const TieredCase&, Report&) { return no_cuda_error("tiered --device cuda"); }
#endif

}  // namespace qwen3vl::bench
