// The layers on CUDA (label gpu; skipped without a device): against the transformers fixtures, and
// equal to the CPU layers: prefill, prefill then decode through device KV caches (paged f16 and
// contiguous f32), chunked prefill over a contiguous cache, and the vision layer.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "layer_support.hpp"
#include "qwen3vl/kv_cache/cuda.hpp"
#include "qwen3vl/testing/random_fill.hpp"
#include "support/device_problem.hpp"

namespace qwen3vl {
namespace {

using testing::fill_uniform;

#define QWEN3VL_REQUIRE_GPU() \
  if (!testing::cuda_device_present()) GTEST_SKIP() << "no CUDA device"

// A host tensor's device copy, its view, and the way back.
struct OnDevice {
  DeviceBuffer buffer;
  TensorView view;
  explicit OnDevice(const Tensor& host)
      : buffer(DeviceBuffer::copy_of(host)),
        view(buffer.view_like(host.view(), testing::cuda_current_device())) {}
  Tensor download(const Tensor& like) const {
    Tensor t = testing::converted(like, like.dtype());
    buffer.download(t.data<char>(), static_cast<size_t>(t.bytes()));
    return t;
  }
};

layers::LayerOptions cuda_options(DType dtype) {
  layers::LayerOptions o;
  o.device = Device::kCUDA;
  o.device_index = testing::cuda_current_device();
  o.dtype = dtype;
  return o;
}

// Runs a text layer on device views; returns the output on the host.
Tensor run_text(const layers::Qwen3VLTextAttention& layer, const TensorView& x,
                const TensorView& pos, KvCache* cache, DType dtype) {
  Tensor out(dtype, {x.shape[0], x.shape[1], layer.config().hidden_size});
  OnDevice d_out(out);
  const layers::TextAttentionInputs in{x, pos, {}};
  const layers::TextAttentionOutputs outs{d_out.view, {}};
  const size_t bytes = layer.workspace_size(in, cache, outs);
  EXPECT_GT(bytes, 0u) << layer.supports(in, cache, outs).to_string();
  DeviceBuffer ws(bytes);
  throw_if_error(layer.forward(in, cache, outs, Workspace{ws.data(), bytes}));
  throw_if_error(cuda_status(cudaDeviceSynchronize(), "cudaDeviceSynchronize"));
  return d_out.download(out);
}

TEST(LayersCuda, TextMatchesTransformersAndCpu) {
  QWEN3VL_REQUIRE_GPU();
  const testing::LayerFixtures& f = testing::LayerFixtures::get();
  for (const std::string n : {"text_d32", "text_d128"}) {
    const testing::Json& m = f.meta(n);
    layers::TextAttentionConfig c;
    c.hidden_size = static_cast<int64_t>(m["hidden_size"].number);
    c.num_heads = static_cast<int64_t>(m["num_heads"].number);
    c.num_kv_heads = static_cast<int64_t>(m["num_kv_heads"].number);
    c.head_dim = static_cast<int64_t>(m["head_dim"].number);
    c.mrope_section = {static_cast<int32_t>(m["mrope_section"][0].number),
                       static_cast<int32_t>(m["mrope_section"][1].number),
                       static_cast<int32_t>(m["mrope_section"][2].number)};
    c.max_position = 4096;
    const Tensor wq = f.tensor(n + "/q_proj"), wk = f.tensor(n + "/k_proj"),
                 wv = f.tensor(n + "/v_proj"), wo = f.tensor(n + "/o_proj"),
                 qn = f.tensor(n + "/q_norm"), kn = f.tensor(n + "/k_norm");
    const layers::TextAttentionWeights w{wq, wk, wv, wo, qn, kn};
    const Tensor x = f.tensor(n + "/hidden_states"), pos = f.tensor(n + "/position_ids");
    const Tensor ref = f.tensor(n + "/f64/output");
    const Tensor cpu = (*layers::Qwen3VLTextAttention::create(c, w))(x, {}, pos).output;
    const OnDevice d_pos(pos);
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(n + " " + to_string(dtype));
      c.options = cuda_options(dtype);
      const auto layer = layers::Qwen3VLTextAttention::create(c, w);
      const OnDevice d_x(testing::converted(x, dtype));
      const Tensor out = run_text(*layer, d_x.view, d_pos.view, nullptr, dtype);
      EXPECT_LT(testing::rel_error(out, ref), testing::tolerance(dtype));
      if (dtype == DType::kF32) EXPECT_LT(testing::rel_error(out, cpu), 1e-5);
    }
  }
}

TEST(LayersCuda, PrefillThenDecodeThroughDeviceCaches) {
  QWEN3VL_REQUIRE_GPU();
  const int64_t hidden = 64, hq = 4, hkv = 2, d = 32, B = 2, total = 30, prefill = 11;
  const testing::TextWeights w(hidden, hq, hkv, d, 5);
  layers::TextAttentionConfig c;
  c.hidden_size = hidden;
  c.num_heads = hq;
  c.num_kv_heads = hkv;
  c.head_dim = d;
  c.mrope_section = {6, 5, 5};
  c.max_position = 4096;
  Tensor x(DType::kF32, {B, total, hidden}), pos(DType::kI32, {B, total});
  fill_uniform(x, 3);
  for (int64_t i = 0; i < B * total; ++i) pos.data<int32_t>()[i] = static_cast<int32_t>(i % total);
  const Tensor cpu = (*layers::Qwen3VLTextAttention::create(c, w.views()))(x).output;
  c.options = cuda_options(DType::kF32);
  const auto layer = layers::Qwen3VLTextAttention::create(c, w.views());
  const OnDevice d_x(x), d_pos(pos);
  for (KvLayout layout : {KvLayout::kPaged, KvLayout::kContiguous}) {
    SCOPED_TRACE(to_string(layout));
    KvCacheConfig kc;
    kc.layout = layout;
    kc.batch = B;
    kc.kv_heads = hkv;
    kc.head_dim = d;
    kc.dtype = layout == KvLayout::kPaged ? DType::kF16 : DType::kF32;
    kc.max_len = 32;
    kc.max_blocks = 2;
    kc.num_blocks = 4;
    const std::vector<int64_t> shape = kv_storage_shape(kc);
    DeviceBuffer ks(
        static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3] * size_of(kc.dtype)));
    DeviceBuffer vs(ks.bytes());
    TensorView kv = TensorView::contiguous(ks.data(), kc.dtype,
                                           {shape[0], shape[1], shape[2], shape[3]}, Device::kCUDA);
    kv.device_index = testing::cuda_current_device();
    TensorView vv = kv;
    vv.data = vs.data();
    KvCache cache;
    ASSERT_TRUE(KvCache::create(kc, kv, vv, &cache, &cuda_kv_storage_ops()).ok());
    const double tol = kc.dtype == DType::kF16 ? 1e-2 : 1e-5;
    // Prefill, a chunk of 12 rows (contiguous only: the prefill kernel over the storage), then
    // single steps.
    for (int64_t at = 0; at < total;) {
      int64_t n = at == 0 ? prefill : 1;
      if (at == prefill && layout == KvLayout::kContiguous) n = 12;
      const Tensor out = run_text(*layer, testing::token_slice(d_x.view, 1, at, n),
                                  testing::token_slice(d_pos.view, 1, at, n), &cache, DType::kF32);
      for (int64_t b = 0; b < B; ++b)
        EXPECT_LT(testing::rel_error(testing::rows(out, b, 0, n), testing::rows(cpu, b, at, n)),
                  tol)
            << "rows " << at << ".." << at + n;
      at += n;
    }
    EXPECT_EQ(cache.length(0), total);
  }
}

// A model step on CUDA: three layers over one KvPageTable and a device storage each. The table's
// device mirror is uploaded exactly once a decode step (by the first layer; the others read it),
// never by a prefill step without past tokens, and every layer equals the CPU layer with its own
// cache.
TEST(LayersCuda, ModelStepUploadsTheTableOnce) {
  QWEN3VL_REQUIRE_GPU();
  constexpr int kLayers = 3;
  const int64_t hidden = 64, hq = 4, hkv = 2, d = 32, B = 2, prefill = 11, steps = 4;
  layers::TextAttentionConfig c;
  c.hidden_size = hidden;
  c.num_heads = hq;
  c.num_kv_heads = hkv;
  c.head_dim = d;
  c.mrope_section = {6, 5, 5};
  c.max_position = 4096;
  std::vector<testing::TextWeights> w;
  for (int l = 0; l < kLayers; ++l) w.emplace_back(hidden, hq, hkv, d, 40 + 10 * l);
  const int64_t total = prefill + steps;
  Tensor x(DType::kF32, {B, total, hidden}), pos(DType::kI32, {B, total});
  fill_uniform(x, 8);
  for (int64_t i = 0; i < B * total; ++i) pos.data<int32_t>()[i] = static_cast<int32_t>(i % total);
  std::vector<Tensor> cpu;
  for (int l = 0; l < kLayers; ++l)
    cpu.push_back((*layers::Qwen3VLTextAttention::create(c, w[l].views(), l))(x, {}, pos).output);
  c.options = cuda_options(DType::kF32);
  std::vector<std::unique_ptr<layers::Qwen3VLTextAttention>> gpu;
  for (int l = 0; l < kLayers; ++l)
    gpu.push_back(layers::Qwen3VLTextAttention::create(c, w[l].views(), l));
  const OnDevice d_x(x), d_pos(pos);

  KvTableConfig tc;
  tc.layout = KvLayout::kPaged;
  tc.batch = B;
  tc.block_size = 16;
  tc.max_blocks = 2;
  tc.num_blocks = 4;
  KvPageTable table;
  ASSERT_TRUE(KvPageTable::create(tc, &table).ok());
  const int64_t per_tensor = tc.num_blocks * tc.block_size * hkv * d * 4;
  std::vector<std::unique_ptr<DeviceBuffer>> memory;
  std::vector<KvLayerStorage> storage(kLayers);
  for (int l = 0; l < kLayers; ++l) {
    memory.push_back(std::make_unique<DeviceBuffer>(static_cast<size_t>(per_tensor)));
    memory.push_back(std::make_unique<DeviceBuffer>(static_cast<size_t>(per_tensor)));
    TensorView kv = TensorView::contiguous(memory[2 * l]->data(), DType::kF32,
                                           {tc.num_blocks, tc.block_size, hkv, d}, Device::kCUDA);
    kv.device_index = testing::cuda_current_device();
    TensorView vv = kv;
    vv.data = memory[2 * l + 1]->data();
    ASSERT_TRUE(
        KvLayerStorage::create(&table, kv, vv, {}, &storage[l], &cuda_kv_storage_ops()).ok());
  }
  ASSERT_NE(table.mirror(), nullptr);  // attached by the first CUDA storage
  EXPECT_EQ(table.mirror()->uploads(), 0u);

  for (int64_t at = 0; at < total;) {
    const int64_t n = at == 0 ? prefill : 1;
    const uint64_t uploads = table.mirror()->uploads();
    ASSERT_TRUE(table.begin_append(n).ok());
    for (int l = 0; l < kLayers; ++l) {
      Tensor out(DType::kF32, {B, n, hidden});
      OnDevice d_out(out);
      const layers::TextAttentionInputs in{
          testing::token_slice(d_x.view, 1, at, n), testing::token_slice(d_pos.view, 1, at, n), {}};
      const layers::TextAttentionOutputs outs{d_out.view, {}};
      const size_t bytes = gpu[l]->workspace_size(in, &table, &storage[l], outs);
      ASSERT_GT(bytes, 0u) << gpu[l]->supports(in, &table, &storage[l], outs).to_string();
      DeviceBuffer ws(bytes);
      ASSERT_TRUE(gpu[l]->forward(in, &table, &storage[l], outs, Workspace{ws.data(), bytes}).ok());
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const Tensor got = d_out.download(out);
      for (int64_t b = 0; b < B; ++b)
        EXPECT_LT(testing::rel_error(testing::rows(got, b, 0, n), testing::rows(cpu[l], b, at, n)),
                  1e-5)
            << "layer " << l << " rows " << at << ".." << at + n;
    }
    ASSERT_TRUE(table.commit().ok());
    EXPECT_EQ(table.mirror()->uploads() - uploads, at == 0 ? 0u : 1u)
        << "uploads in the step at " << at << " (" << kLayers << " layers)";
    at += n;
  }
}

TEST(LayersCuda, VisionMatchesTransformersAndCpu) {
  QWEN3VL_REQUIRE_GPU();
  const testing::LayerFixtures& f = testing::LayerFixtures::get();
  for (const std::string n : {"vision_d8", "vision_d16"}) {
    const testing::Json& m = f.meta(n);
    layers::VisionAttentionConfig c;
    c.hidden_size = static_cast<int64_t>(m["hidden_size"].number);
    c.num_heads = static_cast<int64_t>(m["num_heads"].number);
    const Tensor qw = f.tensor(n + "/qkv_weight"), qb = f.tensor(n + "/qkv_bias"),
                 pw = f.tensor(n + "/proj_weight"), pb = f.tensor(n + "/proj_bias");
    const layers::VisionAttentionWeights w{qw, qb, pw, pb};
    const Tensor x = f.tensor(n + "/hidden_states"), pos = f.tensor(n + "/positions");
    const Tensor cu = f.tensor(n + "/cu_seqlens"), ref = f.tensor(n + "/f64/output");
    const Tensor cpu = (*layers::Qwen3VLVisionAttention::create(c, w))(x, pos, cu);
    const OnDevice d_pos(pos);
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(n + " " + to_string(dtype));
      c.options = cuda_options(dtype);
      const auto layer = layers::Qwen3VLVisionAttention::create(c, w);
      const OnDevice d_x(testing::converted(x, dtype));
      Tensor out(dtype, {x.size(0), c.hidden_size});
      OnDevice d_out(out);
      const layers::VisionAttentionInputs in{d_x.view, d_pos.view, cu.view()};
      const size_t bytes = layer->workspace_size(in, d_out.view);
      ASSERT_GT(bytes, 0u) << layer->supports(in, d_out.view).to_string();
      DeviceBuffer ws(bytes);
      ASSERT_TRUE(layer->forward(in, d_out.view, Workspace{ws.data(), bytes}).ok());
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      out = d_out.download(out);
      EXPECT_LT(testing::rel_error(out, ref), testing::tolerance(dtype));
      if (dtype == DType::kF32) EXPECT_LT(testing::rel_error(out, cpu), 1e-5);
    }
  }
}

}  // namespace
}  // namespace qwen3vl
