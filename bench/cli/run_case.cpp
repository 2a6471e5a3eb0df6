#include "run_case.hpp"

#include <limits>

#include "common/accuracy.hpp"
#include "common/device_run.hpp"
#include "common/flops.hpp"
#include "common/timing.hpp"

namespace qwen3vl::bench {

AttentionConfig make_config(const Target& target, const testing::ProblemSpec& spec,
                            const RunSettings& settings) {
  AttentionConfig c;
  c.variant = target.variant;
  c.device = target.device;
  c.num_heads = static_cast<int>(spec.heads);
  c.num_kv_heads = static_cast<int>(spec.kv_heads);
  c.head_dim = static_cast<int>(spec.head_dim);
  c.dtype = spec.dtype;
  c.mask = spec.mask;
  c.cpu.num_threads = settings.threads;
  c.cpu.isa = settings.isa;
  apply_variant_flags(settings.variant, &c);
  return c;
}

Status run_case(const Target& target, const WorkloadCase& workload, testing::Problem* problem,
                const RunSettings& settings, const SgemmRate& sgemm, CaseResult* result) {
  const AttentionConfig config = make_config(target, workload.spec, settings);
  std::unique_ptr<Attention> attention;
  QWEN3VL_RETURN_IF_ERROR(create_variant(config, &attention));
  VariantInputs inputs;
  QWEN3VL_RETURN_IF_ERROR(VariantInputs::make(attention->variant(), target.device, settings.variant,
                                              config, problem->params, &inputs));
  // A previous target's output must not pass for this one's.
  for (int64_t i = 0; i < problem->out.numel(); ++i)
    problem->out.set(i, std::numeric_limits<float>::quiet_NaN());

  std::unique_ptr<DeviceRun> run;
  QWEN3VL_RETURN_IF_ERROR(make_device_run(target.device, problem, &run));
  const AttentionParams params = inputs.with_layout(run->params());
  QWEN3VL_RETURN_IF_ERROR(attention->supports(params));
  const size_t workspace_bytes = attention->workspace_size(params);
  Workspace ws;
  QWEN3VL_RETURN_IF_ERROR(run->workspace(workspace_bytes, &ws));
  std::vector<double> ms;
  QWEN3VL_RETURN_IF_ERROR(
      run->time([&] { return forward_variant(*attention, params, inputs, ws, run->stream()); }, 1,
                settings.repeats, &ms));
  QWEN3VL_RETURN_IF_ERROR(run->fetch_output(problem));

  const testing::ProblemSpec& s = workload.spec;
  CaseResult& r = *result;
  r = CaseResult();
  r.label = workload.label;
  r.variant = to_string(attention->variant());
  r.device = to_string(target.device);
  CpuIsa isa = settings.isa;
  if (target.device == Device::kCPU)
    QWEN3VL_RETURN_IF_ERROR(resolve_cpu_isa(settings.isa, CpuInfo::current(), &isa));
  r.arch = device_arch(target.device, isa);
  r.dtype = to_string(s.dtype);
  r.shape = shape_string(s);
  r.batch = s.varlen_q.empty() ? s.batch : static_cast<int64_t>(s.varlen_q.size());
  AttentionShape shape;
  QWEN3VL_RETURN_IF_ERROR(validate(problem->params, &shape));
  r.seq_q = shape.max_q;
  r.seq_k = shape.max_k;
  r.heads = s.heads;
  r.kv_heads = s.kv_heads;
  r.head_dim = s.head_dim;
  r.causal = s.mask == MaskKind::kCausal;
  r.threads = target.device == Device::kCPU ? settings.threads : 0;
  r.ms = median(ms);
  r.gflops = attention_flops(problem->params) / (r.ms * 1e6);
  r.sgemm_gflops = sgemm.gflops;
  r.ratio_to_sgemm = sgemm.gflops > 0 ? r.gflops / sgemm.gflops : 0.0;
  QWEN3VL_RETURN_IF_ERROR(sampled_variant_error(*attention, config, problem->params, inputs,
                                                settings.sampled_rows, &r.max_rel_err));
  r.accurate = r.max_rel_err <= testing::tolerance(s.dtype);
  r.workspace_bytes = workspace_bytes;
  r.sgemm_source = sgemm.source;
  return Status();
}

}  // namespace qwen3vl::bench
