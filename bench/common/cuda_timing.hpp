// The one CUDA-event timer of the benchmarks (host code; needs the CUDA runtime headers). Every
// GPU figure of qwen3vl-attn-bench comes from these two functions, so figures timed "the same
// way" are timed by the same code:
//  - cuda_event_samples: launches outside any graph; each sample is an event pair on `stream`
//    around `per_sample` calls in a row, divided by `per_sample` (if the host launches slower
//    than the GPU runs the calls, the figure shows it);
//  - cuda_graph_samples: the same `per_sample` calls captured once into a CUDA graph, each sample
//    an event pair around one replay (no host launch gaps), divided by `per_sample`.
// `call` enqueues its work on `stream` and returns void or a Status (exceptions pass through).
#pragma once

#include <cuda_runtime.h>

#include <exception>
#include <memory>
#include <type_traits>
#include <vector>

#include "qwen3vl/core/status.hpp"
#include "qwen3vl/cuda/check.cuh"
#include "timing.hpp"

namespace qwen3vl::bench {

namespace detail {

template <class F>
Status invoke(F& call) {
  if constexpr (std::is_same_v<decltype(call()), Status>) {
    return call();
  } else {
    call();
    return Status();
  }
}

struct EventPair {
  cudaEvent_t start = nullptr, stop = nullptr;
  Status create() {
    QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventCreate(&start));
    return cuda_status(cudaEventCreate(&stop), "cudaEventCreate");
  }
  ~EventPair() {
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
  }
};

// One sample: milliseconds between events around `launch()` on `stream`, divided by `per_sample`.
template <class L>
Status sample(cudaStream_t stream, const EventPair& ev, int per_sample, L& launch, double* ms) {
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventRecord(ev.start, stream));
  QWEN3VL_RETURN_IF_ERROR(launch());
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventRecord(ev.stop, stream));
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(ev.stop));
  float elapsed = 0.0f;
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&elapsed, ev.start, ev.stop));
  *ms = static_cast<double>(elapsed) / per_sample;
  return Status();
}

}  // namespace detail

// `repeats` samples of `per_sample` back-to-back calls after `warmups` untimed calls; ms per call.
template <class F>
Status cuda_event_samples(cudaStream_t stream, int warmups, int repeats, int per_sample, F&& call,
                          std::vector<double>* ms) {
  detail::EventPair ev;
  QWEN3VL_RETURN_IF_ERROR(ev.create());
  for (int w = 0; w < warmups; ++w) QWEN3VL_RETURN_IF_ERROR(detail::invoke(call));
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  auto group = [&]() -> Status {
    for (int i = 0; i < per_sample; ++i) QWEN3VL_RETURN_IF_ERROR(detail::invoke(call));
    return Status();
  };
  ms->clear();
  for (int r = 0; r < repeats; ++r) {
    double t = 0;
    QWEN3VL_RETURN_IF_ERROR(detail::sample(stream, ev, per_sample, group, &t));
    ms->push_back(t);
  }
  return cuda_status(cudaPeekAtLastError(), "the timed calls");
}

// `per_sample` calls captured into one graph (thread-local capture on `stream`, which must not be
// the legacy default stream), replayed `warmups` times untimed, then `repeats` timed replays;
// ms per call. A call that cannot be captured is a kUnsupported Status naming why.
template <class F>
Status cuda_graph_samples(cudaStream_t stream, int warmups, int repeats, int per_sample, F&& call,
                          std::vector<double>* ms) {
  cudaGraph_t graph = nullptr;
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  auto capture = [&]() -> Status {
    try {
      for (int i = 0; i < per_sample; ++i) QWEN3VL_RETURN_IF_ERROR(detail::invoke(call));
      return Status();
    } catch (const std::exception& e) {
      return make_error(StatusCode::kUnsupported, "graph capture: ", e.what());
    }
  };
  const Status captured = capture();
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  std::unique_ptr<CUgraph_st, decltype(&cudaGraphDestroy)> graph_owner(graph, &cudaGraphDestroy);
  if (!captured.ok() || end != cudaSuccess) {
    cudaGetLastError();  // clear the capture error: the caller reports the call as not captured
    return captured.ok()
               ? make_error(StatusCode::kUnsupported, "graph capture: ", cudaGetErrorString(end))
               : Status(StatusCode::kUnsupported, captured.message());
  }
  cudaGraphExec_t exec = nullptr;
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaGraphInstantiateWithFlags(&exec, graph, 0));
  std::unique_ptr<CUgraphExec_st, decltype(&cudaGraphExecDestroy)> exec_owner(
      exec, &cudaGraphExecDestroy);
  auto replay = [&]() -> Status {
    return cuda_status(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");
  };
  detail::EventPair ev;
  QWEN3VL_RETURN_IF_ERROR(ev.create());
  for (int w = 0; w < warmups; ++w) QWEN3VL_RETURN_IF_ERROR(replay());
  QWEN3VL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  ms->clear();
  for (int r = 0; r < repeats; ++r) {
    double t = 0;
    QWEN3VL_RETURN_IF_ERROR(detail::sample(stream, ev, per_sample, replay, &t));
    ms->push_back(t);
  }
  return Status();
}

// The median of cuda_event_samples; throws on a CUDA error.
template <class F>
double cuda_median_ms(cudaStream_t stream, int warmups, int repeats, int per_sample, F&& call) {
  std::vector<double> ms;
  throw_if_error(cuda_event_samples(stream, warmups, repeats, per_sample, call, &ms));
  return median(ms);
}

}  // namespace qwen3vl::bench
