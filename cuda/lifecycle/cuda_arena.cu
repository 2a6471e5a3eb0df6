// The tiered KV store's arena in GPU memory (include/qwen3vl/lifecycle/cuda_arena.hpp): units in
// one cudaMalloc, pinned staging for the moves, per-layer decode metadata. Copies run on a copy
// stream of the arena's own, ordered against the decode stream by events: every copy waits for
// the decode work queued before it (the kernels reading the slots it overwrites), and decode work
// waits only for the uploads that filled the slots it uses (before_use), so a prefetch for the
// next layer runs while this layer's decode does. Units move to and from pinned host memory
// (staging, or the host store's slots) by a copy kernel that reads or writes the host memory over
// the bus: one launch moves up to kUnitsPerLaunch units wherever they lie, where one
// cudaMemcpyAsync per unit would pay the call's overhead (microseconds) for every 64 KiB unit.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "qwen3vl/cuda/check.cuh"
#include "qwen3vl/kv_cache/cuda.hpp"
#include "qwen3vl/lifecycle/cuda_arena.hpp"

namespace qwen3vl::lifecycle {
namespace {

constexpr int kUnitsPerLaunch = 64;
constexpr unsigned kPinnedFlags = cudaHostAllocPortable | cudaHostAllocMapped;

// The units of one launch, by value (1 KiB of kernel parameters).
struct UnitCopies {
  const uint4* src[kUnitsPerLaunch];
  uint4* dst[kUnitsPerLaunch];
};

// blockIdx.y: the unit; the x blocks stride over its 16-byte words.
__global__ void copy_units(UnitCopies c, size_t words) {
  const uint4* __restrict__ src = c.src[blockIdx.y];
  uint4* __restrict__ dst = c.dst[blockIdx.y];
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < words;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

// Sets `device` for its scope and restores the caller's device after.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    ok_ = cudaGetDevice(&previous_) == cudaSuccess && cudaSetDevice(device) == cudaSuccess;
  }
  ~DeviceScope() { cudaSetDevice(previous_); }
  bool ok() const { return ok_; }

 private:
  int previous_ = 0;
  bool ok_ = false;
};

constexpr size_t kUploadEvents = 64;  // a ring: waiting on a re-recorded one only waits longer

struct CudaMemory {
  cudaStream_t copies = nullptr;         // the copy stream
  cudaEvent_t queued = nullptr;          // the decode stream's work at a copy's start
  std::vector<cudaEvent_t> uploaded;     // the ring of upload completions
  unsigned char* units = nullptr;        // shape.units x unit_bytes, device
  unsigned char* staging = nullptr;      // staging_units x unit_bytes, pinned host
  int32_t* meta = nullptr;               // layers x (batch + batch * max_blocks), device
  int32_t* meta_host = nullptr;          // the same, pinned: each layer's copy source
  std::vector<cudaEvent_t> meta_copied;  // per layer: its last metadata copy
  std::vector<bool> recorded;

  void release() {
    if (units) cudaFree(units);
    if (meta) cudaFree(meta);
    if (staging) cudaFreeHost(staging);
    if (meta_host) cudaFreeHost(meta_host);
    for (cudaEvent_t e : meta_copied)
      if (e) cudaEventDestroy(e);
    for (cudaEvent_t e : uploaded)
      if (e) cudaEventDestroy(e);
    if (queued) cudaEventDestroy(queued);
    if (copies) cudaStreamDestroy(copies);
    *this = CudaMemory{};
  }
};

class CudaArena final : public Arena {
 public:
  CudaArena(const ArenaShape& shape, int device, cudaStream_t stream, size_t staging_units,
            CudaMemory memory)
      : Arena(shape, memory.units),
        device_(device),
        stream_(stream),
        staging_units_(staging_units),
        unit_(shape.unit_bytes()),
        meta_entries_(static_cast<size_t>(shape.batch * (1 + shape.max_blocks))),
        filled_by_(static_cast<size_t>(shape.units), 0),
        m_(std::move(memory)) {
    k_.device = v_.device = Device::kCUDA;
    k_.device_index = v_.device_index = device;
  }
  ~CudaArena() override {
    DeviceScope scope(device_);
    cudaStreamSynchronize(stream_);  // no copy may still read the staging being freed
    cudaStreamSynchronize(m_.copies);
    m_.release();
  }

  const KvStorageOps& storage_ops() const override { return cuda_kv_storage_ops(); }
  void* stream() const override { return stream_; }
  unsigned char* host_address(int32_t) const override { return nullptr; }
  size_t staging_units() const override { return staging_units_; }
  unsigned char* staging(size_t i) const override { return m_.staging + i * unit_; }

  HostAllocator host_allocator() const override {
    HostAllocator a;
    const int device = device_;
    a.allocate = [device](size_t bytes) -> void* {
      DeviceScope scope(device);
      void* p = nullptr;
      return cudaHostAlloc(&p, bytes, kPinnedFlags) == cudaSuccess ? p : nullptr;
    };
    a.deallocate = [](void* p) { cudaFreeHost(p); };
    a.name = "cudaHostAlloc (mapped)";
    return a;
  }
  Status download(const int32_t* slots, unsigned char* const* host, size_t count) override {
    QWEN3VL_RETURN_IF_ERROR(copy(slots, host, count, false));
    DeviceScope scope(device_);
    return cuda_status(cudaStreamSynchronize(m_.copies), "cudaStreamSynchronize(copy stream)");
  }
  Status upload(const int32_t* slots, unsigned char* const* host, size_t count) override {
    QWEN3VL_RETURN_IF_ERROR(copy(slots, host, count, true));
    const uint64_t seq = ++uploads_;
    DeviceScope scope(device_);
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventRecord(m_.uploaded[seq % kUploadEvents], m_.copies));
    for (size_t i = 0; i < count; ++i)
      if (slots[i] >= 0) filled_by_[static_cast<size_t>(slots[i])] = seq;
    return Status();
  }
  bool asynchronous() const override { return true; }
  Status before_use(const int32_t* slots, size_t count) override {
    uint64_t latest = 0;
    for (size_t i = 0; i < count; ++i)
      if (slots[i] >= 0) latest = std::max(latest, filled_by_[static_cast<size_t>(slots[i])]);
    if (latest <= waited_) return Status();  // the stream waits for it already
    DeviceScope scope(device_);
    // Events on one stream complete in order: waiting for the latest covers the earlier ones.
    QWEN3VL_CUDA_RETURN_IF_ERROR(
        cudaStreamWaitEvent(stream_, m_.uploaded[latest % kUploadEvents], 0));
    waited_ = latest;
    return Status();
  }
  Status fence() override {
    DeviceScope scope(device_);
    return cuda_status(cudaStreamSynchronize(m_.copies), "cudaStreamSynchronize(copy stream)");
  }

  Status publish(int32_t layer, const int32_t* lengths, const int32_t* slot_table,
                 TensorView* seq_lens, TensorView* block_table) override {
    if (layer < 0 || layer >= shape_.layers)
      return make_error(StatusCode::kInvalidArgument, "publish: layer = ", layer, ": allowed 0..",
                        shape_.layers - 1);
    DeviceScope scope(device_);
    if (!scope.ok()) return make_error(StatusCode::kDeviceError, "cudaSetDevice(", device_, ")");
    const auto l = static_cast<size_t>(layer);
    int32_t* host = m_.meta_host + l * meta_entries_;
    int32_t* dev = m_.meta + l * meta_entries_;
    // The layer's previous copy (a step ago) must have read the pinned source before it is
    // refilled; normally long done.
    if (m_.recorded[l]) QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(m_.meta_copied[l]));
    const auto batch = static_cast<size_t>(shape_.batch);
    std::memcpy(host, lengths, batch * sizeof(int32_t));
    std::memcpy(host + batch, slot_table, batch * static_cast<size_t>(shape_.max_blocks) * 4);
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dev, host, meta_entries_ * sizeof(int32_t),
                                                 cudaMemcpyHostToDevice, stream_));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventRecord(m_.meta_copied[l], stream_));
    m_.recorded[l] = true;
    *seq_lens = TensorView::contiguous(dev, DType::kI32, {shape_.batch});
    *block_table =
        TensorView::contiguous(dev + batch, DType::kI32, {shape_.batch, shape_.max_blocks});
    seq_lens->device = block_table->device = Device::kCUDA;
    seq_lens->device_index = block_table->device_index = device_;
    return Status();
  }

  std::string describe() const override {
    return detail::concat("CUDA arena of ", shape_.units, " units on device ", device_, ", ",
                          staging_units_,
                          " pinned staging units, copies on a stream of their own (a kernel over "
                          "mapped pinned memory, up to ",
                          kUnitsPerLaunch, " units a launch)");
  }

 private:
  // host[i] <-> unit slots[i] for slots[i] >= 0 by the copy kernel (pinned, mapped host memory
  // is addressable from the device under unified addressing) on the copy stream, after the work
  // queued on the decode stream so far.
  Status copy(const int32_t* slots, unsigned char* const* host, size_t count, bool up) {
    DeviceScope scope(device_);
    if (!scope.ok()) return make_error(StatusCode::kDeviceError, "cudaSetDevice(", device_, ")");
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventRecord(m_.queued, stream_));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(m_.copies, m_.queued, 0));
    UnitCopies c{};
    int n = 0;
    const auto launch = [&]() -> Status {
      if (n == 0) return Status();
      const size_t words = unit_ / sizeof(uint4);
      const dim3 grid(static_cast<unsigned>(std::min<size_t>(8, (words + 255) / 256)),
                      static_cast<unsigned>(n));
      copy_units<<<grid, 256, 0, m_.copies>>>(c, words);
      QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("copy_units");
      n = 0;
      return Status();
    };
    for (size_t i = 0; i < count; ++i) {
      if (slots[i] < 0) continue;
      unsigned char* dev = m_.units + static_cast<size_t>(slots[i]) * unit_;
      const unsigned char* src = up ? host[i] : dev;
      unsigned char* dst = up ? dev : host[i];
      if (reinterpret_cast<uintptr_t>(host[i]) % sizeof(uint4) != 0) {  // not the kernel's words
        QWEN3VL_CUDA_RETURN_IF_ERROR(
            cudaMemcpyAsync(dst, src, unit_, cudaMemcpyDefault, m_.copies));
        continue;
      }
      c.src[n] = reinterpret_cast<const uint4*>(src);
      c.dst[n] = reinterpret_cast<uint4*>(dst);
      if (++n == kUnitsPerLaunch) QWEN3VL_RETURN_IF_ERROR(launch());
    }
    return launch();
  }

  int device_;
  cudaStream_t stream_;
  size_t staging_units_, unit_, meta_entries_;
  std::vector<uint64_t> filled_by_;    // per slot: the upload that last filled it (0: none)
  uint64_t uploads_ = 0, waited_ = 0;  // uploads recorded; the latest the decode stream waits for
  CudaMemory m_;
};

}  // namespace

Status create_cuda_arena(const ArenaShape& shape, int device, void* stream,
                         std::unique_ptr<Arena>* out, size_t staging_units) {
  if (out == nullptr) return make_error(StatusCode::kNullPointer, "out = null");
  const size_t unit = shape.unit_bytes();
  if (unit == 0 || shape.units < 1 || shape.units > INT32_MAX)
    return make_error(StatusCode::kInvalidArgument, "shape: ", shape.units, " units of ",
                      shape.block_size, " x ", shape.kv_heads, " x ", shape.head_dim,
                      ": allowed 1..2^31 - 1 units of a nonzero size");
  if (shape.layers < 1 || shape.batch < 1 || shape.max_blocks < 1)
    return make_error(StatusCode::kInvalidArgument,
                      "shape.layers, batch, max_blocks = ", shape.layers, ", ", shape.batch, ", ",
                      shape.max_blocks, ": must be >= 1");
  if (staging_units < 1 || staging_units > 65536)
    return make_error(StatusCode::kInvalidArgument, "staging_units = ", staging_units,
                      ": allowed 1..65536");
  if (unit % sizeof(uint4) != 0)
    return make_error(StatusCode::kInvalidArgument, "shape: a unit of ", unit,
                      " bytes: must be a multiple of 16 (block_size a multiple of 16)");
  DeviceScope scope(device);
  if (!scope.ok())
    return make_error(StatusCode::kDeviceError, "device = ", device, ": cudaSetDevice failed");
  int unified = 0;
  QWEN3VL_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&unified, cudaDevAttrUnifiedAddressing, device));
  if (!unified)
    return make_error(StatusCode::kUnsupported, "device ", device,
                      ": no unified addressing (the copy kernel reads pinned host memory by its "
                      "host address)");
  CudaMemory m;
  const size_t meta = static_cast<size_t>(shape.layers) *
                      static_cast<size_t>(shape.batch * (1 + shape.max_blocks)) * sizeof(int32_t);
  auto allocate = [&]() -> Status {
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaMalloc(&m.units, static_cast<size_t>(shape.units) * unit));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaMalloc(&m.meta, meta));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&m.staging, staging_units * unit, kPinnedFlags));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&m.meta_host, meta, cudaHostAllocDefault));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&m.copies, cudaStreamNonBlocking));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&m.queued, cudaEventDisableTiming));
    m.uploaded.assign(kUploadEvents, nullptr);
    for (cudaEvent_t& e : m.uploaded)
      QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    m.meta_copied.assign(static_cast<size_t>(shape.layers), nullptr);
    m.recorded.assign(static_cast<size_t>(shape.layers), false);
    for (cudaEvent_t& e : m.meta_copied)
      QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return Status();
  };
  const Status st = allocate();
  if (!st.ok()) {
    m.release();
    return st;
  }
  out->reset(
      new CudaArena(shape, device, static_cast<cudaStream_t>(stream), staging_units, std::move(m)));
  return Status();
}

}  // namespace qwen3vl::lifecycle
