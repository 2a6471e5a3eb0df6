// qwen3vl-attn-bench tier-copy (CUDA builds): the tiered KV store's host tier moving units into and
// out of a CUDA arena (the arena's copy kernel over the host store's pinned slots, as the mover
// runs it) beside cudaMemcpyAsync of the same bytes from one pinned buffer, and beside one
// cudaMemcpyAsync per unit. Every figure is CUDA-event timed on one stream, outside any graph.
#include <string>
#include <vector>

#include "cli/routines.hpp"

#if QWEN3VL_BENCH_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>

#include "common/cuda_timing.hpp"
#include "common/timing.hpp"
#include "qwen3vl/lifecycle/block_store.hpp"
#include "qwen3vl/lifecycle/cuda_arena.hpp"
#endif

namespace qwen3vl::bench {

#if QWEN3VL_BENCH_CUDA
int tier_copy_routine(const std::vector<std::string>& args) {
  int64_t units = 4096, kv_heads = 8, head_dim = 128, block = 16, repeats = 10;
  std::string order = "shuffled";
  ArgParser parser("tier-copy", R"(Host tier <-> CUDA arena: --units units of one block (K and V,
f16, --block x --kv-heads x --head-dim) moved by the arena's copy kernel between the host store's
pinned slots and arena slots (--order: shuffled arena slots, as a running store's are, or
sequential), against cudaMemcpyAsync of the same bytes from one pinned buffer (the ceiling) and
one cudaMemcpyAsync per unit. Reports GB/s each way and store / cudaMemcpyAsync.)");
  parser.add_int("--units", &units, 1, 1 << 20, "units moved per call");
  parser.add_int("--kv-heads", &kv_heads, 1, 64, "KV heads");
  parser.add_int("--head-dim", &head_dim, 8, 256, "head dim");
  parser.add_int("--block", &block, 16, 256, "tokens per block (a multiple of 16)");
  parser.add_int("--repeats", &repeats, 1, 1000, "timed samples; the median is reported");
  parser.add_choice("--order", &order, {"shuffled", "sequential"}, "arena slot order");
  return run_routine(parser, args, [&](Report& report) {
    cudaStream_t stream = nullptr;
    throw_if_error(
        cuda_status(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"));
    lifecycle::ArenaShape shape;
    shape.units = units;
    shape.block_size = block;
    shape.kv_heads = kv_heads;
    shape.head_dim = head_dim;
    shape.dtype = DType::kF16;
    shape.layers = 1;
    shape.batch = 1;
    shape.max_blocks = 1;
    std::unique_ptr<lifecycle::Arena> arena;
    throw_if_error(lifecycle::create_cuda_arena(shape, 0, stream, &arena));
    const size_t unit = shape.unit_bytes();
    std::unique_ptr<lifecycle::HostStore> host;
    throw_if_error(lifecycle::HostStore::create(unit, units, &host, arena->host_allocator()));
    std::vector<int32_t> slots(static_cast<size_t>(units));
    std::iota(slots.begin(), slots.end(), 0);
    if (order == "shuffled") std::shuffle(slots.begin(), slots.end(), std::mt19937(7));
    std::vector<unsigned char*> payload(static_cast<size_t>(units));
    for (int64_t i = 0; i < units; ++i) {
      payload[static_cast<size_t>(i)] = host->payload_address(i);
      std::memset(payload[static_cast<size_t>(i)], static_cast<int>(i), unit);
    }
    // The ceiling: the same bytes in one pinned buffer and one device buffer.
    const size_t bytes = unit * static_cast<size_t>(units);
    void *pinned = nullptr, *device = nullptr;
    throw_if_error(
        cuda_status(cudaHostAlloc(&pinned, bytes, cudaHostAllocDefault), "cudaHostAlloc"));
    throw_if_error(cuda_status(cudaMalloc(&device, bytes), "cudaMalloc"));
    const auto measure = [&](const auto& call) {
      std::vector<double> ms;
      throw_if_error(cuda_event_samples(stream, 2, static_cast<int>(repeats), 1, call, &ms));
      return static_cast<double>(bytes) / (median(ms) * 1e6);  // GB/s
    };
    const double up = measure([&]() -> Status {
      QWEN3VL_RETURN_IF_ERROR(arena->upload(slots.data(), payload.data(), slots.size()));
      // The copies run on the arena's copy stream: the timed stream waits for them.
      return arena->before_use(slots.data(), slots.size());
    });
    const double down =
        measure([&] { return arena->download(slots.data(), payload.data(), slots.size()); });
    const double ref_up = measure([&] {
      return cuda_status(cudaMemcpyAsync(device, pinned, bytes, cudaMemcpyHostToDevice, stream),
                         "cudaMemcpyAsync");
    });
    const double ref_down = measure([&] {
      return cuda_status(cudaMemcpyAsync(pinned, device, bytes, cudaMemcpyDeviceToHost, stream),
                         "cudaMemcpyAsync");
    });
    const auto per_unit = [&](bool to_device) {
      return measure([&]() -> Status {
        for (int64_t i = 0; i < units; ++i) {
          auto* d = static_cast<unsigned char*>(device) + static_cast<size_t>(slots[i]) * unit;
          auto* h = payload[static_cast<size_t>(i)];
          QWEN3VL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(to_device ? d : h, to_device ? h : d, unit,
                                                       cudaMemcpyDefault, stream));
        }
        return Status();
      });
    };
    const double unit_up = per_unit(true), unit_down = per_unit(false);
    cudaFreeHost(pinned);
    cudaFree(device);
    std::printf("# %s; host store: %s\n", arena->describe().c_str(), host->describe().c_str());
    std::printf("%lld units of %zu KiB (%s):\n", static_cast<long long>(units), unit / 1024,
                order.c_str());
    std::printf(
        "  host -> arena  %7.2f GB/s (one cudaMemcpyAsync of it all %7.2f; one a unit %7.2f)"
        "  ratio %.3f\n",
        up, ref_up, unit_up, up / ref_up);
    std::printf(
        "  arena -> host  %7.2f GB/s (one cudaMemcpyAsync of it all %7.2f; one a unit %7.2f)"
        "  ratio %.3f\n",
        down, ref_down, unit_down, down / ref_down);
    report.add({{"units", units},
                {"unit_bytes", static_cast<int64_t>(unit)},
                {"order", order},
                {"h2d_gb_s", up},
                {"d2h_gb_s", down},
                {"memcpy_h2d_gb_s", ref_up},
                {"memcpy_d2h_gb_s", ref_down},
                {"per_unit_h2d_gb_s", unit_up},
                {"per_unit_d2h_gb_s", unit_down},
                {"h2d_ratio", up / ref_up},
                {"d2h_ratio", down / ref_down},
                {"timing", "CUDA events, median, outside graphs"}});
    cudaStreamDestroy(stream);
    return 0;
  });
}
#else
int tier_copy_routine(const std::vector<std::string>&) { return no_cuda_error("tier-copy"); }
#endif

}  // namespace qwen3vl::bench
