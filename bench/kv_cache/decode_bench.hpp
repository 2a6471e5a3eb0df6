// The decode benchmark's shared pieces: one case (a shape and a cache), one result line, and the
// device runners (host here, CUDA in decode_bench_cuda.cpp when built).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "qwen3vl/kv_cache/kv_cache.hpp"
#include "qwen3vl/kv_cache/kv_cache_view.hpp"

namespace qwen3vl::bench {

struct DecodeCase {
  int64_t batch = 1, heads = 32, kv_heads = 8, head_dim = 128, rows = 1;
  int64_t kv_len = 4096;
  DType dtype = DType::kF16;
  KvFormat format = KvFormat::kFloat;  // compressed formats: CPU only
  bool integer_qk = false;             // DecodeParams::integer_qk (int8: integer Q.K)
  KvLayout layout = KvLayout::kPaged;
  int64_t block_size = 16;
  bool head_major =
      false;  // CUDA: storage [major, Hkv, minor, D] (each head's page rows contiguous)
              // instead of [major, minor, Hkv, D]; the same shape through strides
  int64_t num_splits = 0;    // 0: the kernel's own choice
  bool tensor_cores = true;  // CUDA: CudaDecodeOptions::tensor_cores (false: the CUDA-core kernel)
  int threads = 0;           // CPU threads; 0: physical cores
  bool huge_pages = true;    // CPU: cache and copy buffers in 2 MiB pages (madvise), as a serving
                             // system's pool would be; 4 KiB pages cost page walks at 256 MiB
  int warmup = 3, repeats = 20;
  bool rotate = true;  // CPU: each round times back-to-back calls over copies of the cache
                       // (>= 256 MiB of them, as a model's layers each read their own cache);
                       // false: one call a round on one cache, right after the copy sample

  // K and V bytes one decode call must read (codes and scales for a compressed format).
  double kv_bytes() const {
    const double row = is_compressed(format)
                           ? static_cast<double>(kv_code_bytes(format, head_dim) +
                                                 2 * kv_scale_count(format, head_dim))
                           : static_cast<double>(head_dim * size_of(dtype));
    return 2.0 * static_cast<double>(batch * kv_len * kv_heads) * row;
  }
};

struct DecodeResult {
  double ms = 0;              // median time of one call (CUDA: event-timed launches, no graph)
  double min_ms = 0;          // fastest call (the least disturbed by other work on the machine)
  double copy_gbps = 0;       // copy bandwidth (bytes read + written per second), same run: median
  double best_copy_gbps = 0;  // and best sample (pairs with min_ms on a machine others share)
  int64_t splits = 0;
  double cpu_ms = -1;        // CPU: process CPU time of one call, median (-1: not measured); with
                             // other work on the machine the least disturbed figure of the kernel
  double max_abs_diff = -1;  // against the CPU kernel on a sample (CUDA only; -1: not checked)
  double graph_ms = -1;      // CUDA: the same calls replayed from a CUDA graph (-1: not measured)
  double graph_copy_gbps =
      -1;  // CUDA: the same copy kernel replayed from a graph, graph_ms's denominator
  std::string device;
};

// Copy bandwidth of the host: memcpy of `bytes` (larger than the L3) split over `threads`
// threads, counted as bytes read + bytes written per second.
// Zeroed host memory, 2 MiB aligned and madvise(MADV_HUGEPAGE)d before the first touch when asked.
class HostBuffer {
 public:
  HostBuffer(size_t bytes, bool huge_pages);
  char* data() const { return static_cast<char*>(data_.get()); }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> data_;
};

class HostCopy {
 public:
  HostCopy(int64_t bytes, int threads, bool huge_pages);
  double sample_gbps();

 private:
  int64_t bytes_;
  HostBuffer src_, dst_;
  int threads_;
};

// The cache a case decodes against: the case's layout, one block table row per sequence.
KvCacheConfig cache_config(const DecodeCase& c);

DecodeResult run_cpu_decode(const DecodeCase& c);

#if QWEN3VL_BENCH_CUDA
DecodeResult run_cuda_decode(const DecodeCase& c);
#endif

}  // namespace qwen3vl::bench
