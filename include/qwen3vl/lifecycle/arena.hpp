// Arena: the compute tier of the tiered KV store, the units the decode kernels read, in the
// memory of the device they run on, and the copies between those units and host memory. The store
// (tiered_kv.hpp) is written against this interface: host_arena() for the CPU kernels,
// create_cuda_arena() (qwen3vl/lifecycle/cuda_arena.hpp) for the CUDA ones.
//
// Units are one layer's K then V of one block: [block_size, Hkv, D] each, side by side, so that a
// unit is one contiguous payload for the stores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/core/tensor_view.hpp"
#include "qwen3vl/kv_cache/layer_storage.hpp"
#include "qwen3vl/lifecycle/host_allocator.hpp"

namespace qwen3vl::lifecycle {

struct ArenaShape {
  int64_t units = 0;  // slots
  int64_t block_size = 0, kv_heads = 0, head_dim = 0;
  DType dtype = DType::kF16;
  int32_t layers = 0;  // for per-layer decode metadata
  int64_t batch = 0, max_blocks = 0;
  // Bytes of one unit (K and V), or 0 when the shape overflows.
  size_t unit_bytes() const;
};

class Arena {
 public:
  virtual ~Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  const ArenaShape& shape() const { return shape_; }
  // K and V over all units, [units, block_size, Hkv, D] (unit stride: both halves), on the
  // arena's device: what apply() writes through storage_ops() and decode reads.
  const TensorView& k() const { return k_; }
  const TensorView& v() const { return v_; }
  virtual const KvStorageOps& storage_ops() const = 0;
  // The stream every copy and write runs on (cudaStream_t; null on the host).
  virtual void* stream() const = 0;

  // Host memory a store may read into or write from directly for unit `slot` (the host arena's
  // own units), or null: then moves go through staging().
  virtual unsigned char* host_address(int32_t slot) const = 0;
  // Host staging for moves through a device arena (from and to the disk): staging_units()
  // buffers of a unit each, in memory the device reaches (pinned).
  virtual size_t staging_units() const = 0;
  virtual unsigned char* staging(size_t i) const = 0;
  // How a host store this arena copies from in place allocates (pinned memory the device reaches;
  // plain memory for the host arena).
  virtual HostAllocator host_allocator() const = 0;
  // Units `slots[i]` to host[i], after the work queued on stream() so far and complete on
  // return; and host[i] to units `slots[i]`, after the work queued on stream() so far (kernels
  // that read the slots' previous units). A slot < 0 is skipped. Host memory is staging() or a
  // store's payload_address() made with host_allocator(). An asynchronous arena may return from
  // upload() before the copies finish: host[i] must then stay unchanged until fence(), and work on
  // stream() that uses the slots must follow before_use().
  [[nodiscard]] virtual Status download(const int32_t* slots, unsigned char* const* host,
                                        size_t count) = 0;
  [[nodiscard]] virtual Status upload(const int32_t* slots, unsigned char* const* host,
                                      size_t count) = 0;
  // Whether upload() returns before its copies finish (a device arena's copy stream), so that
  // prefetches overlap the kernels.
  virtual bool asynchronous() const { return false; }
  // The work about to be queued on stream() reads or writes these slots: it waits for the uploads
  // that filled them (and only those).
  [[nodiscard]] virtual Status before_use(const int32_t* slots, size_t count) {
    (void)slots;
    (void)count;
    return Status();
  }
  // Every upload finished: the host memory they read may change.
  [[nodiscard]] virtual Status fence() { return Status(); }

  // Decode's lengths and block table of arena slots for layer `layer`, where the kernels read them
  // (device memory on a device arena: one buffer per layer, so that the next layer's upload never
  // races a kernel still reading this one's). Valid until the same layer is published again.
  [[nodiscard]] virtual Status publish(int32_t layer, const int32_t* lengths,
                                       const int32_t* slot_table, TensorView* seq_lens,
                                       TensorView* block_table) = 0;
  virtual std::string describe() const = 0;

 protected:
  Arena(const ArenaShape& shape, void* base);
  ArenaShape shape_;
  TensorView k_, v_;
};

// Units in 64-byte aligned host memory; the stores read and write them in place.
[[nodiscard]] Status create_host_arena(const ArenaShape& shape, std::unique_ptr<Arena>* out);

}  // namespace qwen3vl::lifecycle
