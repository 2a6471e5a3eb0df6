// The host workspace of the convenience calls (Attention::run(params),
// DecodeAttention::run(params), the layers' operator()): allocated for one call, freed at its end;
// a failed allocation throws kOutOfMemory naming the size.
#pragma once

#include <cstddef>
#include <cstdlib>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl::detail {

class HostWorkspace {
 public:
  explicit HostWorkspace(size_t bytes)
      : data_(bytes ? std::malloc(bytes) : nullptr), bytes_(bytes) {
    if (bytes && !data_)
      throw Error(StatusCode::kOutOfMemory, concat("host workspace of ", bytes, " bytes"));
  }
  ~HostWorkspace() { std::free(data_); }
  HostWorkspace(const HostWorkspace&) = delete;
  HostWorkspace& operator=(const HostWorkspace&) = delete;

  Workspace workspace() const { return Workspace{data_, bytes_}; }

 private:
  void* data_;
  size_t bytes_;
};

}  // namespace qwen3vl::detail
