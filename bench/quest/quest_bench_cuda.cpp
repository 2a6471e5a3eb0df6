// The Quest benchmark on CUDA: device copies of the host cache's storage, key bounds, lengths and
// table; CUDA dense decode and CUDA Quest timed with events on one stream (bench/common/
// cuda_timing.hpp), medians of `repeats` single calls after 2 warm-ups; then each call captured
// into a CUDA graph and its replays timed the same way.
#include <cuda_runtime.h>

#include <cstdio>
#include <exception>
#include <memory>

#include "common/cuda_timing.hpp"
#include "quest_bench.hpp"
#include "qwen3vl/cuda/device_buffer.cuh"
#include "qwen3vl/kv_cache/cuda.hpp"

namespace qwen3vl::bench {

namespace {

template <class F>
double median_event_ms(int repeats, cudaStream_t stream, F&& call) {
  return cuda_median_ms(stream, 2, repeats, 1, call);
}

// The call captured once into a CUDA graph, its replays timed like median_event_ms; -1 when the
// call could not be captured (printed as a negative time).
template <class F>
double median_graph_ms(int repeats, cudaStream_t stream, F&& call) {
  std::vector<double> ms;
  const Status s = cuda_graph_samples(stream, 2, repeats, 1, call, &ms);
  if (s.code() == StatusCode::kUnsupported) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return -1;
  }
  throw_if_error(s);
  return median(ms);
}

}  // namespace

CudaTimes run_cuda_quest(HostQuestCache& host, const QuestConfig& config, int repeats,
                         const std::vector<int32_t>& host_table,
                         const std::vector<int32_t>& host_lens) {
  DeviceBuffer k = DeviceBuffer::copy_of(host.k), v = DeviceBuffer::copy_of(host.v);
  DeviceBuffer bounds = DeviceBuffer::copy_of(host.bounds), q = DeviceBuffer::copy_of(host.q);
  DeviceBuffer out(static_cast<size_t>(host.out.bytes())),
      lse(static_cast<size_t>(host.lse.bytes()));
  CudaKvMetadata meta;
  throw_if_error(CudaKvMetadata::create(host.config, 0, &meta));
  throw_if_error(meta.upload(host.cache));
  QuestParams p = host.params();
  p.decode.q = q.view_like(host.q.view());
  p.decode.out = out.view_like(host.out.view());
  p.decode.lse = lse.view_like(host.lse.view());
  p.decode.kv = meta.view(host.cache);
  p.decode.kv.k = k.view_like(host.k.view());
  p.decode.kv.v = v.view_like(host.v.view());
  p.key_bounds = bounds.view_like(host.bounds.view());

  std::unique_ptr<DecodeAttention> dense, inner;
  throw_if_error(create_decode_cuda(CudaOptions{}, &dense));
  throw_if_error(create_decode_cuda(CudaOptions{}, &inner));
  std::unique_ptr<QuestDecode> quest;
  throw_if_error(QuestDecode::create(config, std::move(inner), &quest));
  DeviceBuffer dws(dense->workspace_size(p.decode)), qws(quest->workspace_size(p));
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  CudaTimes t;
  t.dense_ms = median_event_ms(repeats, stream, [&] {
    throw_if_error(dense->forward(p.decode, Workspace{dws.data(), dws.bytes()}, stream));
  });
  t.quest_ms = median_event_ms(repeats, stream, [&] {
    throw_if_error(quest->forward(p, Workspace{qws.data(), qws.bytes()}, stream));
  });
  t.dense_graph_ms = median_graph_ms(repeats, stream, [&] {
    throw_if_error(dense->forward(p.decode, Workspace{dws.data(), dws.bytes()}, stream));
  });
  t.quest_graph_ms = median_graph_ms(repeats, stream, [&] {
    throw_if_error(quest->forward(p, Workspace{qws.data(), qws.bytes()}, stream));
  });
  const QuestDecode::Selection sel = quest->selection(p, Workspace{qws.data(), qws.bytes()});
  std::vector<int32_t> table(host_table.size()), lens(host_lens.size());
  cudaMemcpy(table.data(), sel.table, table.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(lens.data(), sel.lens, lens.size() * 4, cudaMemcpyDeviceToHost);
  t.same_selection = lens == host_lens;
  const int64_t width = static_cast<int64_t>(host_table.size() / host_lens.size());
  for (size_t g = 0; g < lens.size() && t.same_selection; ++g)
    for (int64_t i = 0; i < (lens[g] + host.shape.block_size - 1) / host.shape.block_size; ++i)
      t.same_selection &= table[g * width + i] == host_table[g * width + i];
  cudaStreamDestroy(stream);
  return t;
}

}  // namespace qwen3vl::bench
