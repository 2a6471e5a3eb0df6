// The tiered KV store's compute tier in GPU memory (target qwen3vl::attention_cuda). Declarations
// only: no CUDA header is needed to include this file.
//
//   std::unique_ptr<Arena> arena;
//   create_cuda_arena(shape, device, stream, &arena);          // cudaMalloc'd units
//   TieredKvStore::create(table, config, &store, std::move(arena));
//   store->apply(table, l, k_dev, v_dev); store->acquire(table, l, &view);
//   decode->run(plan, {q_dev, view, out_dev}, workspace, stream);  store->release(l);
//
// Every copy runs on `stream`, the stream the decode kernels run on, so a unit is never
// overwritten while a kernel launched before still reads it: moves are ordered after the work
// queued before them. Moves go through a ring of pinned staging buffers (cudaHostAlloc).
#pragma once

#include <memory>

#include "qwen3vl/lifecycle/arena.hpp"

namespace qwen3vl::lifecycle {

// shape.units units on CUDA device `device` (cudaMalloc), per-layer decode metadata, and
// `staging_units` pinned staging buffers. Errors: kInvalidArgument naming the field,
// kOutOfMemory, kDeviceError.
[[nodiscard]] Status create_cuda_arena(const ArenaShape& shape, int device, void* stream,
                                       std::unique_ptr<Arena>* out, size_t staging_units = 64);

}  // namespace qwen3vl::lifecycle
