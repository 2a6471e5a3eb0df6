// RoPE on CUDA (built with qwen3vl::attention_cuda): a device copy of a RopeTable and the CUDA
// applier. The kernel shares the table lookup and the pair rotation with the CPU kernels
// (rope::detail::rope_slot, rotate_pair), so its results equal the CPU's bit for bit.
#pragma once

#include <cstddef>
#include <memory>

#include "qwen3vl/rope/apply.hpp"

namespace qwen3vl::rope {

// One device allocation holding the table's cos/sin arrays and slot axis map.
class DeviceRopeTable {
 public:
  DeviceRopeTable() = default;
  DeviceRopeTable(const DeviceRopeTable&) = delete;
  DeviceRopeTable& operator=(const DeviceRopeTable&) = delete;
  DeviceRopeTable(DeviceRopeTable&& other) noexcept { *this = std::move(other); }
  DeviceRopeTable& operator=(DeviceRopeTable&& other) noexcept;
  ~DeviceRopeTable();

  // Copies `table` to device `device_index` (allocates; call once per model, not per step).
  [[nodiscard]] static Status upload(const RopeTable& table, int device_index,
                                     DeviceRopeTable* out);
  const RopeTableView& view() const { return view_; }

 private:
  void* buffer_ = nullptr;
  int device_index_ = 0;
  RopeTableView view_;
};

// The CUDA applier: q, k and positions in device memory, table from DeviceRopeTable::view().
// apply() never synchronises; tokens with a position outside the table are left unrotated and
// recorded, and take_error(stream) reports the first of them as kInvalidArgument.
[[nodiscard]] Status create_rope_cuda(int device_index, std::unique_ptr<RopeApplier>* out);

}  // namespace qwen3vl::rope
