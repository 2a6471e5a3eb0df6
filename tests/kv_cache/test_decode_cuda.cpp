// KV caches and decode on CUDA: decode equals the float64 reference and the CPU kernel (both
// layouts, every dtype, odd head dims, GQA/MQA, 1..8 rows, forced and automatic splits, empty
// sequences); device-storage appends (ragged prefill, steps, fork with copy-on-write) write
// exactly what a host cache writes; decode through CudaKvMetadata equals CPU decode; a CUDA graph
// replays it; bad block ids are masked, never read; bad arguments are typed errors. Label gpu:
// skips where no CUDA device exists.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "decode_nonfinite.hpp"
#include "decode_problem.hpp"
#include "per_head_pages.hpp"
#include "qwen3vl/cuda/device_buffer.cuh"
#include "qwen3vl/kv_cache/cuda.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "support/cuda_device.hpp"

namespace qwen3vl {
namespace {

using testing::DecodeProblem;
using testing::DecodeSpec;
using testing::fill_uniform;
using testing::relative_diff;

#define QWEN3VL_REQUIRE_GPU() \
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device"

std::unique_ptr<DecodeAttention> make_cuda(const CudaOptions& options = {}) {
  std::unique_ptr<DecodeAttention> d;
  throw_if_error(create_decode_cuda(options, &d));
  return d;
}

// The CUDA-core kernel everywhere. make_cuda() takes the tensor-core kernel where it applies
// (sm_80+, f16 / bf16, D % 16 == 0 <= 128).
std::unique_ptr<DecodeAttention> make_cuda_core() {
  CudaOptions o;
  o.decode.tensor_cores = false;
  return make_cuda(o);
}

// The default object with the tensor-core kernel's block shape (warps a block, at most this many
// KV heads a block); 0: the default.
struct MmaShape {
  int warps, heads;
};
std::unique_ptr<DecodeAttention> make_cuda_mma(MmaShape shape = {0, 0}) {
  CudaOptions o;
  if (shape.warps) o.decode.mma_warps = shape.warps;
  if (shape.heads) o.decode.mma_kv_heads = shape.heads;
  return make_cuda(o);
}

std::unique_ptr<DecodeAttention> make_cpu() {
  std::unique_ptr<DecodeAttention> d;
  throw_if_error(create_decode_cpu(CpuOptions{}, &d));
  return d;
}

// Device copies of a host decode problem's tensors, and its params pointing at them.
struct DeviceDecode {
  DeviceBuffer q, out, lse, k, v, lens, table;
  DecodeParams params;
  explicit DeviceDecode(const DecodeProblem& h)
      : q(DeviceBuffer::copy_of(h.q)),
        out(DeviceBuffer::copy_of(h.out)),
        lse(DeviceBuffer::copy_of(h.lse)),
        k(DeviceBuffer::copy_of(h.k_store)),
        v(DeviceBuffer::copy_of(h.v_store)),
        lens(DeviceBuffer::copy_of(h.lens)) {
    params = h.params;
    params.q = q.view_like(h.params.q);
    params.out = out.view_like(h.params.out);
    params.lse = lse.view_like(h.params.lse);
    params.kv.k = k.view_like(h.params.kv.k);
    params.kv.v = v.view_like(h.params.kv.v);
    params.kv.seq_lens = lens.view_like(h.params.kv.seq_lens);
    if (h.params.kv.layout == KvLayout::kPaged) {
      table = DeviceBuffer::copy_of(h.table);
      params.kv.block_table = table.view_like(h.params.kv.block_table);
    }
  }
  Status run(const DecodeAttention& d, DecodeProblem& h, cudaStream_t stream = nullptr) {
    QWEN3VL_RETURN_IF_ERROR(d.supports(params));
    DeviceBuffer ws(d.workspace_size(params));
    for (Tensor* t : {&h.out, &h.lse}) testing::poison(*t);  // every output must be written
    out.upload(h.out.view().data, static_cast<size_t>(h.out.bytes()));
    lse.upload(h.lse.view().data, static_cast<size_t>(h.lse.bytes()));
    QWEN3VL_RETURN_IF_ERROR(d.forward(params, Workspace{ws.data(), ws.bytes()}, stream));
    QWEN3VL_RETURN_IF_ERROR(cuda_status(cudaDeviceSynchronize(), "cudaDeviceSynchronize"));
    out.download(h.out.view().data, static_cast<size_t>(h.out.bytes()));
    lse.download(h.lse.view().data, static_cast<size_t>(h.lse.bytes()));
    return Status();
  }
};

std::vector<DecodeSpec> sweep() {
  const std::vector<std::vector<int32_t>> lens = {{1},    {17, 0, 64}, {129, 257},
                                                  {1000}, {4097, 3},   {63}};
  const int64_t heads[][2] = {{4, 4}, {8, 2}, {6, 1}, {32, 8}};
  const int64_t dims[] = {64, 72, 80, 128, 17, 256, 96, 40};
  const DType dtypes[] = {DType::kF32, DType::kF16, DType::kBF16};
  const int64_t blocks[] = {0, 16, 32, 256};
  const int64_t splits[] = {0, 1, 3};
  std::vector<DecodeSpec> specs;
  uint64_t seed = 300;
  for (size_t k = 0; k < 24; ++k) {
    DecodeSpec s;
    s.lens = lens[k % lens.size()];
    s.rows = 1 + static_cast<int64_t>(k % 8);
    s.heads = heads[k % 4][0];
    s.kv_heads = heads[k % 4][1];
    s.head_dim = dims[k % 8];
    s.kv_dtype = dtypes[k % 3];
    s.q_dtype = k % 4 == 3 ? DType::kF32 : s.kv_dtype;
    s.layout = blocks[k % 4] ? KvLayout::kPaged : KvLayout::kContiguous;
    s.block_size = blocks[k % 4] ? blocks[k % 4] : 16;
    s.num_splits = splits[k % 3];
    s.bhsd_q = k % 5 == 1;
    s.seed = ++seed;
    specs.push_back(s);
  }
  return specs;
}

// Inf / NaN in the last keys (hidden from the earlier of several new rows) reach only the rows
// that see them, on the CUDA-core kernel and on the tensor-core one (the f16 / bf16 cases).
TEST(DecodeCuda, NonFiniteKeysReachOnlyTheRowsThatSeeThem) {
  QWEN3VL_REQUIRE_GPU();
  const auto core = make_cuda_core();
  const auto tensor_cores = make_cuda();
  const auto on = [](const DecodeAttention& d) {
    return [&d](DecodeProblem& p) {
      DeviceDecode dev(p);
      throw_if_error(dev.run(d, p));
    };
  };
  EXPECT_EQ(testing::check_decode_nonfinite(
                {{"cuda core", on(*core)}, {"cuda default", on(*tensor_cores)}}),
            2 * 36);
}

TEST(DecodeCuda, MatchesTheReferenceAndTheCpuKernel) {
  QWEN3VL_REQUIRE_GPU();
  const auto cpu = make_cpu();
  for (const auto& gpu : {make_cuda(), make_cuda_core()})
    for (const DecodeSpec& spec : sweep()) {
      DecodeProblem h(spec);
      DeviceDecode d(h);
      ASSERT_TRUE(d.run(*gpu, h).ok()) << spec.to_string();
      const testing::DecodeErrors e = testing::decode_errors(h);
      EXPECT_LE(e.out, testing::tolerance(spec.q_dtype)) << spec.to_string();
      EXPECT_LE(e.lse, spec.q_dtype == DType::kF32 ? 2e-5 : 1e-3) << spec.to_string();
      DecodeProblem c(spec);
      cpu->run(c.params);
      EXPECT_LE(relative_diff(h.out, c.out), spec.q_dtype == DType::kF32 ? 2e-6 : 2e-3)
          << spec.to_string();
      EXPECT_LE(relative_diff(h.lse, c.lse), 1e-5) << spec.to_string();
    }
}

// One edge case of the decode sweeps: its shape, storage dtypes, layout and split count.
struct Edge {
  std::vector<int32_t> lens;
  int64_t rows, heads, kv_heads, head_dim;
  DType kv_dtype, q_dtype;
  int64_t block_size, splits;  // block_size 0: contiguous
};

DecodeSpec spec_of(const Edge& e, uint64_t seed) {
  DecodeSpec s;
  s.lens = e.lens;
  s.rows = e.rows;
  s.heads = e.heads;
  s.kv_heads = e.kv_heads;
  s.head_dim = e.head_dim;
  s.kv_dtype = e.kv_dtype;
  s.q_dtype = e.q_dtype;
  s.layout = e.block_size ? KvLayout::kPaged : KvLayout::kContiguous;
  s.block_size = e.block_size ? e.block_size : 16;
  s.num_splits = e.splits;
  s.seed = seed;
  return s;
}

// The kernel's edges: more splits than keys (empty splits), 16 query heads per KV head with 8
// rows (32 row tiles), the widest lane groups (D 256) and padded ones (D 72, 17), Hkv 1..3 (warps
// of a block sharing one head), every storage dtype.
TEST(DecodeCuda, EdgeShapesMatchTheReference) {
  QWEN3VL_REQUIRE_GPU();
  const Edge edges[] = {
      {{10, 3}, 1, 8, 2, 128, DType::kF16, DType::kF16, 16, 64},       // splits > keys
      {{300}, 8, 16, 1, 128, DType::kBF16, DType::kBF16, 16, 0},       // G 16, R 8
      {{517}, 8, 32, 2, 72, DType::kF16, DType::kF16, 0, 5},           // G 16, R 8, padded D
      {{1031, 64}, 3, 12, 3, 256, DType::kBF16, DType::kBF16, 32, 0},  // D 256, Hkv 3
      {{2000}, 1, 32, 8, 256, DType::kF32, DType::kF32, 16, 0},        // f32 D 256
      {{95}, 2, 6, 3, 17, DType::kF32, DType::kF32, 0, 7},             // D 17, Hkv 3
  };
  uint64_t seed = 900;
  for (const auto& gpu : {make_cuda(), make_cuda_core()})
    for (const Edge& e : edges) {
      const DecodeSpec s = spec_of(e, ++seed);
      DecodeProblem h(s);
      DeviceDecode d(h);
      ASSERT_TRUE(d.run(*gpu, h).ok()) << s.to_string();
      const testing::DecodeErrors err = testing::decode_errors(h);
      EXPECT_LE(err.out, testing::tolerance(s.q_dtype)) << s.to_string();
      EXPECT_LE(err.lse, s.q_dtype == DType::kF32 ? 2e-5 : 1e-3) << s.to_string();
    }
}

TEST(DecodeCuda, BadBlockIdsAreMaskedNotRead) {
  QWEN3VL_REQUIRE_GPU();
  DecodeSpec s;
  s.lens = {40};
  s.num_splits = 1;
  DecodeProblem h(s);
  h.table.data<int32_t>()[1] = 1 << 30;  // keys 16..31 point far outside the pool
  DeviceDecode d(h);
  ASSERT_TRUE(d.run(*make_cuda(), h).ok());
  for (int64_t i = 0; i < h.out.numel(); ++i) ASSERT_TRUE(std::isfinite(h.out.get(i)));
  // The CPU path rejects the same table before running.
  EXPECT_EQ(make_cpu()->supports(h.params).code(), StatusCode::kInvalidArgument);
}

TEST(DecodeCuda, RejectsHostTensorsAndSmallWorkspaces) {
  QWEN3VL_REQUIRE_GPU();
  DecodeSpec s;
  s.lens = {3000};
  s.num_splits = 4;
  DecodeProblem h(s);
  const auto gpu = make_cuda();
  EXPECT_EQ(gpu->supports(h.params).code(), StatusCode::kUnsupported);  // host memory
  DeviceDecode d(h);
  ASSERT_TRUE(gpu->supports(d.params).ok());
  DecodeParams half_host = d.params;
  half_host.kv.seq_lens = h.params.kv.seq_lens;  // host lengths with device storage
  EXPECT_FALSE(gpu->supports(half_host).ok());
  const size_t need = gpu->workspace_size(d.params);
  ASSERT_GT(need, 0u);
  DeviceBuffer small(need / 2);
  EXPECT_EQ(gpu->forward(d.params, Workspace{small.data(), small.bytes()}).code(),
            StatusCode::kWorkspaceTooSmall);
}

// A device cache and a host cache fed the same appends hold the same bytes, and decode on them
// agrees; the decode replays from a CUDA graph.
TEST(DecodeCuda, DeviceCacheMatchesHostCache) {
  QWEN3VL_REQUIRE_GPU();
  for (KvLayout layout : {KvLayout::kPaged, KvLayout::kContiguous}) {
    KvCacheConfig c;
    c.layout = layout;
    c.batch = 3;
    c.kv_heads = 2;
    c.head_dim = 64;
    c.dtype = DType::kF16;
    c.max_len = 200;
    c.block_size = 16;
    c.max_blocks = 13;
    c.num_blocks = 40;
    Tensor hk(c.dtype, kv_storage_shape(c)), hv(c.dtype, kv_storage_shape(c));
    DeviceBuffer dk = DeviceBuffer::copy_of(hk), dv = DeviceBuffer::copy_of(hv);
    KvCache host, dev;
    ASSERT_TRUE(KvCache::create(c, hk, hv, &host).ok());
    ASSERT_TRUE(KvCache::create(c, dk.view_like(hk.view()), dv.view_like(hv.view()), &dev,
                                &cuda_kv_storage_ops())
                    .ok());
    // Prefill: ragged f32 tokens (converted on the device), sequence 1 empty; then fork 0 -> 1.
    Tensor k(DType::kF32, {70, 2, 64}), v(DType::kF32, {70, 2, 64}), cu(DType::kI32, {4});
    fill_uniform(k, 1);
    fill_uniform(v, 2);
    const int32_t offsets[] = {0, 45, 45, 70};
    std::memcpy(cu.data<int32_t>(), offsets, sizeof offsets);
    DeviceBuffer kd = DeviceBuffer::copy_of(k), vd = DeviceBuffer::copy_of(v);
    ASSERT_TRUE(host.append(k, v, cu).ok());
    ASSERT_TRUE(dev.append(kd.view_like(k.view()), vd.view_like(v.view()), cu).ok());
    ASSERT_TRUE(host.fork(0, 1).ok());
    ASSERT_TRUE(dev.fork(0, 1).ok());
    // Three decode steps of 2 rows for every sequence (copy-on-write of the shared block).
    CudaKvMetadata meta;
    ASSERT_TRUE(CudaKvMetadata::create(c, 0, &meta).ok());
    const auto gpu = make_cuda();
    const auto cpu = make_cpu();
    for (int step = 0; step < 3; ++step) {
      Tensor sk(DType::kF16, {3, 2, 2, 64}), sv(DType::kF16, {3, 2, 2, 64});
      fill_uniform(sk, 10 + step);
      fill_uniform(sv, 20 + step);
      DeviceBuffer skd = DeviceBuffer::copy_of(sk), svd = DeviceBuffer::copy_of(sv);
      ASSERT_TRUE(host.append(sk, sv).ok());
      ASSERT_TRUE(dev.append(skd.view_like(sk.view()), svd.view_like(sv.view())).ok());
      ASSERT_EQ(host.lengths(), dev.lengths());
      ASSERT_EQ(host.block_table(), dev.block_table());

      Tensor q(DType::kF16, {3, 2, 8, 64}), out_cpu(DType::kF16, {3, 2, 8, 64}),
          out_gpu(DType::kF16, {3, 2, 8, 64});
      fill_uniform(q, 30 + step);
      DecodeParams pc;
      pc.q = q.view();
      pc.out = out_cpu.view();
      pc.kv = host.view();
      cpu->run(pc);
      ASSERT_TRUE(meta.upload(dev).ok());
      DeviceBuffer qd = DeviceBuffer::copy_of(q), od(static_cast<size_t>(out_gpu.bytes()));
      DecodeParams pg;
      pg.q = qd.view_like(q.view());
      pg.out = od.view_like(out_gpu.view());
      pg.kv = meta.view(dev);
      DeviceBuffer ws(gpu->workspace_size(pg));
      // Captured into a graph and replayed: no allocation, no sync inside forward().
      cudaStream_t stream;
      ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
      const Status st = gpu->forward(pg, Workspace{ws.data(), ws.bytes()}, stream);
      ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
      ASSERT_TRUE(st.ok()) << st.to_string();
      ASSERT_EQ(cudaGraphInstantiateWithFlags(&exec, graph, 0), cudaSuccess);
      ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
      cudaStreamDestroy(stream);
      od.download(out_gpu.view().data, static_cast<size_t>(out_gpu.bytes()));
      EXPECT_LE(relative_diff(out_gpu, out_cpu), 2e-3) << to_string(layout) << " step " << step;
    }
    // Same bytes in both storages.
    Tensor back_k(c.dtype, kv_storage_shape(c)), back_v(c.dtype, kv_storage_shape(c));
    dk.download(back_k.view().data, static_cast<size_t>(back_k.bytes()));
    dv.download(back_v.view().data, static_cast<size_t>(back_v.bytes()));
    EXPECT_EQ(0, std::memcmp(back_k.view().data, hk.view().data, static_cast<size_t>(hk.bytes())));
    EXPECT_EQ(0, std::memcmp(back_v.view().data, hv.view().data, static_cast<size_t>(hv.bytes())));
  }
}

// The tensor-core path (sm_80+: f16 / bf16, D % 16 == 0, D <= 128) at its edges: rows that fill
// neither the 16-row tile nor a whole second one, D 16 / 80 / 96, heads per block 1 / 2 / 4 with
// a KV-head chunk past Hkv, more splits than tiles, empty sequences; D 72 and 144 and f32
// queries take the CUDA-core path. Each
// case also matches the CUDA-core kernel run on the same inputs.
TEST(DecodeCuda, TensorCorePathEdgesMatchTheReferenceAndTheCoreKernel) {
  QWEN3VL_REQUIRE_GPU();
  const auto core = make_cuda_core();
  const Edge edges[] = {
      {{4100}, 1, 32, 8, 128, DType::kF16, DType::kF16, 16, 0},         // Qwen shape, 4 of 16 rows
      {{1000, 0, 77}, 4, 10, 2, 64, DType::kBF16, DType::kBF16, 0, 0},  // 20 rows: tiles 16 + 4
      {{700}, 1, 12, 3, 128, DType::kF16, DType::kF16, 16, 0},  // Hkv 3: a chunk of 2, a padded one
      {{5000}, 1, 64, 16, 96, DType::kBF16, DType::kBF16, 64, 0},   // Hkv 16: 4 heads a block
      {{333}, 2, 8, 2, 80, DType::kF16, DType::kF16, 48, 3},        // D 80, 48-key pages
      {{259, 16}, 3, 4, 1, 16, DType::kBF16, DType::kBF16, 32, 0},  // D 16
      {{40, 9}, 1, 4, 2, 128, DType::kF16, DType::kF16, 32, 7},     // splits > tiles
      {{90}, 2, 8, 2, 128, DType::kBF16, DType::kF32, 16, 0},       // f32 q: CUDA-core path
      {{200}, 8, 4, 2, 128, DType::kBF16, DType::kBF16, 16, 2},     // 16 rows, R 8 causal
      {{150}, 2, 6, 3, 72, DType::kF16, DType::kF16, 16, 0},        // D 72: CUDA-core path
      {{150}, 1, 4, 2, 144, DType::kBF16, DType::kBF16, 0, 0},      // D 144: CUDA-core path
  };
  for (const MmaShape shape : {MmaShape{8, 1}, MmaShape{8, 8}, MmaShape{4, 4}, MmaShape{4, 1}}) {
    const auto gpu = make_cuda_mma(shape);
    SCOPED_TRACE("warps " + std::to_string(shape.warps) + ", heads " + std::to_string(shape.heads));
    uint64_t seed = 1300;
    for (const Edge& e : edges) {
      const DecodeSpec s = spec_of(e, ++seed);
      DecodeProblem h(s), c(s);
      DeviceDecode d(h), dc(c);
      const Status st = d.run(*gpu, h), st_core = dc.run(*core, c);
      ASSERT_TRUE(st.ok()) << s.to_string() << ": " << st.to_string();
      ASSERT_TRUE(st_core.ok()) << s.to_string() << ": " << st_core.to_string();
      const testing::DecodeErrors err = testing::decode_errors(h);
      EXPECT_LE(err.out, testing::tolerance(s.q_dtype)) << s.to_string();
      EXPECT_LE(err.lse, s.q_dtype == DType::kF32 ? 2e-5 : 1e-3) << s.to_string();
      EXPECT_LE(relative_diff(h.out, c.out), s.q_dtype == DType::kF32 ? 2e-6 : 2e-3)
          << s.to_string();
      EXPECT_LE(relative_diff(h.lse, c.lse), 1e-5) << s.to_string();
    }
  }
}

// Per-KV-head pages (block_table [B, Hkv, pages], seq_lens [B, Hkv]): one call equals each head
// decoded alone on its own table, for both kernels; an empty sequence, partial last blocks,
// forced and automatic splits, the Qwen shape (8 heads, several warps a head on the tensor cores).
TEST(DecodeCuda, PerHeadPagesEqualOneDecodePerHead) {
  QWEN3VL_REQUIRE_GPU();
  const Edge edges[] = {
      {{100, 0, 257}, 1, 8, 4, 64, DType::kF16, DType::kF16, 16, 0},
      {{700}, 1, 12, 3, 72, DType::kF32, DType::kF32, 32, 3},
      {{45, 333}, 3, 4, 2, 128, DType::kBF16, DType::kBF16, 16, 0},
      {{4100}, 1, 32, 8, 128, DType::kF16, DType::kF16, 16, 0},
  };
  uint64_t seed = 1500;
  for (const auto& gpu : {make_cuda(), make_cuda_core()})
    for (const Edge& e : edges) {
      const DecodeSpec s = spec_of(e, ++seed);
      DecodeProblem all(s), alone(s);
      const testing::PerHeadPages pages(all);
      DeviceDecode da(all), dl(alone);
      DeviceBuffer table = DeviceBuffer::copy_of(pages.table),
                   lens = DeviceBuffer::copy_of(pages.lens);
      auto run = [&](const DecodeParams& params) {
        DeviceBuffer ws(gpu->workspace_size(params));
        const Status st = gpu->forward(params, Workspace{ws.data(), ws.bytes()}, nullptr);
        EXPECT_TRUE(st.ok()) << s.to_string() << ": " << st.to_string();
        throw_if_error(cuda_status(cudaDeviceSynchronize(), "cudaDeviceSynchronize"));
      };
      run(pages.all_heads(da.params, table.data(), lens.data()));
      for (int64_t h = 0; h < s.kv_heads; ++h)
        run(pages.one_head(dl.params, h, table.data(), lens.data()));
      da.out.download(all.out.view().data, static_cast<size_t>(all.out.bytes()));
      da.lse.download(all.lse.view().data, static_cast<size_t>(all.lse.bytes()));
      dl.out.download(alone.out.view().data, static_cast<size_t>(alone.out.bytes()));
      dl.lse.download(alone.lse.view().data, static_cast<size_t>(alone.lse.bytes()));
      EXPECT_LE(relative_diff(all.out, alone.out), s.q_dtype == DType::kF32 ? 2e-6 : 2e-3)
          << s.to_string();
      EXPECT_LE(relative_diff(all.lse, alone.lse), 1e-5) << s.to_string();
    }
}

// Bad block ids on the tensor-core path: masked (zero-filled copies), the output stays finite.
TEST(DecodeCuda, TensorCorePathMasksBadBlockIds) {
  QWEN3VL_REQUIRE_GPU();
  DecodeSpec s;
  s.lens = {70};
  s.head_dim = 128;
  s.kv_dtype = s.q_dtype = DType::kF16;
  s.num_splits = 2;
  DecodeProblem h(s);
  h.table.data<int32_t>()[1] = 1 << 30;
  h.table.data<int32_t>()[3] = -5;
  DeviceDecode d(h);
  ASSERT_TRUE(d.run(*make_cuda_mma(), h).ok());
  for (int64_t i = 0; i < h.out.numel(); ++i) ASSERT_TRUE(std::isfinite(h.out.get(i)));
}

}  // namespace
}  // namespace qwen3vl
