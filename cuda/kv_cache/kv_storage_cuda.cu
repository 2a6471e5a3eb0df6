// KV storage in device memory: the row-copy kernel behind KvCache::append / fork on CUDA, and the
// device copy of a page table's lengths and block table (CudaKvMetadata, the table's mirror).
#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "qwen3vl/cuda/check.cuh"
#include "qwen3vl/kv_cache/cuda.hpp"

namespace qwen3vl {
namespace {

constexpr int kRunsPerLaunch = 64;  // runs passed by value: 64 * 40 bytes of kernel arguments
constexpr int kCopyThreads = 128;

struct RowView {  // a rank-4 [major, minor, head, D] view
  void* data;
  int64_t stride[3];
};

struct RunBatch {
  KvRun runs[kRunsPerLaunch];
  int count;
};

RowView row_view(const TensorView& t) {
  return RowView{t.data, {t.stride[0], t.stride[1], t.stride[2]}};
}

// blockIdx.y: the run; blockIdx.x strides over its tokens; threads over (head, channel).
template <class Src, class Dst>
__global__ void copy_runs(RowView dst_k, RowView dst_v, RowView src_k, RowView src_v,
                          RunBatch batch, int heads, int dim) {
  const KvRun run = batch.runs[blockIdx.y];
  for (int64_t i = blockIdx.x; i < run.count; i += gridDim.x)
    for (int e = threadIdx.x; e < heads * dim; e += blockDim.x) {
      const int h = e / dim, c = e % dim;
      const int64_t s = run.src_major * src_k.stride[0] + (run.src_minor + i) * src_k.stride[1] +
                        h * src_k.stride[2] + c;
      const int64_t sv = run.src_major * src_v.stride[0] + (run.src_minor + i) * src_v.stride[1] +
                         h * src_v.stride[2] + c;
      const int64_t d = run.dst_major * dst_k.stride[0] + (run.dst_minor + i) * dst_k.stride[1] +
                        h * dst_k.stride[2] + c;
      const int64_t dv = run.dst_major * dst_v.stride[0] + (run.dst_minor + i) * dst_v.stride[1] +
                         h * dst_v.stride[2] + c;
      static_cast<Dst*>(dst_k.data)[d] =
          from_float<Dst>(to_float(static_cast<const Src*>(src_k.data)[s]));
      static_cast<Dst*>(dst_v.data)[dv] =
          from_float<Dst>(to_float(static_cast<const Src*>(src_v.data)[sv]));
    }
}

template <class Src, class Dst>
Status write_typed(const TensorView& dst_k, const TensorView& dst_v, const TensorView& src_k,
                   const TensorView& src_v, const KvRun* runs, int64_t count, cudaStream_t stream) {
  const int heads = static_cast<int>(dst_k.shape[2]), dim = static_cast<int>(dst_k.shape[3]);
  for (int64_t first = 0; first < count; first += kRunsPerLaunch) {
    RunBatch batch{};
    batch.count = static_cast<int>(count - first < kRunsPerLaunch ? count - first : kRunsPerLaunch);
    int64_t longest = 1;
    for (int i = 0; i < batch.count; ++i) {
      batch.runs[i] = runs[first + i];
      longest = runs[first + i].count > longest ? runs[first + i].count : longest;
    }
    const dim3 grid(static_cast<unsigned>(longest < 65535 ? longest : 65535),
                    static_cast<unsigned>(batch.count));
    copy_runs<Src, Dst><<<grid, kCopyThreads, 0, stream>>>(
        row_view(dst_k), row_view(dst_v), row_view(src_k), row_view(src_v), batch, heads, dim);
    QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("copy_runs (KV append)");
  }
  return Status();
}

// bounds[run.dst_major] over the run's stored key rows. blockIdx.y: the run (runs of one batch
// never share a block); threads over (head, channel), each folding its column's rows in order.
template <class T>
__global__ void fold_runs(float* bounds, RowView k, RunBatch batch, int heads, int dim) {
  const KvRun run = batch.runs[blockIdx.y];
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < heads * dim;
       e += gridDim.x * blockDim.x) {
    const int h = e / dim, c = e % dim;
    float* lo = bounds + (run.dst_major * 2 * heads + h) * static_cast<int64_t>(dim) + c;
    float* hi = lo + static_cast<int64_t>(heads) * dim;
    float mn = run.dst_minor == 0 ? INFINITY : *lo, mx = run.dst_minor == 0 ? -INFINITY : *hi;
    const T* col =
        static_cast<const T*>(k.data) + run.dst_major * k.stride[0] + h * k.stride[2] + c;
    for (int64_t i = 0; i < run.count; ++i) {
      const float x = to_float(col[(run.dst_minor + i) * k.stride[1]]);
      mn = x < mn ? x : mn;
      mx = x > mx ? x : mx;
    }
    *lo = mn;
    *hi = mx;
  }
}

Status fold_key_bounds_cuda(const TensorView& bounds, const TensorView& k_storage,
                            const KvRun* runs, int64_t count, void* stream) {
  const int heads = static_cast<int>(k_storage.shape[2]),
            dim = static_cast<int>(k_storage.shape[3]);
  const unsigned x_blocks = static_cast<unsigned>((heads * dim + kCopyThreads - 1) / kCopyThreads);
  return dispatch_float_dtype(k_storage.dtype, [&](auto tag) -> Status {
    for (int64_t first = 0; first < count; first += kRunsPerLaunch) {
      RunBatch batch{};
      batch.count =
          static_cast<int>(count - first < kRunsPerLaunch ? count - first : kRunsPerLaunch);
      for (int i = 0; i < batch.count; ++i) batch.runs[i] = runs[first + i];
      fold_runs<decltype(tag)><<<dim3(x_blocks, static_cast<unsigned>(batch.count)), kCopyThreads,
                                 0, static_cast<cudaStream_t>(stream)>>>(
          bounds.ptr<float>(), row_view(k_storage), batch, heads, dim);
      QWEN3VL_CUDA_RETURN_IF_LAUNCH_ERROR("fold_runs (KV key bounds)");
    }
    return Status();
  });
}

Status write_cuda(const TensorView& dst_k, const TensorView& dst_v, const TensorView& src_k,
                  const TensorView& src_v, const KvRun* runs, int64_t count, void* stream) {
  if (src_k.dtype != src_v.dtype)
    return make_error(StatusCode::kInvalidArgument, "v.dtype = ", to_string(src_v.dtype),
                      ": must equal k.dtype (", to_string(src_k.dtype), ") on CUDA");
  return dispatch_float_dtype(src_k.dtype, [&](auto s) {
    return dispatch_float_dtype(dst_k.dtype, [&](auto o) {
      return write_typed<decltype(s), decltype(o)>(dst_k, dst_v, src_k, src_v, runs, count,
                                                   static_cast<cudaStream_t>(stream));
    });
  });
}

Status make_cuda_mirror(const KvTableConfig& config, int device,
                        std::unique_ptr<KvTableMirror>* out) {
  auto mirror = std::make_unique<CudaKvMetadata>();
  QWEN3VL_RETURN_IF_ERROR(CudaKvMetadata::create(config, device, mirror.get()));
  *out = std::move(mirror);
  return Status();
}

}  // namespace

const KvStorageOps& cuda_kv_storage_ops() {
  static const KvStorageOps ops{Device::kCUDA, &write_cuda, &fold_key_bounds_cuda,
                                &make_cuda_mirror};
  return ops;
}

Status attach_cuda_mirror(KvPageTable* table, int device) {
  if (table == nullptr || !table->created())
    return make_error(StatusCode::kInvalidArgument, "table: ", table ? "not created" : "null",
                      " (use KvPageTable::create)");
  std::unique_ptr<KvTableMirror> mirror;
  QWEN3VL_RETURN_IF_ERROR(make_cuda_mirror(table->config(), device, &mirror));
  table->set_mirror(std::move(mirror));
  return Status();
}

CudaKvMetadata::CudaKvMetadata(CudaKvMetadata&& other) noexcept { *this = std::move(other); }

CudaKvMetadata& CudaKvMetadata::operator=(CudaKvMetadata&& other) noexcept {
  std::swap(device_data_, other.device_data_);
  std::swap(staging_, other.staging_);
  for (int i = 0; i < kSlots; ++i) {
    std::swap(events_[i], other.events_[i]);
    std::swap(recorded_[i], other.recorded_[i]);
  }
  std::swap(next_slot_, other.next_slot_);
  std::swap(batch_, other.batch_);
  std::swap(max_blocks_, other.max_blocks_);
  std::swap(device_, other.device_);
  std::swap(version_, other.version_);
  std::swap(uploads_, other.uploads_);
  return *this;
}

CudaKvMetadata::~CudaKvMetadata() { release(); }

void CudaKvMetadata::release() {
  // Copies still in flight read the staging slots: wait for them before freeing.
  for (int i = 0; i < kSlots; ++i)
    if (events_[i]) {
      if (recorded_[i]) cudaEventSynchronize(static_cast<cudaEvent_t>(events_[i]));
      cudaEventDestroy(static_cast<cudaEvent_t>(events_[i]));
      events_[i] = nullptr;
    }
  if (device_data_) cudaFree(device_data_);
  if (staging_) cudaFreeHost(staging_);
  device_data_ = staging_ = nullptr;
}

Status CudaKvMetadata::create(const KvCacheConfig& config, int device, CudaKvMetadata* out) {
  return create(table_config(config), device, out);
}

Status CudaKvMetadata::create(const KvTableConfig& config, int device, CudaKvMetadata* out) {
  if (config.batch < 1)
    return make_error(StatusCode::kInvalidArgument, "config.batch = ", config.batch,
                      ": must be >= 1");
  CudaKvMetadata m;
  m.device_ = device;
  m.batch_ = config.batch;
  m.max_blocks_ = config.layout == KvLayout::kPaged ? config.max_blocks : 0;
  const size_t bytes = sizeof(int32_t) * static_cast<size_t>(m.batch_ * (1 + m.max_blocks_));
  int previous = 0;
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaGetDevice(&previous));
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  auto allocate = [&]() -> Status {
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaMalloc(&m.device_data_, bytes));
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&m.staging_, bytes * kSlots, cudaHostAllocDefault));
    for (int i = 0; i < kSlots; ++i) {
      cudaEvent_t e = nullptr;
      QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      m.events_[i] = e;
    }
    return Status();
  };
  const Status st = allocate();
  cudaSetDevice(previous);
  QWEN3VL_RETURN_IF_ERROR(st);
  *out = std::move(m);
  return Status();
}

Status CudaKvMetadata::upload(const KvPageTable& table, void* stream) {
  const KvTableConfig& c = table.config();
  if (!device_data_ || c.batch != batch_ || (c.layout == KvLayout::kPaged) != (max_blocks_ > 0) ||
      (max_blocks_ > 0 && c.max_blocks != max_blocks_))
    return make_error(StatusCode::kShapeMismatch, "cache batch = ", c.batch,
                      ", max_blocks = ", c.max_blocks, ": metadata was created for batch ", batch_,
                      ", max_blocks ", max_blocks_);
  const size_t entries = static_cast<size_t>(batch_ * (1 + max_blocks_));
  int32_t* slot = staging_ + static_cast<size_t>(next_slot_) * entries;
  auto event = static_cast<cudaEvent_t>(events_[next_slot_]);
  // The slot's previous copy (two uploads ago) must have read it before it is refilled.
  if (recorded_[next_slot_]) QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(event));
  const std::vector<int32_t>& lens = table.visible_lengths();
  std::copy(lens.begin(), lens.end(), slot);
  if (max_blocks_ > 0)
    std::copy(table.block_table().begin(), table.block_table().end(), slot + batch_);
  const auto s = static_cast<cudaStream_t>(stream);
  QWEN3VL_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(device_data_, slot, entries * sizeof(int32_t), cudaMemcpyHostToDevice, s));
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventRecord(event, s));
  recorded_[next_slot_] = true;
  next_slot_ = (next_slot_ + 1) % kSlots;
  version_ = table.version();
  ++uploads_;
  return Status();
}

Status CudaKvMetadata::sync(const KvPageTable& table, void* stream) {
  if (version_ != 0 && version_ == table.version()) return Status();
  return upload(table, stream);
}

KvCacheView CudaKvMetadata::device_view(KvCacheView v) const {
  v.seq_lens.data = device_data_;
  v.seq_lens.device = Device::kCUDA;
  v.seq_lens.device_index = device_;
  if (v.layout == KvLayout::kPaged) {
    v.block_table.data = device_data_ + batch_;
    v.block_table.device = Device::kCUDA;
    v.block_table.device_index = device_;
  }
  return v;
}

}  // namespace qwen3vl
