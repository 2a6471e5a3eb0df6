// RoPE on CUDA: one block per token builds the token's cos/sin slot rows in shared memory (the same
// rope_slot lookup as the CPU), then its threads rotate every head of q and k in place with vector
// loads of 4 slots where alignment allows. Out-of-range positions are recorded, never read.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

#include "qwen3vl/rope/cuda.hpp"

namespace qwen3vl::rope {
namespace {

struct CudaTag {};

Status cuda_status(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status();
  return make_error(StatusCode::kDeviceError, what, ": ", cudaGetErrorString(e));
}

// First out-of-range position: flag, axis, token, value.
struct ErrorRecord {
  int32_t flag, axis, token, value;
};

struct KernelArgs {
  void* q;
  void* k;
  int64_t q_token_stride, q_batch_stride, q_head_stride;
  int64_t k_token_stride, k_batch_stride, k_head_stride;
  const int32_t* positions;
  int64_t pos_stride[3];
  bool packed, positions_axis;
  int64_t seq, tokens;
  int32_t q_heads, k_heads;
  RopeTableView table;
  ErrorRecord* error;
};

// N elements of T loaded or stored as one access (16 bytes at most per access).
template <class T, int N>
struct alignas(sizeof(T) * N > 16 ? 16 : sizeof(T) * N) Pack {
  T v[N];
};

template <class T, RopeArithmetic A, RopeStyle S, int V>
__global__ void rope_kernel(KernelArgs a) {
  extern __shared__ float slots[];  // cos [half], then sin [half]
  const int32_t half = a.table.half;
  float* cs = slots;
  float* sn = slots + half;
  for (int64_t t = blockIdx.x; t < a.tokens; t += gridDim.x) {
    const int64_t b = t / a.seq, i = t % a.seq;
    int32_t pos[3] = {0, 0, 0};
    bool bad = false;
#pragma unroll
    for (int32_t axis = 0; axis < 3; ++axis) {  // a constant trip count keeps pos[] in registers
      if (axis >= a.table.axes) break;
      const int64_t ax = a.positions_axis ? axis : 0;
      pos[axis] =
          a.positions[rope_position_offset(a.pos_stride, a.packed, a.positions_axis, ax, b, i)];
      if (pos[axis] < 0 || pos[axis] >= a.table.max_position) {
        if (threadIdx.x == 0 && atomicCAS(&a.error->flag, 0, 1) == 0) {
          a.error->axis = axis;
          a.error->token = static_cast<int32_t>(t);
          a.error->value = pos[axis];
        }
        bad = true;
      }
    }
    if (bad) continue;  // uniform across the block: no barrier is skipped by only some threads
    __syncthreads();    // the previous token's rows are no longer read
    for (int32_t j = threadIdx.x; j < half; j += blockDim.x) {
      float c, s;
      detail::rope_slot<CudaTag>(a.table, pos, j, &c, &s);
      if (A == RopeArithmetic::kTransformersStorage) {
        c = detail::round_to<T>(c);
        s = detail::round_to<T>(s);
      }
      cs[j] = c;
      sn[j] = s;
    }
    __syncthreads();
    const int32_t groups = half / V, heads = a.q_heads + a.k_heads;
    T* q = static_cast<T*>(a.q) +
           (a.packed ? i * a.q_token_stride : b * a.q_batch_stride + i * a.q_token_stride);
    T* k = a.k_heads
               ? static_cast<T*>(a.k) +
                     (a.packed ? i * a.k_token_stride : b * a.k_batch_stride + i * a.k_token_stride)
               : nullptr;
    for (int32_t w = threadIdx.x; w < heads * groups; w += blockDim.x) {
      const int32_t h = w / groups, g = w % groups;
      T* x = h < a.q_heads ? q + h * a.q_head_stride : k + (h - a.q_heads) * a.k_head_stride;
      const int32_t j0 = g * V;
      if constexpr (S == RopeStyle::kNeox) {
        Pack<T, V> p1 = *reinterpret_cast<const Pack<T, V>*>(x + j0);
        Pack<T, V> p2 = *reinterpret_cast<const Pack<T, V>*>(x + half + j0);
#pragma unroll
        for (int l = 0; l < V; ++l) {
          float o1, o2;
          detail::rotate_pair<CudaTag, A, T>(to_float(p1.v[l]), to_float(p2.v[l]), cs[j0 + l],
                                             sn[j0 + l], &o1, &o2);
          p1.v[l] = from_float<T>(o1);
          p2.v[l] = from_float<T>(o2);
        }
        *reinterpret_cast<Pack<T, V>*>(x + j0) = p1;
        *reinterpret_cast<Pack<T, V>*>(x + half + j0) = p2;
      } else if constexpr (V == 1) {  // GPT-J pairs, element by element (no alignment assumed)
        float o1, o2;
        detail::rotate_pair<CudaTag, A, T>(to_float(x[2 * j0]), to_float(x[2 * j0 + 1]), cs[j0],
                                           sn[j0], &o1, &o2);
        x[2 * j0] = from_float<T>(o1);
        x[2 * j0 + 1] = from_float<T>(o2);
      } else {
        Pack<T, 2 * V> p = *reinterpret_cast<const Pack<T, 2 * V>*>(x + 2 * j0);
#pragma unroll
        for (int l = 0; l < V; ++l) {
          float o1, o2;
          detail::rotate_pair<CudaTag, A, T>(to_float(p.v[2 * l]), to_float(p.v[2 * l + 1]),
                                             cs[j0 + l], sn[j0 + l], &o1, &o2);
          p.v[2 * l] = from_float<T>(o1);
          p.v[2 * l + 1] = from_float<T>(o2);
        }
        *reinterpret_cast<Pack<T, 2 * V>*>(x + 2 * j0) = p;
      }
    }
  }
}

// Vector width 4 when every row start is aligned for the widest access the kernel makes.
bool aligned_for_vectors(const RopeApplyParams& p, const RopeApplyShape& s) {
  if (s.rotary_dim / 2 % 4 != 0) return false;
  const int64_t width = size_of(p.q.dtype);
  const int64_t bytes = width * (p.style == RopeStyle::kNeox ? 4 : 8);
  const int64_t align = bytes > 16 ? 16 : bytes;
  const auto ok = [&](const TensorView& t) {
    if (!t.present()) return true;
    if (reinterpret_cast<uintptr_t>(t.data) % static_cast<uintptr_t>(align) != 0) return false;
    for (int d = 0; d + 1 < t.rank; ++d)
      if (t.shape[d] > 1 && (t.stride[d] * width) % align != 0) return false;
    return p.style == RopeStyle::kGptj || (s.rotary_dim / 2 * width) % align == 0;
  };
  return ok(p.q) && ok(p.k);
}

template <class T, RopeArithmetic A, RopeStyle S>
cudaError_t launch_vec(const KernelArgs& args, bool vec, int blocks, size_t smem,
                       cudaStream_t stream) {
  if (vec)
    rope_kernel<T, A, S, 4><<<blocks, 128, smem, stream>>>(args);
  else
    rope_kernel<T, A, S, 1><<<blocks, 128, smem, stream>>>(args);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch(const RopeApplyParams& p, const KernelArgs& args, bool vec, int blocks,
                   size_t smem, cudaStream_t stream) {
  const bool neox = p.style == RopeStyle::kNeox;
  switch (p.arithmetic) {
    case RopeArithmetic::kFused:
      return neox ? launch_vec<T, RopeArithmetic::kFused, RopeStyle::kNeox>(args, vec, blocks, smem,
                                                                            stream)
                  : launch_vec<T, RopeArithmetic::kFused, RopeStyle::kGptj>(args, vec, blocks, smem,
                                                                            stream);
    case RopeArithmetic::kTransformersFp32:
      return neox ? launch_vec<T, RopeArithmetic::kTransformersFp32, RopeStyle::kNeox>(
                        args, vec, blocks, smem, stream)
                  : launch_vec<T, RopeArithmetic::kTransformersFp32, RopeStyle::kGptj>(
                        args, vec, blocks, smem, stream);
    case RopeArithmetic::kTransformersStorage:
      return neox ? launch_vec<T, RopeArithmetic::kTransformersStorage, RopeStyle::kNeox>(
                        args, vec, blocks, smem, stream)
                  : launch_vec<T, RopeArithmetic::kTransformersStorage, RopeStyle::kGptj>(
                        args, vec, blocks, smem, stream);
  }
  return cudaErrorInvalidValue;
}

class RopeCuda final : public RopeApplier {
 public:
  RopeCuda(int device, ErrorRecord* error, int sms) : device_(device), error_(error), sms_(sms) {}
  ~RopeCuda() override { cudaFree(error_); }

  Device device() const override { return Device::kCUDA; }

  Status apply(const RopeApplyParams& p, void* stream) const override {
    RopeApplyShape s;
    QWEN3VL_RETURN_IF_ERROR(validate(p, &s));
    if (p.q.device != Device::kCUDA || p.positions.device != Device::kCUDA)
      return make_error(StatusCode::kInvalidArgument, "q.device = ", to_string(p.q.device),
                        ", positions.device = ", to_string(p.positions.device),
                        ": the CUDA RoPE applier needs device memory");
    if (s.tokens() == 0) return Status();
    KernelArgs a{};
    a.q = p.q.data;
    a.k = p.k.present() ? p.k.data : nullptr;
    const int r = p.q.rank;
    a.q_token_stride = p.q.stride[r - 3];
    a.q_batch_stride = s.packed ? 0 : p.q.stride[0];
    a.q_head_stride = p.q.stride[r - 2];
    if (p.k.present()) {
      a.k_token_stride = p.k.stride[r - 3];
      a.k_batch_stride = s.packed ? 0 : p.k.stride[0];
      a.k_head_stride = p.k.stride[r - 2];
    }
    a.positions = p.positions.ptr<const int32_t>();
    for (int d = 0; d < 3; ++d) a.pos_stride[d] = p.positions.stride[d];
    a.packed = s.packed;
    a.positions_axis = s.positions_axis;
    a.seq = s.seq;
    a.tokens = s.tokens();
    a.q_heads = static_cast<int32_t>(s.q_heads);
    a.k_heads = static_cast<int32_t>(s.k_heads);
    a.table = p.table;
    a.error = error_;
    QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaSetDevice(device_), "cudaSetDevice"));
    const int64_t max_blocks = int64_t{sms_} * 32;
    const int blocks = static_cast<int>(s.tokens() < max_blocks ? s.tokens() : max_blocks);
    const size_t smem = 2 * sizeof(float) * static_cast<size_t>(p.table.half);
    const bool vec = aligned_for_vectors(p, s);
    const auto st = static_cast<cudaStream_t>(stream);
    cudaError_t e = cudaSuccess;
    dispatch_float_dtype(p.q.dtype,
                         [&](auto tag) { e = launch<decltype(tag)>(p, a, vec, blocks, smem, st); });
    return cuda_status(e, "rope kernel launch");
  }

  Status take_error(void* stream) const override {
    QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaSetDevice(device_), "cudaSetDevice"));
    const auto st = static_cast<cudaStream_t>(stream);
    ErrorRecord r{};
    QWEN3VL_RETURN_IF_ERROR(
        cuda_status(cudaMemcpyAsync(&r, error_, sizeof r, cudaMemcpyDeviceToHost, st),
                    "cudaMemcpyAsync(error record)"));
    QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaStreamSynchronize(st), "cudaStreamSynchronize"));
    if (!r.flag) return Status();
    QWEN3VL_RETURN_IF_ERROR(
        cuda_status(cudaMemsetAsync(error_, 0, sizeof r, st), "cudaMemsetAsync"));
    QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaStreamSynchronize(st), "cudaStreamSynchronize"));
    return make_error(StatusCode::kInvalidArgument, "positions[axis ", r.axis, ", token ", r.token,
                      "] = ", r.value,
                      ": outside the table (max_position); that token was left unrotated");
  }

  std::string describe() const override {
    return "rope (cuda): device " + std::to_string(device_) +
           ", one block of 128 threads per token";
  }

 private:
  int device_;
  ErrorRecord* error_;
  int sms_;
};

}  // namespace

DeviceRopeTable& DeviceRopeTable::operator=(DeviceRopeTable&& other) noexcept {
  if (this != &other) {
    if (buffer_) cudaFree(buffer_);
    buffer_ = std::exchange(other.buffer_, nullptr);
    device_index_ = other.device_index_;
    view_ = std::exchange(other.view_, RopeTableView{});
  }
  return *this;
}

DeviceRopeTable::~DeviceRopeTable() {
  if (buffer_) cudaFree(buffer_);
}

Status DeviceRopeTable::upload(const RopeTable& table, int device_index, DeviceRopeTable* out) {
  const RopeTableView host = table.view();
  const size_t half = static_cast<size_t>(host.half);
  const size_t lo = table.cos_table().size(), hi = table.cos_hi_table().size();
  const size_t bytes = (2 * lo + 2 * hi) * sizeof(float) + half;
  QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaSetDevice(device_index), "cudaSetDevice"));
  DeviceRopeTable t;
  t.device_index_ = device_index;
  QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaMalloc(&t.buffer_, bytes), "cudaMalloc(rope table)"));
  float* f = static_cast<float*>(t.buffer_);
  const std::pair<const std::vector<float>*, float*> parts[] = {
      {&table.cos_table(), f},
      {&table.sin_table(), f + lo},
      {&table.cos_hi_table(), f + 2 * lo},
      {&table.sin_hi_table(), f + 2 * lo + hi}};
  for (const auto& [src, dst] : parts)
    if (!src->empty())
      QWEN3VL_RETURN_IF_ERROR(cuda_status(
          cudaMemcpy(dst, src->data(), src->size() * sizeof(float), cudaMemcpyHostToDevice),
          "cudaMemcpy(rope table)"));
  auto* axis = reinterpret_cast<uint8_t*>(f + 2 * lo + 2 * hi);
  QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaMemcpy(axis, host.axis, half, cudaMemcpyHostToDevice),
                                      "cudaMemcpy(rope axis map)"));
  t.view_ = host;
  t.view_.device = Device::kCUDA;
  t.view_.cos = f;
  t.view_.sin = f + lo;
  t.view_.cos_hi = hi ? f + 2 * lo : nullptr;
  t.view_.sin_hi = hi ? f + 2 * lo + hi : nullptr;
  t.view_.axis = axis;
  *out = std::move(t);
  return Status();
}

Status create_rope_cuda(int device_index, std::unique_ptr<RopeApplier>* out) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || device_index < 0 || device_index >= count) {
    cudaGetLastError();
    return make_error(StatusCode::kDeviceError, "device_index = ", device_index, ": allowed 0..",
                      count - 1, " (CUDA devices found: ", count, ")");
  }
  QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaSetDevice(device_index), "cudaSetDevice"));
  int sms = 0;
  QWEN3VL_RETURN_IF_ERROR(
      cuda_status(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_index),
                  "cudaDeviceGetAttribute"));
  ErrorRecord* error = nullptr;
  QWEN3VL_RETURN_IF_ERROR(
      cuda_status(cudaMalloc(&error, sizeof(ErrorRecord)), "cudaMalloc(error record)"));
  QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaMemset(error, 0, sizeof(ErrorRecord)), "cudaMemset"));
  *out = std::make_unique<RopeCuda>(device_index, error, sms);
  return Status();
}

}  // namespace qwen3vl::rope
