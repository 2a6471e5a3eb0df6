// Quest on CUDA: a device cache fed the same appends as a host one keeps bit-identical key bounds
// and block tables; the CUDA selection equals the host selection exactly (same scores, same ties);
// the output equals the host Quest output within fp32 rounding; a budget covering the sequence
// is the CUDA dense decode (to fp32 rounding). Label gpu: skips where no CUDA device exists.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "quest_problem.hpp"
#include "qwen3vl/cuda/device_buffer.cuh"
#include "qwen3vl/kv_cache/cuda.hpp"
#include "support/cuda_device.hpp"

namespace qwen3vl {
namespace {

using testing::QuestProblem;
using testing::QuestSpec;

std::unique_ptr<QuestDecode> make_quest(int64_t budget, bool cuda, QuestAggregation agg) {
  std::unique_ptr<DecodeAttention> d;
  if (cuda)
    throw_if_error(create_decode_cuda(CudaOptions{}, &d));
  else
    throw_if_error(create_decode_cpu(CpuOptions{}, &d));
  std::unique_ptr<QuestDecode> q;
  throw_if_error(QuestDecode::create(QuestConfig{budget, agg}, std::move(d), &q));
  return q;
}

// A device cache that repeats every append of a host QuestProblem.
struct DeviceQuest {
  KvCacheConfig config;
  DeviceBuffer k, v, bounds, q, out, lse;
  KvCache cache;
  CudaKvMetadata meta;

  explicit DeviceQuest(const QuestSpec& s) : config(testing::quest_cache_config(s)) {
    Tensor shape_k(s.kv_dtype, kv_storage_shape(config)),
        shape_b(DType::kF32, kv_key_bounds_shape(config));
    k = DeviceBuffer(static_cast<size_t>(shape_k.bytes()));
    v = DeviceBuffer(static_cast<size_t>(shape_k.bytes()));
    bounds = DeviceBuffer(static_cast<size_t>(shape_b.bytes()));
    throw_if_error(KvCache::create(config, k.view_like(shape_k.view()), v.view_like(shape_k.view()),
                                   bounds.view_like(shape_b.view()), &cache,
                                   &cuda_kv_storage_ops()));
    throw_if_error(CudaKvMetadata::create(config, 0, &meta));
  }
  testing::QuestMirror mirror() {
    return [this](const TensorView& hk, const TensorView& hv, const TensorView& cu) {
      const size_t bytes = static_cast<size_t>(hk.numel() * size_of(hk.dtype));
      DeviceBuffer dk(bytes), dv(bytes);
      dk.upload(hk.data, bytes);
      dv.upload(hv.data, bytes);
      throw_if_error(cache.append(dk.view_like(hk), dv.view_like(hv), cu));
      throw_if_error(cuda_status(cudaDeviceSynchronize(), "append"));
    };
  }
  QuestParams params(const QuestProblem& h, int64_t num_splits) {
    q = DeviceBuffer::copy_of(h.q);
    out = DeviceBuffer(static_cast<size_t>(h.out.bytes()));
    lse = DeviceBuffer(static_cast<size_t>(h.lse.bytes()));
    out.fill_bytes(0xff);
    throw_if_error(meta.upload(cache));
    QuestParams p;
    p.decode.q = q.view_like(h.q.view());
    p.decode.out = out.view_like(h.out.view());
    p.decode.lse = lse.view_like(h.lse.view());
    p.decode.kv = meta.view(cache);
    p.decode.num_splits = num_splits;
    p.key_bounds = cache.key_bounds();
    return p;
  }
};

TEST(QuestCuda, EqualsTheHostSelectionAndOutput) {
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device";
  // The scoring kernel's paths: D / 8 dims a lane unrolled (D 64 / 128) or a runtime loop (80,
  // 72); the group's q rows staged in shared memory, or read from global memory when G * R * D
  // floats pass 32 KiB (G 16, R 8, D 128).
  const int64_t shapes[][5] = {// rows, heads, kv_heads, head_dim, block_size
                               {1, 8, 2, 128, 16},  {5, 8, 2, 80, 16},   {8, 6, 1, 72, 32},
                               {2, 28, 4, 128, 16}, {8, 32, 2, 128, 16}, {3, 8, 4, 64, 16}};
  const DType dtypes[] = {DType::kF16, DType::kBF16, DType::kF32,
                          DType::kF16, DType::kBF16, DType::kF16};
  uint64_t seed = 500;
  for (size_t i = 0; i < 6; ++i)
    for (int64_t budget : {1, 64, 200})
      for (QuestAggregation agg : {QuestAggregation::kMax, QuestAggregation::kSum}) {
        QuestSpec s;
        s.lens = {1500, 18, 0, 257, 700};
        s.rows = shapes[i][0];
        s.heads = shapes[i][1];
        s.kv_heads = shapes[i][2];
        s.head_dim = shapes[i][3];
        s.block_size = shapes[i][4];
        s.kv_dtype = s.q_dtype = dtypes[i];
        s.seed = ++seed;
        DeviceQuest dev(s);
        QuestProblem host(s, dev.mirror());
        const std::string what = "case " + std::to_string(i) + " budget " + std::to_string(budget) +
                                 " " + to_string(agg);
        // Bounds and tables: the same appends gave the same bytes.
        std::vector<float> dev_bounds(static_cast<size_t>(host.bounds.numel()));
        dev.bounds.download(dev_bounds.data(), dev_bounds.size() * sizeof(float));
        ASSERT_EQ(dev.cache.block_table(), host.cache.block_table()) << what;
        for (int64_t b = 0; b < s.batch(); ++b)
          for (int64_t page = 0; page * s.block_size < s.lens[static_cast<size_t>(b)]; ++page) {
            const int64_t blk =
                host.cache.block_table()[static_cast<size_t>(b * host.config.max_blocks + page)];
            const int64_t per_block = 2 * s.kv_heads * s.head_dim;
            ASSERT_EQ(
                std::memcmp(dev_bounds.data() + blk * per_block,
                            host.bounds.data<float>() + blk * per_block, per_block * sizeof(float)),
                0)
                << what << " block " << blk;
          }

        const auto cpu = make_quest(budget, false, agg);
        const auto gpu = make_quest(budget, true, agg);
        QuestParams hp = host.params(2);
        std::vector<char> hws(cpu->workspace_size(hp));
        throw_if_error(cpu->forward(hp, Workspace{hws.data(), hws.size()}));
        QuestParams dp = dev.params(host, 2);
        ASSERT_TRUE(gpu->supports(dp).ok()) << gpu->supports(dp).to_string();
        DeviceBuffer dws(gpu->workspace_size(dp));
        throw_if_error(gpu->forward(dp, Workspace{dws.data(), dws.bytes()}));
        throw_if_error(cuda_status(cudaDeviceSynchronize(), "quest forward"));

        const QuestDecode::Selection hsel = cpu->selection(hp, Workspace{hws.data(), hws.size()});
        const QuestDecode::Selection dsel = gpu->selection(dp, Workspace{dws.data(), dws.bytes()});
        const int64_t width = cpu->max_pages(hp.decode.kv);
        const size_t table_n = static_cast<size_t>(s.kv_heads * s.batch() * width);
        std::vector<int32_t> dtable(table_n), dlens(static_cast<size_t>(s.kv_heads * s.batch()));
        ASSERT_EQ(cudaMemcpy(dtable.data(), dsel.table, table_n * 4, cudaMemcpyDeviceToHost),
                  cudaSuccess);
        ASSERT_EQ(cudaMemcpy(dlens.data(), dsel.lens, dlens.size() * 4, cudaMemcpyDeviceToHost),
                  cudaSuccess);
        for (int64_t gb = 0; gb < s.kv_heads * s.batch(); ++gb) {
          ASSERT_EQ(dlens[static_cast<size_t>(gb)], hsel.lens[gb]) << what << " (head, seq) " << gb;
          const int64_t pages = (hsel.lens[gb] + s.block_size - 1) / s.block_size;
          for (int64_t i2 = 0; i2 < pages; ++i2)
            ASSERT_EQ(dtable[static_cast<size_t>(gb * width + i2)], hsel.table[gb * width + i2])
                << what << " (head, seq) " << gb << " page " << i2;
        }
        Tensor dout(s.q_dtype, {s.batch(), s.rows, s.heads, s.head_dim});
        dev.out.download(dout.view().data, static_cast<size_t>(dout.bytes()));
        double diff = 0, norm = 0;
        for (int64_t e = 0; e < dout.numel(); ++e) {
          ASSERT_FALSE(std::isnan(dout.get(e))) << what << " element " << e;
          diff = std::max<double>(diff, std::abs(dout.get(e) - host.out.get(e)));
          norm = std::max<double>(norm, std::abs(host.out.get(e)));
        }
        EXPECT_LE(diff, (s.q_dtype == DType::kF32 ? 1e-5 : 1e-2) * std::max(norm, 1.0)) << what;
      }
}

TEST(QuestCuda, BudgetCoveringTheSequenceIsTheDenseDecode) {
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device";
  for (int64_t splits : {1, 3}) {
    QuestSpec s;
    s.lens = {1000, 33, 517};
    s.rows = 3;
    s.heads = 8;
    s.kv_heads = 2;
    s.head_dim = 128;
    s.kv_dtype = s.q_dtype = DType::kF32;
    DeviceQuest dev(s);
    QuestProblem host(s, dev.mirror());
    // Budget 1000 (63 pages) holds every sequence; the length bound 0 (the capacity, 64 pages)
    // does not, so forward() takes the per-head path rather than calling the dense decode.
    const auto gpu = make_quest(1000, true, QuestAggregation::kMax);
    QuestParams dp = dev.params(host, splits);
    dp.decode.kv.max_seq_len = 0;
    DeviceBuffer dws(gpu->workspace_size(dp));
    throw_if_error(gpu->forward(dp, Workspace{dws.data(), dws.bytes()}));
    Tensor quest_out(s.q_dtype, {s.batch(), s.rows, s.heads, s.head_dim});
    throw_if_error(cuda_status(cudaDeviceSynchronize(), "quest"));
    dev.out.download(quest_out.view().data, static_cast<size_t>(quest_out.bytes()));

    std::unique_ptr<DecodeAttention> dense;
    throw_if_error(create_decode_cuda(CudaOptions{}, &dense));
    DeviceBuffer dense_ws(dense->workspace_size(dp.decode));
    dev.out.fill_bytes(0xff);
    throw_if_error(dense->forward(dp.decode, Workspace{dense_ws.data(), dense_ws.bytes()}));
    throw_if_error(cuda_status(cudaDeviceSynchronize(), "dense"));
    Tensor dense_out(s.q_dtype, {s.batch(), s.rows, s.heads, s.head_dim});
    dev.out.download(dense_out.view().data, static_cast<size_t>(dense_out.bytes()));
    // The one-head views change the kernel's thread layout (heads per block), so the sums may
    // round differently: equal to fp32 rounding, not bit for bit (the host kernel is bit-exact).
    double diff = 0;
    for (int64_t e = 0; e < dense_out.numel(); ++e)
      diff = std::max<double>(diff, std::abs(quest_out.get(e) - dense_out.get(e)));
    EXPECT_LE(diff, 2e-6) << "splits " << splits;
  }
}

// The per-KV-head decodes fork to internal streams and join back: a forward captured in a graph
// and replayed, and forwards from 3 threads at once on their own streams and buffers, give the
// bytes of a lone forward on the default stream.
TEST(QuestCuda, GraphCaptureAndConcurrentCallsEqualALoneCall) {
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device";
  QuestSpec s;
  s.lens = {1500, 18, 700};
  s.rows = 2;
  s.heads = 32;
  s.kv_heads = 8;  // one lane per internal stream
  s.head_dim = 128;
  s.kv_dtype = s.q_dtype = DType::kF16;
  DeviceQuest dev(s);
  QuestProblem host(s, dev.mirror());
  const auto gpu = make_quest(128, true, QuestAggregation::kMax);
  const QuestParams lone = dev.params(host, 2);
  const size_t out_bytes = static_cast<size_t>(host.out.bytes());
  const auto run = [&](const QuestParams& p, cudaStream_t stream, bool capture) {
    DeviceBuffer ws(gpu->workspace_size(p));
    const Workspace w{ws.data(), ws.bytes()};
    if (!capture) {
      throw_if_error(gpu->forward(p, w, stream));
    } else {
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
      const Status st = gpu->forward(p, w, stream);
      ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess) << st.to_string();
      throw_if_error(st);
      ASSERT_EQ(cudaGraphInstantiateWithFlags(&exec, graph, 0), cudaSuccess);
      for (int i = 0; i < 2; ++i) ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
    }
    throw_if_error(cuda_status(cudaStreamSynchronize(stream), "quest forward"));
  };
  run(lone, nullptr, false);
  std::vector<char> expected(out_bytes), got(out_bytes);
  dev.out.download(expected.data(), out_bytes);

  // A copy of the params writing to its own output buffers.
  struct Own {
    DeviceBuffer out, lse;
    QuestParams p;
  };
  const auto own = [&](Own* o) {
    o->out = DeviceBuffer(out_bytes);
    o->lse = DeviceBuffer(static_cast<size_t>(host.lse.bytes()));
    o->out.fill_bytes(0xff);
    o->p = lone;
    o->p.decode.out = o->out.view_like(host.out.view());
    o->p.decode.lse = o->lse.view_like(host.lse.view());
  };
  cudaStream_t streams[3];
  for (cudaStream_t& st : streams) ASSERT_EQ(cudaStreamCreate(&st), cudaSuccess);
  {
    Own o;
    own(&o);
    run(o.p, streams[0], true);
    o.out.download(got.data(), out_bytes);
    EXPECT_EQ(std::memcmp(got.data(), expected.data(), out_bytes), 0) << "graph replay";
  }
  Own owns[3];
  for (Own& o : owns) own(&o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 4; ++i) run(owns[t].p, streams[t], t == 2 && i == 0);
    });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < 3; ++t) {
    owns[t].out.download(got.data(), out_bytes);
    EXPECT_EQ(std::memcmp(got.data(), expected.data(), out_bytes), 0) << "thread " << t;
  }
  for (cudaStream_t st : streams) cudaStreamDestroy(st);
}

}  // namespace
}  // namespace qwen3vl
