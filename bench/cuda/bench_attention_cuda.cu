// qwen3vl-attn-bench cuda-prefill: GFLOP/s of the CUDA variants on the prefill shapes of the
// project's CUDA targets (batch 1, 32 heads, head_dim 128, N 1024 / 4096 / 16384, causal and not,
// fp32 and fp16 storage; the vision shape: 16 heads, head_dim 72, packed frames), next to cuBLAS
// SGEMM (fp32, TF32 off) measured in the same process. --block-sparse runs the block-sparse cases
// instead: N 16384, D 128, 32 query / 8 KV heads, fp32 and fp16 storage, dense flash2 then
// block_sparse on random 64x64 layouts (one per KV head, the diagonal block kept) at densities
// 50/10/5%, with the dense/sparse time ratio.
//
// Timing: every figure (attention and SGEMM alike) is the median of event-timed single calls on
// stream 0 outside any graph, after untimed warm-ups (bench/common/cuda_timing.hpp);
// scripts/gpu/sdpa_bench.py times PyTorch the same way.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/routines.hpp"
#include "common/cuda_timing.hpp"
#include "common/device_run.hpp"
#include "qwen3vl/cuda/attention_cuda.hpp"
#include "qwen3vl/cuda/device_buffer.cuh"
#include "qwen3vl/variants/block_sparse.hpp"
#include "support/block_layouts.hpp"

namespace qwen3vl::bench {
namespace {

// Seeded uniform [-1, 1) values written on the device (no host round trip for 100M+ elements).
__global__ void fill_uniform(void* data, int64_t n, DType t, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t x = (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    const float u = static_cast<float>(x >> 40) * (2.0f / 16777216.0f) - 1.0f;
    if (t == DType::kF32)
      static_cast<float*>(data)[i] = u;
    else if (t == DType::kF16)
      static_cast<half*>(data)[i] = to_half(u);
    else
      static_cast<bfloat16*>(data)[i] = to_bf16(u);
  }
}

struct Case {
  std::string shape;  // "text" or "vision"
  DType dtype = DType::kF32;
  bool causal = false;
  int64_t heads = 32, head_dim = 128, seq = 1024;
  int64_t frames = 0;    // vision: packed frames of `seq` tokens each (block-diagonal, varlen)
  int64_t kv_heads = 0;  // 0: as many as query heads
  double density = 0.0;  // > 0: a random 64x64 block layout listing this fraction of the blocks

  int64_t kv() const { return kv_heads ? kv_heads : heads; }
  double flops() const {  // of the dense problem (block-sparse rates are dense-equivalent)
    const double per = 4.0 * heads * static_cast<double>(seq) * seq * head_dim;
    return (frames ? frames : 1) * per * (causal ? 0.5 : 1.0);
  }
  std::string name() const {
    std::ostringstream os;
    os << shape << " H" << heads << " D" << head_dim << " N" << seq;
    if (frames) os << "x" << frames << "fr";
    if (kv_heads) os << " Hkv" << kv_heads;
    if (density > 0) os << " bsr" << density * 100 << "%";
    os << (causal ? " causal" : "") << " " << to_string(dtype);
    return os.str();
  }
};

// Device tensors of one case (fixed-length [1, N, H, D], or varlen [frames * N, H, D]).
struct Inputs {
  DeviceBuffer q, k, v, out, cu, indptr, indices;
  AttentionParams params;
  double density = 0.0;  // of the layout as built (the diagonal raises it a little)

  explicit Inputs(const Case& c) {
    const int64_t tokens = (c.frames ? c.frames : 1) * c.seq;
    const int64_t q_elems = tokens * c.heads * c.head_dim, kv_elems = tokens * c.kv() * c.head_dim;
    q = DeviceBuffer(static_cast<size_t>(q_elems * size_of(c.dtype)));
    k = DeviceBuffer(static_cast<size_t>(kv_elems * size_of(c.dtype)));
    v = DeviceBuffer(static_cast<size_t>(kv_elems * size_of(c.dtype)));
    out = DeviceBuffer(static_cast<size_t>(q_elems * size_of(c.dtype)));
    uint64_t seed = 7;
    for (DeviceBuffer* b : {&q, &k, &v, &out}) {
      fill_uniform<<<1024, 256>>>(b->data(), static_cast<int64_t>(b->bytes() / size_of(c.dtype)),
                                  c.dtype, ++seed);
      throw_if_error(cuda_status(cudaGetLastError(), "launch of fill_uniform"));
    }
    int device = 0;
    throw_if_error(cuda_status(cudaGetDevice(&device), "cudaGetDevice"));
    auto on_device = [&](TensorView t) {
      t.device = Device::kCUDA;
      t.device_index = device;
      return t;
    };
    auto view = [&](DeviceBuffer& b, int64_t heads) {
      return on_device(
          c.frames ? TensorView::contiguous(b.data(), c.dtype, {tokens, heads, c.head_dim})
                   : TensorView::contiguous(b.data(), c.dtype, {1, c.seq, heads, c.head_dim}));
    };
    params.q = view(q, c.heads);
    params.k = view(k, c.kv());
    params.v = view(v, c.kv());
    params.out = view(out, c.heads);
    if (c.density > 0) {  // one random layout per KV head, uploaded once
      testing::RandomLayoutSpec spec;
      spec.layouts = c.kv();
      spec.density = c.density;
      spec.keep_diagonal = true;
      spec.seed = 11;
      const testing::HostLayout host = testing::random_layout(spec, c.seq, c.seq);
      density = block_layout_density(host.layout, c.seq, c.seq);
      indptr = DeviceBuffer::copy_of(host.indptr);
      indices = DeviceBuffer::copy_of(host.indices);
      params.block_layout = host.layout;
      params.block_layout.indptr = on_device(host.layout.indptr);
      params.block_layout.indptr.data = indptr.data();
      params.block_layout.indices = on_device(host.layout.indices);
      params.block_layout.indices.data = indices.data();
    }
    params.mask = c.causal ? MaskKind::kCausal : MaskKind::kNone;
    if (c.frames) {
      std::vector<int32_t> offsets(static_cast<size_t>(c.frames + 1));
      for (int64_t f = 0; f <= c.frames; ++f)
        offsets[static_cast<size_t>(f)] = static_cast<int32_t>(f * c.seq);
      cu = DeviceBuffer(offsets.size() * sizeof(int32_t));
      cu.upload(offsets.data(), offsets.size() * sizeof(int32_t));
      TensorView t = TensorView::contiguous(cu.data(), DType::kI32, {c.frames + 1});
      t.device = Device::kCUDA;
      t.device_index = device;
      params.cu_seqlens_q = params.cu_seqlens_k = t;
      params.max_seqlen_q = params.max_seqlen_k = c.seq;
    }
  }
};

// Median milliseconds of `reps` forward calls after two warm-ups, timed with events.
Status time_case(const Attention& attn, const Inputs& in, int reps, double* ms) {
  QWEN3VL_RETURN_IF_ERROR(attn.supports(in.params));
  DeviceBuffer ws(attn.workspace_size(in.params));
  const Workspace w{ws.data(), ws.bytes()};
  std::vector<double> times;
  QWEN3VL_RETURN_IF_ERROR(cuda_event_samples(
      nullptr, 2, reps, 1, [&] { return attn.forward(in.params, w, nullptr); }, &times));
  *ms = median(times);
  return Status();
}

// Dense flash2, then block-sparse at 50/10/5% of the 64x64 blocks, per storage dtype.
std::vector<Case> block_sparse_cases() {
  std::vector<Case> all;
  for (DType dtype : {DType::kF32, DType::kF16})
    for (double density : {0.0, 0.5, 0.1, 0.05}) {
      Case c;
      c.shape = "text";
      c.dtype = dtype;
      c.seq = 16384;
      c.kv_heads = 8;
      c.density = density;
      all.push_back(c);
    }
  return all;
}

// The prefill cases: text shapes per dtype, causal and not, per N; then the vision shape per
// dtype.
struct CaseOptions {
  bool quick = false;
  std::vector<DType> dtypes = {DType::kF32, DType::kF16};
  std::vector<int64_t> seqs;  // empty: 1024, 4096 (and 16384 unless quick)
  int64_t kv_heads = 0;       // text shapes; 0: as many as query heads
};

std::vector<Case> cases(const CaseOptions& o) {
  std::vector<Case> all;
  std::vector<int64_t> seqs = o.seqs;
  if (seqs.empty())
    seqs = o.quick ? std::vector<int64_t>{1024, 4096} : std::vector<int64_t>{1024, 4096, 16384};
  for (DType dtype : o.dtypes)
    for (bool causal : {false, true}) {
      for (int64_t n : seqs) {
        Case c;
        c.shape = "text";
        c.dtype = dtype;
        c.causal = causal;
        c.seq = n;
        c.kv_heads = o.kv_heads;
        all.push_back(c);
      }
    }
  for (DType dtype : o.dtypes) {  // vision: 16 frames of 32x32 patches
    Case c;
    c.shape = "vision";
    c.dtype = dtype;
    c.heads = 16;
    c.head_dim = 72;
    c.seq = 1024;
    c.frames = 16;
    all.push_back(c);
  }
  return all;
}

int run(const CaseOptions& case_options, bool block_sparse, int reps, std::string variant_list,
        const std::vector<std::string>& filters, Report* report) {
  std::vector<std::unique_ptr<Attention>> variants;
  std::stringstream names(variant_list);
  for (std::string name; std::getline(names, name, ',');) {
    Variant v;
    throw_if_error(parse_variant(name, &v));
    std::unique_ptr<Attention> a;
    if (v == Variant::kFlash2)
      throw_if_error(create_flash2_cuda(CudaOptions{}, &a));
    else if (v == Variant::kSm61Tiled)
      throw_if_error(create_sm61_tiled_cuda(CudaOptions{}, &a));
    else if (v == Variant::kStandard)
      throw_if_error(create_standard_cuda(CudaOptions{}, &a));
    else if (v == Variant::kBlockSparse)
      throw_if_error(create_block_sparse_cuda(CudaOptions{}, &a));
    else
      throw Error(StatusCode::kInvalidArgument,
                  "--variants " + name + ": allowed flash2, sm61_tiled, standard, block_sparse");
    std::printf("# %s\n", a->describe().c_str());
    variants.push_back(std::move(a));
  }
  SgemmRate sgemm;
  throw_if_error(measure_cuda_sgemm(&sgemm));
  cudaDeviceProp prop{};
  throw_if_error(cuda_status(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties"));
  std::printf("# device: %s (sm_%d%d, %d SMs)\n# sgemm: %s, n=%lld: %.1f GFLOP/s\n", prop.name,
              prop.major, prop.minor, prop.multiProcessorCount, sgemm.source.c_str(),
              static_cast<long long>(sgemm.n), sgemm.gflops);
  report->context("sgemm_gflops", sgemm.gflops);
  report->context("sgemm_n", sgemm.n);
  report->context("sgemm_source", sgemm.source);
  std::printf("%-40s %-12s %10s %10s %8s %9s\n", "case", "variant", "ms", "GFLOP/s", "/sgemm",
              block_sparse ? "dense/bsr" : "");
  double dense_ms = 0.0;  // --block-sparse: the last dense case's time
  for (const Case& c : block_sparse ? block_sparse_cases() : cases(case_options)) {
    bool wanted = filters.empty();
    for (const std::string& f : filters) wanted = wanted || c.name().find(f) != std::string::npos;
    if (!wanted) continue;
    const Inputs in(c);
    for (const auto& attn : variants) {
      const bool standard = attn->variant() == Variant::kStandard;
      const bool layout = in.params.block_layout.present();
      if (block_sparse && layout != (attn->variant() == Variant::kBlockSparse)) continue;
      const double score_gb = 4.0 * c.heads * static_cast<double>(c.seq) * c.seq / 1e9;
      if (standard && (c.frames || score_gb > 4.0)) continue;  // N^2 fp32 scores per head
      double ms = 0.0;
      const Status st = time_case(*attn, in, standard ? 3 : reps, &ms);
      const char* vname = to_string(attn->variant());
      if (!st.ok()) {
        std::printf("%-40s %-11s error: %s\n", c.name().c_str(), vname, st.to_string().c_str());
        continue;
      }
      const double gflops = c.flops() / (ms * 1e6);
      if (block_sparse && !layout) dense_ms = ms;
      const double speedup = layout && dense_ms > 0 ? dense_ms / ms : 0.0;
      std::printf("%-40s %-12s %10.3f %10.1f %8.3f", c.name().c_str(), vname, ms, gflops,
                  gflops / sgemm.gflops);
      if (layout) std::printf(" %8.2fx  (density %.4f)", speedup, in.density);
      std::printf("\n");
      report->add({{"case", c.name()},
                   {"shape", c.shape},
                   {"variant", vname},
                   {"dtype", to_string(c.dtype)},
                   {"causal", c.causal},
                   {"heads", c.heads},
                   {"kv_heads", c.kv()},
                   {"head_dim", c.head_dim},
                   {"seq", c.seq},
                   {"frames", c.frames},
                   {"ms", ms},
                   {"gflops", gflops},
                   {"ratio_sgemm", gflops / sgemm.gflops},
                   {"density", layout ? Value(in.density) : Value()},
                   {"dense_over_sparse", layout ? Value(speedup) : Value()}});
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace qwen3vl::bench

namespace qwen3vl::bench {

int cuda_prefill_routine(const std::vector<std::string>& args) {
  CaseOptions case_options;
  bool block_sparse = false;
  int reps = 10;
  std::vector<std::string> variants = {"flash2", "sm61_tiled", "standard"}, filters,
                           dtypes = {"f32", "f16"};
  ArgParser parser(
      "cuda-prefill",
      R"(GFLOP/s of the CUDA variants on the prefill shapes of the CUDA targets (B 1, 32 heads, D 128,
N 1024 / 4096 / 16384, causal and not, per storage dtype; the vision shape: 16 heads, D 72, 16
packed frames of 1024), next to cuBLAS SGEMM (fp32, TF32 off) measured in the same process (was
qwen3vl-cuda-bench). --block-sparse: N 16384, Hq 32 / Hkv 8, f32 and f16, dense flash2 then
block_sparse on random 64x64 layouts at 50 / 10 / 5% with the dense/sparse time ratio.
Every figure (attention and SGEMM) is the median of event-timed single calls on stream 0 outside
any graph, after 2 warm-ups (standard: 3 calls, skipped where its N^2 scores pass 4 GB).)");
  parser.add_switch("--quick", &case_options.quick, "N 1024 and 4096 only");
  parser.add_word_list("--variants", &variants,
                       {"flash2", "sm61_tiled", "standard", "block_sparse"}, "variants to time");
  parser.add_int("--reps", &reps, 1, 100000, "timed calls");
  parser.add_word_list("--filter", &filters, {},
                       "cases whose name contains one of these (e.g. 'D128 N4096 f32,vision')");
  parser.add_word_list("--dtypes", &dtypes, {"f32", "f16", "bf16"}, "storage dtypes");
  parser.add_int_list("--seqs", &case_options.seqs, 1, int64_t(1) << 20,
                      "text N (default 1024,4096,16384; --quick: 1024,4096)");
  parser.add_int("--kv-heads", &case_options.kv_heads, 0, 1024,
                 "text shapes' KV heads (0: 32, MHA)");
  parser.add_switch("--block-sparse", &block_sparse, "the block-sparse cases instead");
  return run_routine(parser, args, [&](Report& report) {
    case_options.dtypes.clear();
    for (const std::string& d : dtypes)
      case_options.dtypes.push_back(d == "f32"   ? DType::kF32
                                    : d == "f16" ? DType::kF16
                                                 : DType::kBF16);
    std::string list;
    for (const std::string& v : variants) list += (list.empty() ? "" : ",") + v;
    return run(case_options, block_sparse, reps, block_sparse ? "flash2,block_sparse" : list,
               filters, &report);
  });
}

}  // namespace qwen3vl::bench
