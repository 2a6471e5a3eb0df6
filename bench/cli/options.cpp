#include "options.hpp"

#include <cerrno>
#include <cstdlib>
#include <functional>

#include "../common/workload.hpp"
#include "qwen3vl/variants/attention.hpp"

namespace qwen3vl::bench {
namespace {

Status parse_int(const std::string& flag, const std::string& text, int64_t lo, int64_t hi,
                 int64_t* out) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || value < lo || value > hi)
    return make_error(StatusCode::kInvalidArgument, flag, " = '", text, "': allowed integers ", lo,
                      "..", hi);
  *out = value;
  return Status();
}

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

Status parse_choice(const std::string& flag, const std::string& text,
                    std::initializer_list<const char*> allowed, std::string* out) {
  std::string list;
  for (const char* a : allowed) {
    if (text == a) {
      *out = text;
      return Status();
    }
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  return make_error(StatusCode::kInvalidArgument, flag, " = '", text, "': allowed ", list);
}

Status parse_dtype(const std::string& text, DType* out) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16})
    if (text == to_string(d)) {
      *out = d;
      return Status();
    }
  return make_error(StatusCode::kInvalidArgument, "--dtype = '", text, "': allowed f32, f16, bf16");
}

struct Flag {
  const char* name;
  bool takes_value;
  std::function<Status(const std::string& flag, const std::string& value, CliOptions*)> apply;
};

// A flag setting an optional shape size within [lo, hi].
Flag size_flag(const char* name, std::optional<int64_t> CliOptions::*field, int64_t lo,
               int64_t hi) {
  return {name, true, [=](const std::string& flag, const std::string& value, CliOptions* o) {
            int64_t v = 0;
            QWEN3VL_RETURN_IF_ERROR(parse_int(flag, value, lo, hi, &v));
            o->*field = v;
            return Status();
          }};
}

// A flag setting a count within [lo, hi].
Flag count_flag(const char* name, int CliOptions::*field, int64_t lo, int64_t hi) {
  return {name, true, [=](const std::string& flag, const std::string& value, CliOptions* o) {
            int64_t v = 0;
            QWEN3VL_RETURN_IF_ERROR(parse_int(flag, value, lo, hi, &v));
            o->*field = static_cast<int>(v);
            return Status();
          }};
}

// A flag without a value that sets a switch.
Flag switch_flag(const char* name, bool CliOptions::*field) {
  return {name, false, [=](const std::string&, const std::string&, CliOptions* o) {
            o->*field = true;
            return Status();
          }};
}

const std::vector<Flag>& flags() {
  static const std::vector<Flag> table = {
      {"--variant", true,
       [](const std::string&, const std::string& v, CliOptions* o) {
         Variant parsed;
         if (v != "all") QWEN3VL_RETURN_IF_ERROR(parse_variant(v, &parsed));
         o->variant = v;
         return Status();
       }},
      {"--device", true,
       [](const std::string& f, const std::string& v, CliOptions* o) {
         return parse_choice(f, v, {"cpu", "cuda", "all"}, &o->device);
       }},
      {"--dtype", true,
       [](const std::string&, const std::string& v, CliOptions* o) {
         return parse_dtype(v, &o->dtype);
       }},
      {"--isa", true,
       [](const std::string&, const std::string& v, CliOptions* o) {
         const Status s = parse_cpu_isa(v, &o->isa);
         return s.ok() ? s : Status(s.code(), "--" + s.message());
       }},
      size_flag("--batch", &CliOptions::batch, 1, 4096),
      size_flag("--seq", &CliOptions::seq, 1, 1 << 20),
      size_flag("--seq-q", &CliOptions::seq_q, 1, 1 << 20),
      size_flag("--seq-k", &CliOptions::seq_k, 1, 1 << 20),
      size_flag("--heads", &CliOptions::heads, 1, 1024),
      size_flag("--kv-heads", &CliOptions::kv_heads, 1, 1024),
      size_flag("--head-dim", &CliOptions::head_dim, 1, 256),
      {"--block-density", true,
       [](const std::string& f, const std::string& v, CliOptions* o) {
         return parse_fraction(f, v, &o->variant_flags.block_density);
       }},
      {"--block-size", true,
       [](const std::string& f, const std::string& v, CliOptions* o) {
         int64_t b = 0;
         QWEN3VL_RETURN_IF_ERROR(parse_int(f, v, 16, 128, &b));
         if (b % 16 != 0)
           return make_error(StatusCode::kInvalidArgument, f, " = '", v,
                             "': allowed a multiple of 16 in 16..128");
         o->variant_flags.block_size = static_cast<int32_t>(b);
         return Status();
       }},
      {"--moh-top-k", true,
       [](const std::string& f, const std::string& v, CliOptions* o) {
         return parse_int(f, v, 1, 1024, &o->variant_flags.moh_top_k);
       }},
      {"--moh-shared-heads", true,
       [](const std::string& f, const std::string& v, CliOptions* o) {
         return parse_int(f, v, 0, 1024, &o->variant_flags.moh_shared_heads);
       }},
      count_flag("--threads", &CliOptions::threads, 1, 1024),
      count_flag("--repeats", &CliOptions::repeats, 1, 10000),
      switch_flag("--causal", &CliOptions::causal),
      switch_flag("--json", &CliOptions::json),
      switch_flag("--help", &CliOptions::help),
  };
  return table;
}

}  // namespace

Status parse_cli(const std::vector<std::string>& args, CliOptions* out) {
  CliOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i], value;
    const size_t eq = name.find('=');
    const bool inline_value = name.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "-h") name = "--help";
    const Flag* flag = nullptr;
    for (const Flag& f : flags())
      if (name == f.name) flag = &f;
    if (!flag)
      return make_error(StatusCode::kInvalidArgument, "unknown argument '", args[i],
                        "': see --help for the flags");
    if (flag->takes_value && !inline_value) {
      if (i + 1 == args.size())
        return make_error(StatusCode::kInvalidArgument, name, " needs a value");
      value = args[++i];
    } else if (!flag->takes_value && inline_value) {
      return make_error(StatusCode::kInvalidArgument, name, " = '", value, "': takes no value");
    }
    QWEN3VL_RETURN_IF_ERROR(flag->apply(name, value, &o));
  }
  if (o.custom_shape()) {
    const testing::ProblemSpec s = custom_spec(o);
    if (s.heads % s.kv_heads != 0)
      return make_error(StatusCode::kInvalidArgument, "--kv-heads = ", s.kv_heads,
                        ": must divide --heads = ", s.heads);
  }
  *out = o;
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

std::string cli_help() {
  return R"(qwen3vl-attn-bench: attention kernels on the Qwen3-VL workload, checked against the
float64 reference and quoted against the machine's sgemm rate measured in the same run.

Usage: qwen3vl-attn-bench [flags]

With no shape flags it runs the Qwen3-VL workload for every (variant, device) this build contains:
  text prefill   B 1, Hq 32 / Hkv 8 (GQA), D 128, N = 1024 and 4096, causal
  vision         16 heads, D 72, non-causal, 4 frames x 1024 patches packed through cu_seqlens
                 (block-diagonal: an 8-frame 512x512 clip, 16-px patches, temporal patch 2)

Flags (--flag VALUE or --flag=VALUE):
  --variant NAME|all    standard, flash2, sm61_tiled, sparse, dynamic_sparse, block_sparse,
                        linear, moh or auto; default all: the built variants that compute exact
                        dense attention. Each is checked against what it computes:
                          standard, flash2, sm61_tiled  the dense float64 reference
                          sparse          the reference restricted to its static pattern
                                          (sliding window, block 64)
                          dynamic_sparse  the reference restricted to the layout its block
                                          top-k router picks for these inputs
                          block_sparse    the reference restricted to a seeded random layout
                                          (--block-density, --block-size); CPU only here
                          linear          its own float64 oracle (elu+1 features)
                          moh             gate x dense reference on the heads each token is
                                          routed to (seeded logits), 0 elsewhere; CPU only here
  --block-density F     block_sparse: kept fraction of each query block's visible key blocks
                        (the last visible one always kept), in (0, 1]; default 0.25
  --block-size B        block_sparse: layout block (queries = keys), 16..128, a multiple of 16;
                        default 64
  --moh-top-k K         moh: routed heads per token, 1..Hq - shared; default half the routed
                        heads (at least 1)
  --moh-shared-heads S  moh: heads 0..S-1 on for every token; default 0
  --device cpu|cuda|all default all
  --dtype f32|f16|bf16  storage dtype of q/k/v/out (arithmetic is fp32); default f32
  --batch B --seq N --seq-q N --seq-k N --heads H --kv-heads H --head-dim D --causal
                        shape flags: any of them replaces the workload by one fixed-length
                        BSHD shape; unset sizes default to B 1, N 1024, Hq 32, D 128, Hkv 8
                        (Hkv = Hq when --heads is given alone); no mask unless --causal
                        (bottom-right aligned)
  --threads T           CPU threads of the kernels and of the sgemm anchor; default: physical cores
  --isa auto|avx2|avx512|scalar  CPU kernel build; default auto (QWEN3VL_CPU_ISA, else CPUID)
  --repeats R           timed runs per case after one warm-up (the table shows their median);
                        default 5
  --json                print one JSON array of result objects instead of the table
  --help                this text

Columns: median ms; GFLOP/s = 4 * Hq * D * (visible query-key pairs) / time, so a causal Lq = Lk
shape counts about half of 4*B*Hq*Lq*Lk*D (for the non-dense variants: the dense-equivalent
rate); sgemm GFLOP/s of the same device and thread count (OpenBLAS, else Eigen over oneTBB; cuBLAS
fp32 on CUDA); their ratio; max relative error of 32 sampled rows vs the variant's float64 check
(see --variant; any NaN/Inf in the output counts as inf); workspace bytes.
Exit status: 0 ok, 1 a run failed or exceeded the tolerance (1e-5 f32, 1e-2 f16/bf16), 2 bad flags
or a variant/device this build does not contain (or knobs it rejects, e.g. --moh-top-k too large).
)";
}

}  // namespace qwen3vl::bench
