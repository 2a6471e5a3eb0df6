// HostAllocator: where a host store's memory comes from. A header of its own because the arenas
// name it (a device arena hands out pinned memory for the host store it copies from in place)
// without needing the stores.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace qwen3vl::lifecycle {

// Where HostStore's memory comes from: a CUDA build can pass cudaHostAlloc / cudaFreeHost (pinned
// memory). allocate(bytes) returns memory aligned to at least 64 bytes, or null.
struct HostAllocator {
  std::function<void*(size_t bytes)> allocate;
  std::function<void(void* memory)> deallocate;
  std::string name;  // for describe(), e.g. "cudaHostAlloc"
};
HostAllocator default_host_allocator();

}  // namespace qwen3vl::lifecycle
