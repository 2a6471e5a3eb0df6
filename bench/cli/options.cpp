#include "options.hpp"

#include <cerrno>
#include <cstdlib>
#include <functional>
#include <optional>

#include "common/workload.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl::bench {
namespace {

Status parse_fraction(const std::string& flag, const std::string& text, double* out) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !(value > 0.0 && value <= 1.0))
    return make_error(StatusCode::kInvalidArgument, flag, " = '", text,
                      "': allowed a number in (0, 1]");
  *out = value;
  return Status();
}

// A size flag that also marks the shape as custom (the flag was given).
void size_flag(ArgParser* p, const char* name, std::optional<int64_t>* field, int64_t lo,
               int64_t hi, const char* help) {
  p->add_custom(name, "N", help, [=](const std::string& f, const std::string& v) {
    int64_t x = 0;
    QWEN3VL_RETURN_IF_ERROR(parse_integer(f, v, lo, hi, &x));
    *field = x;
    return Status();
  });
}

}  // namespace

void add_prefill_flags(ArgParser* p, CliOptions* o) {
  p->add_custom(
      "--variant", "NAME|all",
      "standard, flash2, sm61_tiled, sparse, dynamic_sparse, block_sparse, linear, moh or "
      "auto; all: the built variants that compute exact dense attention (default all)",
      [o](const std::string&, const std::string& v) {
        Variant parsed;
        if (v != "all") QWEN3VL_RETURN_IF_ERROR(parse_variant(v, &parsed));
        o->variant = v;
        return Status();
      });
  p->add_choice("--device", &o->device, {"cpu", "cuda", "all"}, "where the variants run");
  p->add_dtype("--dtype", &o->dtype, {DType::kF32, DType::kF16, DType::kBF16},
               "storage dtype of q/k/v/out (arithmetic is fp32)");
  p->add_custom("--isa", "auto|avx2|avx512|scalar",
                "CPU kernel build (default auto: QWEN3VL_CPU_ISA, else CPUID)",
                [o](const std::string&, const std::string& v) {
                  const Status s = parse_cpu_isa(v, &o->isa);
                  return s.ok() ? s : Status(s.code(), "--" + s.message());
                });
  size_flag(p, "--batch", &o->batch, 1, 4096, "batch (a shape flag, see below)");
  size_flag(p, "--seq", &o->seq, 1, 1 << 20, "Lq = Lk");
  size_flag(p, "--seq-q", &o->seq_q, 1, 1 << 20, "Lq");
  size_flag(p, "--seq-k", &o->seq_k, 1, 1 << 20, "Lk");
  size_flag(p, "--heads", &o->heads, 1, 1024, "query heads");
  size_flag(p, "--kv-heads", &o->kv_heads, 1, 1024, "KV heads (must divide --heads)");
  size_flag(p, "--head-dim", &o->head_dim, 1, 256, "head dim");
  p->add_switch("--causal", &o->causal, "causal mask, bottom-right aligned (a shape flag)");
  p->add_custom("--block-density", "F",
                "block_sparse: kept fraction of each query block's visible key blocks (the last "
                "visible one always kept), in (0, 1] (default 0.25)",
                [o](const std::string& f, const std::string& v) {
                  return parse_fraction(f, v, &o->variant_flags.block_density);
                });
  p->add_custom("--block-size", "B",
                "block_sparse: layout block (queries = keys), a multiple of 16 in 16..128 "
                "(default 64)",
                [o](const std::string& f, const std::string& v) {
                  char* end = nullptr;
                  const long b = std::strtol(v.c_str(), &end, 10);
                  if (v.empty() || *end != '\0' || b < 16 || b > 128 || b % 16 != 0)
                    return make_error(StatusCode::kInvalidArgument, f, " = '", v,
                                      "': allowed a multiple of 16 in 16..128");
                  o->variant_flags.block_size = static_cast<int32_t>(b);
                  return Status();
                });
  p->add_int("--moh-top-k", &o->variant_flags.moh_top_k, 1, 1024,
             "moh: routed heads per token, 1..Hq - shared (0 = default: half the routed heads, "
             "at least 1)");
  p->add_int("--moh-shared-heads", &o->variant_flags.moh_shared_heads, 0, 1024,
             "moh: heads 0..S-1 on for every token");
  p->add_int("--threads", &o->threads, 1, 1024,
             "CPU threads of the kernels and of the sgemm anchor (0 = default: physical cores)");
  p->add_int("--repeats", &o->repeats, 1, 10000,
             "timed runs per case after one warm-up (the table shows their median)");
}

Status check_prefill_options(const CliOptions& o) {
  if (o.custom_shape()) {
    const testing::ProblemSpec s = custom_spec(o);
    if (s.heads % s.kv_heads != 0)
      return make_error(StatusCode::kInvalidArgument, "--kv-heads = ", s.kv_heads,
                        ": must divide --heads = ", s.heads);
  }
  return Status();
}

testing::ProblemSpec custom_spec(const CliOptions& o) {
  const int64_t seq = o.seq.value_or(1024);
  testing::ProblemSpec s = text_prefill_spec(seq, o.causal, o.dtype);
  s.batch = o.batch.value_or(1);
  s.seq_q = o.seq_q.value_or(seq);
  s.seq_k = o.seq_k.value_or(seq);
  s.heads = o.heads.value_or(kTextHeads);
  // Without --kv-heads: the text model's GQA for its head count, else one KV head per query head.
  s.kv_heads = o.kv_heads.value_or(o.heads ? s.heads : kTextKvHeads);
  s.head_dim = o.head_dim.value_or(kTextHeadDim);
  return s;
}

const char* prefill_about() {
  return R"(Attention kernels on the Qwen3-VL workload, checked against the float64 reference and
quoted against the machine's sgemm rate measured in the same run (was qwen3vl-attn-bench).

With no shape flags it runs the Qwen3-VL workload for every (variant, device) this build contains:
  text prefill   B 1, Hq 32 / Hkv 8 (GQA), D 128, N = 1024 and 4096, causal
  vision         16 heads, D 72, non-causal, 4 frames x 1024 patches packed through cu_seqlens
                 (block-diagonal: an 8-frame 512x512 clip, 16-px patches, temporal patch 2)
Shape flags (--batch --seq --seq-q --seq-k --heads --kv-heads --head-dim --causal): any of them
replaces the workload by one fixed-length BSHD shape; unset sizes default to B 1, N 1024, Hq 32,
D 128, Hkv 8 (Hkv = Hq when --heads is given alone); no mask unless --causal.
Each variant is checked against what it computes:
  standard, flash2, sm61_tiled  the dense float64 reference
  sparse          the reference restricted to its static pattern (sliding window, block 64)
  dynamic_sparse  the reference restricted to the layout its block top-k router picks
  block_sparse    the reference restricted to a seeded random layout (--block-density,
                  --block-size); CPU only here
  linear          its own float64 oracle (elu+1 features)
  moh             gate x dense reference on the heads each token is routed to (seeded
                  logits), 0 elsewhere; CPU only here

Columns: median ms; GFLOP/s = 4 * Hq * D * (visible query-key pairs) / time, so a causal Lq = Lk
shape counts about half of 4*B*Hq*Lq*Lk*D (for the non-dense variants: the dense-equivalent
rate); sgemm GFLOP/s of the same device and thread count (OpenBLAS, else Eigen over oneTBB; cuBLAS
fp32 on CUDA); their ratio; max relative error of 32 sampled rows vs the variant's float64 check
(any NaN/Inf in the output counts as inf); workspace bytes. CPU: wall clock; CUDA: event-timed
single calls (bench/common/cuda_timing.hpp).
Exit status: 0 ok, 1 a run failed or exceeded the tolerance (1e-5 f32, 1e-2 f16/bf16), 2 bad flags
or a variant/device this build does not contain (or knobs it rejects, e.g. --moh-top-k too large).)";
}

}  // namespace qwen3vl::bench
