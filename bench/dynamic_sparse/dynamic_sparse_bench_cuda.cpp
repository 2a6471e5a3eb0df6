// qwen3vl-attn-bench dynamic-sparse --device cuda: block top-k routed on the GPU (routing + the
// CUDA block-sparse kernel) against the CUDA flash2 object on the same structured inputs, timed
// with CUDA events (bench/common/cuda_timing.hpp: one warm-up, then one event pair around --reps
// calls: their mean); recall and output error as on the CPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/cuda_timing.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/device_buffer.cuh"
#include "structured_problem.hpp"

namespace qwen3vl::bench {
namespace {

template <class F>
double mean_event_ms(int reps, F&& call) {
  return cuda_median_ms(nullptr, 1, 1, reps, call);
}

std::vector<int32_t> download_i32(const TensorView& t) {
  std::vector<int32_t> host(static_cast<size_t>(t.numel()));
  throw_if_error(cuda_status(
      cudaMemcpy(host.data(), t.data, host.size() * 4, cudaMemcpyDeviceToHost), "cudaMemcpy"));
  return host;
}

}  // namespace

int run_cuda(const Options& o, Inputs& in, const std::vector<SampledRow>& rows, Report* report) {
  int device = 0;
  cudaDeviceProp prop;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    std::fprintf(stderr, "no CUDA device\n");
    return 2;
  }
  const DeviceBuffer q = DeviceBuffer::copy_of(in.q), k = DeviceBuffer::copy_of(in.k),
                     v = DeviceBuffer::copy_of(in.v);
  DeviceBuffer out(static_cast<size_t>(in.out.bytes()));
  AttentionParams p = in.params;
  p.q = q.view_like(p.q, device);
  p.k = k.view_like(p.k, device);
  p.v = v.view_like(p.v, device);
  p.out = out.view_like(p.out, device);
  const auto download_out = [&] {
    out.download(in.out.view().data, static_cast<size_t>(in.out.bytes()));
  };

  std::unique_ptr<Attention> dense;
  throw_if_error(create_flash2_cuda(CudaOptions{}, &dense));
  DeviceBuffer dense_ws(dense->workspace_size(p));
  const double dense_ms = mean_event_ms(o.reps, [&] {
    throw_if_error(dense->forward(p, Workspace{dense_ws.data(), dense_ws.bytes()}));
  });
  download_out();
  std::vector<Row> table;
  table.push_back({"flash2 cuda (dense)", "-", dense_ms, 0.0, 1.0,
                   quality(in, o, rows, [](const SampledRow&, int64_t) { return true; })});

  for (int top : {8, 32}) {
    DynamicSparseConfig c;
    c.top_k_blocks = top;
    std::unique_ptr<DynamicSparseAttention> a;
    throw_if_error(create_dynamic_sparse_cuda(CudaOptions{}, c, &a));
    DeviceBuffer ws(a->workspace_size(p));
    const Workspace w{ws.data(), ws.bytes()};
    Row row{
        "block_topk cuda", std::to_string(top) + " blocks + 1 sink + 1 local (64x64)", 0, 0, 0, {}};
    row.total_ms = mean_event_ms(o.reps, [&] { throw_if_error(a->forward(p, w)); });
    download_out();
    BlockLayout layout;
    row.route_ms = mean_event_ms(o.reps, [&] { throw_if_error(a->estimate(p, w, &layout)); });
    std::vector<int32_t> indptr = download_i32(layout.indptr),
                         indices = download_i32(layout.indices);
    BlockLayout host = layout;
    host.indptr = TensorView::contiguous(indptr.data(), DType::kI32,
                                         {layout.indptr.shape[0], layout.indptr.shape[1]});
    host.indices = TensorView::contiguous(indices.data(), DType::kI32,
                                          {layout.indices.shape[0], layout.indices.shape[1]});
    int64_t kept = 0, visible = 0;  // causal self-attention: row block I sees key blocks 0..I'
    for (int64_t l = 0; l < host.layouts(); ++l)
      for (int64_t rb = 0; rb < host.row_blocks(); ++rb) {
        kept += host.row_ptr(l)[rb + 1] - host.row_ptr(l)[rb];
        visible += (std::min<int64_t>(o.n, (rb + 1) * host.block_q) - 1) / host.block_k + 1;
      }
    row.density = static_cast<double>(kept) / static_cast<double>(visible);
    row.q = layout_quality(in, o, rows, host);
    table.push_back(row);
  }
  std::printf(
      "N %lld, Hq %lld / Hkv %lld, D %lld, causal, f32, %s, CUDA events: mean of %d after a "
      "warm-up; recall over %d rows x %lld heads\n\n",
      (long long)o.n, (long long)o.heads, (long long)o.kv_heads, (long long)o.dim, prop.name,
      o.reps, o.rows, (long long)o.heads);
  print_table(table, dense_ms, report);
  return 0;
}

}  // namespace qwen3vl::bench
