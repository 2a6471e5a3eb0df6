// The host arena: units in host memory that the CPU decode kernels read and the stores copy in
// place (include/qwen3vl/lifecycle/arena.hpp).
#include <cstdlib>

#include "qwen3vl/core/checked_math.hpp"
#include "qwen3vl/lifecycle/arena.hpp"

namespace qwen3vl::lifecycle {
namespace {

class HostArena final : public Arena {
 public:
  HostArena(const ArenaShape& shape, unsigned char* memory)
      : Arena(shape, memory), memory_(memory) {}
  ~HostArena() override { std::free(memory_); }
  const KvStorageOps& storage_ops() const override { return cpu_kv_storage_ops(); }
  void* stream() const override { return nullptr; }
  unsigned char* host_address(int32_t slot) const override {
    return memory_ + static_cast<size_t>(slot) * shape_.unit_bytes();
  }
  size_t staging_units() const override { return 0; }
  unsigned char* staging(size_t) const override { return nullptr; }
  HostAllocator host_allocator() const override { return default_host_allocator(); }
  Status download(const int32_t*, unsigned char* const*, size_t count) override {
    return refuse(count);
  }
  Status upload(const int32_t*, unsigned char* const*, size_t count) override {
    return refuse(count);
  }
  Status publish(int32_t, const int32_t* lengths, const int32_t* slot_table, TensorView* seq_lens,
                 TensorView* block_table) override {
    *seq_lens = TensorView::contiguous(const_cast<int32_t*>(lengths), DType::kI32, {shape_.batch});
    *block_table = TensorView::contiguous(const_cast<int32_t*>(slot_table), DType::kI32,
                                          {shape_.batch, shape_.max_blocks});
    return Status();
  }
  std::string describe() const override {
    return detail::concat("host arena of ", shape_.units, " units");
  }

 private:
  static Status refuse(size_t count) {
    if (count == 0) return Status();
    return make_error(StatusCode::kInternal,
                      "host arena: no staging (the stores copy its units in place)");
  }
  unsigned char* memory_;
};

}  // namespace

Status create_host_arena(const ArenaShape& shape, std::unique_ptr<Arena>* out) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  const size_t unit = shape.unit_bytes();
  int64_t bytes = 0;
  if (unit == 0 || shape.units < 1 || !checked_mul(static_cast<int64_t>(unit), shape.units, &bytes))
    return make_error(StatusCode::kInvalidArgument, "arena: ", shape.units, " units of ",
                      shape.block_size, " x ", shape.kv_heads, " x ", shape.head_dim,
                      ": must be >= 1 unit and fit int64 bytes");
  auto* memory = static_cast<unsigned char*>(
      std::aligned_alloc(64, (static_cast<size_t>(bytes) + 63) / 64 * 64));
  if (memory == nullptr) return make_error(StatusCode::kOutOfMemory, "arena of ", bytes, " bytes");
  out->reset(new HostArena(shape, memory));
  return Status();
}

}  // namespace qwen3vl::lifecycle
