// Shared by the binding sources: DLPack arrays to TensorView, Status to Python exceptions, and
// workspaces. Arrays cross without copies; the caller keeps them alive for the call.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <qwen3vl/attention.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qwen3vl::python {

namespace nb = nanobind;

// Inputs may be read-only arrays; outputs must be writable.
using In = nb::ndarray<nb::ro>;
using Out = nb::ndarray<>;
using OptIn = std::optional<In>;
using OptOut = std::optional<Out>;

// A non-ok Status on its way to Python: translated to the exception class of its code.
struct StatusError {
  Status status;
};

inline void check(const Status& s) {
  if (!s.ok()) throw StatusError{s};
}

// Raised by the binding's own checks (the array conversion): a Status so that it takes the same
// exception classes as the library's errors.
template <class... Parts>
[[noreturn]] void fail(StatusCode code, const Parts&... parts) {
  throw StatusError{make_error(code, parts...)};
}

void register_errors(nb::module_& m);

#if QWEN3VL_WITH_CUDA
#define QWEN3VL_PY_WITH_CUDA 1
#else
#define QWEN3VL_PY_WITH_CUDA 0
#endif

[[noreturn]] inline void fail_no_cuda(const char* what) {
  fail(StatusCode::kNotImplemented, what,
       ": the library was built without its CUDA backend (QWEN3VL_CUDA=OFF or no CUDA compiler)");
}

template <class Array>
TensorView to_view(const Array& a, const char* name) {
  TensorView v;
  const nb::dlpack::dtype dt = a.dtype();
  if (dt.lanes != 1)
    fail(StatusCode::kInvalidArgument, name, ": vector dtypes (lanes = ", int(dt.lanes),
         ") are not supported");
  if (dt.code == uint8_t(nb::dlpack::dtype_code::Float) && dt.bits == 32)
    v.dtype = DType::kF32;
  else if (dt.code == uint8_t(nb::dlpack::dtype_code::Float) && dt.bits == 16)
    v.dtype = DType::kF16;
  else if (dt.code == uint8_t(nb::dlpack::dtype_code::Bfloat) && dt.bits == 16)
    v.dtype = DType::kBF16;
  else if (dt.code == uint8_t(nb::dlpack::dtype_code::Int) && dt.bits == 32)
    v.dtype = DType::kI32;
  else
    fail(StatusCode::kInvalidArgument, name, ".dtype (DLPack code ", int(dt.code), ", ",
         int(dt.bits), " bits): allowed float32, float16, bfloat16, int32");
  const int32_t dev = a.device_type();
  if (dev == nb::device::cpu::value) {
    v.device = Device::kCPU;
  } else if (dev == nb::device::cuda::value || dev == nb::device::cuda_managed::value) {
    v.device = Device::kCUDA;
    v.device_index = a.device_id();
  } else {
    fail(StatusCode::kInvalidArgument, name, ": DLPack device type ", dev,
         " is not supported (allowed: CPU, CUDA)");
  }
  const size_t rank = a.ndim();
  if (rank < 1 || rank > size_t(TensorView::kMaxRank))
    fail(StatusCode::kShapeMismatch, name, ".ndim = ", rank, ": allowed 1..4");
  v.rank = int(rank);
  for (size_t d = 0; d < rank; ++d) {
    v.shape[d] = int64_t(a.shape(d));
    v.stride[d] = int64_t(a.stride(d));
  }
  v.data = const_cast<void*>(static_cast<const void*>(a.data()));
  return v;
}

template <class Array>
TensorView to_view(const std::optional<Array>& a, const char* name) {
  return a ? to_view(*a, name) : TensorView();
}

// An int32 host array as a vector (for the index arguments the C++ API takes as pointers).
std::vector<int32_t> host_i32(const In& a, const char* name, std::vector<int64_t>* shape);

inline void* stream_ptr(uintptr_t stream) { return reinterpret_cast<void*>(stream); }

// A call's workspace: the caller's array when given, else host memory on the CPU; a CUDA call
// that needs one must be given one (the module allocates no device memory).
struct WorkspaceHolder {
  std::vector<unsigned char> host;
  Workspace get(size_t bytes, const OptOut& given, Device device) {
    if (given) {
      const Out& a = *given;
      const bool cuda = a.device_type() == nb::device::cuda::value ||
                        a.device_type() == nb::device::cuda_managed::value;
      if ((device == Device::kCUDA) != cuda || (!cuda && a.device_type() != nb::device::cpu::value))
        fail(StatusCode::kInvalidArgument, "workspace: must be on the call's device (",
             to_string(device), ")");
      if (a.ndim() != 1 || (a.shape(0) > 1 && a.stride(0) != 1))
        fail(StatusCode::kBadStride, "workspace: must be a contiguous 1-D array");
      return Workspace{a.data(), a.shape(0) * (a.dtype().bits / 8)};
    }
    if (bytes == 0) return Workspace{};
    if (device != Device::kCPU)
      fail(StatusCode::kWorkspaceTooSmall, "workspace: this CUDA call needs ", bytes,
           " bytes; pass workspace= a contiguous device array of at least that many bytes");
    host.resize(bytes);
    return Workspace{host.data(), bytes};
  }
};

void bind_enums(nb::module_& m);
void bind_attention(nb::module_& m);
void bind_kv(nb::module_& m);
void bind_rope(nb::module_& m);
void bind_layers(nb::module_& m);

}  // namespace qwen3vl::python

namespace qwen3vl::python {

// Any DLPack-exporting object (or None for an optional argument) as a view, with errors that name
// the argument. Outputs must be writable. No copy: the object must outlive the call.
TensorView arg_view(nb::handle obj, const char* name, bool output = false, bool optional = true);

// A KvCache over caller storage (kv.cpp), also taken by the text layer.
struct PyKvCache {
  KvCache cache;
  nb::object k, v, key_bounds;  // the caller's storage, kept alive with the cache
  Device device = Device::kCPU;
};

// A NumPy array owning a host Tensor (the layers' host conveniences return them).
nb::object numpy_of_tensor(Tensor t, const char* name);

}  // namespace qwen3vl::python
